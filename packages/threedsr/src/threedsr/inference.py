"""Inference: ``Detector`` (load a run, predict batches), native-resolution maps, thresholds."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Sequence, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pcprep
import torch
import torch.nn.functional as F
import vqcore
from torch import Tensor, nn

from threedsr.checkpoint import build_from_checkpoint, read_checkpoint, resolve_detector_file
from threedsr.config import DetectorConfig, default_smoothing_size
from threedsr.data import model_input
from threedsr.errors import ThreedsrError
from threedsr.fastconv import FastConvPlan
from threedsr.memory import FeatureMemory, MapCalibration, fuse_maps, memory_map
from threedsr.model import ThreeDSR
from threedsr.smoothing import smooth_maps

__all__ = [
    "Detector",
    "Prediction",
    "SamplePrediction",
    "choose_threshold",
    "predict_samples",
    "upsample_map",
]


class Prediction(NamedTuple):
    """Batched detector output at model resolution.

    Attributes:
        maps: (B, H, W) float32 smoothed anomaly maps (the pixel scores of the reference).
        scores: (B,) float32 image scores = max of each smoothed map.
        raw_maps: (B, H, W) float32 unsmoothed softmax anomaly probability.
    """

    maps: Tensor
    scores: Tensor
    raw_maps: Tensor


@dataclass
class SamplePrediction:
    """One sample's result: model-resolution and native-resolution maps (numpy, float32)."""

    score: float
    map: np.ndarray
    native_map: np.ndarray
    path: Path | None = None
    label: int = 0
    defect_type: str = "good"


class Detector:
    """A trained 3DSR detector ready for inference.

    Args:
        model: the :class:`ThreeDSR` (moved to ``device``, eval mode).
        config: its training configuration (setup, preprocessing parameters, and the smoothing
            it was trained to be used with: the defaults of the three smoothing options).
        device: where to run.
        smoothing: ``box`` | ``gaussian`` | ``none``; None = ``config.smoothing`` (box).
        filter_size: box size; None = ``config.smoothing_size``, else 11 (rgbd/rgb) / 21 (depth).
        gaussian_sigma: sigma of ``gaussian``; None = ``config.gaussian_sigma`` (4).
        batch_size: images per forward pass; None = 8 on CUDA, 1 on CPU (on CPU batching
            measured slower than one image at a time, see docs/bench/threedsr.md).
        channels_last: None = on for CUDA and for CPU bf16, off for CPU fp32 (there it
            measured no faster at batch 1, and NCHW keeps every layer before the last
            re-quantisation bit-identical to the plain fp32 run, so no near-tie VQ code can flip;
            see docs/bench/threedsr.md).
        bf16: bf16 autocast (the VQ searches stay fp32). None = on for CUDA, off on CPU. On a CPU
            with native bf16 (AMX / AVX512-BF16) ``bf16=True`` measured 2.6x the fp32 reference
            at the paper's widths, but the maps are no longer those of an fp32 run (rounding
            upstream of a VQ can flip near-tie codes); without native bf16 it is slow.
        fast_conv: fp32 Winograd F(4x4, 3x3) on CPU for the wide 3x3 convs downstream of the
            last re-quantisation (object decoder, general decoder, anomaly UNet;
            :class:`threedsr.fastconv.FastConvPlan`); None = on for CPU fp32 (fewer multiplies;
            maps equal the plain fp32 run to ~1e-5, see docs/bench/threedsr.md), False = the
            exact oneDNN convolutions. Ignored on CUDA and with bf16.
        fast_conv_min_product: smallest per-group ``C_in * C_out`` routed through Winograd
            (measured per layer on CPU: 256 x 256 gains 1.2-1.4x, 256 x 128 about 1.0x).
        memory: the checkpoint's feature memory and calibration (:mod:`threedsr.memory`); when
            present, maps are the fused maps of the heads and the memory.
        memory_weight: override the stored fusion weight (0 = the heads' map alone).

    Example:
        >>> import vqcore
        >>> bb = vqcore.build_backbone(vqcore.BackboneConfig.cpu("depth", hidden=16, res_hidden=8,
        ...                            num_embeddings=16, embedding_dim=8))
        >>> cfg = DetectorConfig.preset("cpu", setup="depth", unet_base=4)
        >>> det = Detector(ThreeDSR(bb, cfg.model), cfg)
        >>> pred = det.predict(torch.rand(2, 1, 64, 64))
        >>> pred.maps.shape, pred.scores.shape
        (torch.Size([2, 64, 64]), torch.Size([2]))
    """

    def __init__(
        self,
        model: ThreeDSR,
        config: DetectorConfig,
        *,
        device: torch.device | str = "cpu",
        smoothing: str | None = None,
        filter_size: int | None = None,
        gaussian_sigma: float | None = None,
        batch_size: int | None = None,
        channels_last: bool | None = None,
        bf16: bool | None = None,
        fast_conv: bool | None = None,
        fast_conv_min_product: int = 256 * 256,
        path: Path | None = None,
        category: str | None = None,
        preprocess: dict[str, Any] | None = None,
        memory: dict[str, Any] | None = None,
        memory_weight: float | None = None,
    ) -> None:
        self.device = vqcore.resolve_device(device)
        self.config = config
        self.model = model.to(self.device).eval()
        # The smoothing is the detector's own (inference) option; the config only supplies the
        # defaults the detector was trained and evaluated with.
        self.smoothing = smoothing or config.smoothing
        self.filter_size = (
            filter_size or config.smoothing_size or default_smoothing_size(model.setup)
        )
        self.gaussian_sigma = float(
            config.gaussian_sigma if gaussian_sigma is None else gaussian_sigma
        )
        self.batch_size = int(batch_size or (8 if self.device.type == "cuda" else 1))
        self.bf16 = self.device.type == "cuda" if bf16 is None else bool(bf16)
        self.channels_last = (
            self.device.type == "cuda" or self.bf16
            if channels_last is None
            else bool(channels_last)
        )
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        fp32_cpu = self.device.type == "cpu" and not self.bf16
        self.fast_conv = fp32_cpu if fast_conv is None else bool(fast_conv) and fp32_cpu
        # Only after the last re-quantisation: upstream of a VQ, any rounding change can flip a
        # near-tie code, which changes the map far beyond 1e-4.
        downstream = nn.ModuleList(
            [self.model.object_decoder, self.model.backbone.decoder, self.model.anomaly_unet]
        )
        self._fast_plan = (
            FastConvPlan(downstream, min_channel_product=fast_conv_min_product)
            if self.fast_conv
            else None
        )
        self.path = path
        self.category = category if category is not None else config.category
        self.memory: FeatureMemory | None = None
        self.memory_weight = 0.0
        if memory is not None:
            self.memory = FeatureMemory.from_state(memory)
            self._heads_cal = MapCalibration(*memory["heads_calibration"])
            self._memory_cal = MapCalibration(*memory["memory_calibration"])
            self.memory_weight = float(memory["weight"] if memory_weight is None else memory_weight)
        elif memory_weight:
            raise ThreedsrError(
                f"{path or 'detector'}: has no feature memory (trained with memory_weight=0)"
            )
        self.preprocess = dict(preprocess) if preprocess is not None else config.preprocess_kwargs()

    @property
    def setup(self) -> str:
        return self.model.setup

    @property
    def size(self) -> int:
        return int(self.preprocess["size"])

    @classmethod
    def load(
        cls,
        run: str | os.PathLike[str],
        *,
        device: torch.device | str = "auto",
        setup: str | None = None,
        **kwargs: Any,
    ) -> Detector:
        """Load ``<run>/detector.pt`` (or the file itself); nothing else is needed.

        Args:
            run: run folder or checkpoint file.
            device: ``auto`` | ``cpu`` | ``cuda``.
            setup: when given, the checkpoint's setup must be this one.
            **kwargs: :class:`Detector` options (smoothing, filter_size, gaussian_sigma,
                batch_size, ...).

        Raises:
            ThreedsrError: missing, truncated, wrong-kind or wrong-setup file (one line naming it).
        """
        path = resolve_detector_file(run)
        ckpt = read_checkpoint(path)
        if setup is not None and ckpt.get("setup") != setup:
            raise ThreedsrError(
                f"{path}: is a {ckpt.get('setup')!r} detector, but a {setup!r} one is required"
            )
        dev = vqcore.resolve_device(device)
        model, config = build_from_checkpoint(ckpt, device=dev, source=str(path))
        detector = cls(
            model,
            config,
            device=dev,
            path=path,
            category=ckpt.get("category"),
            preprocess=ckpt.get("preprocess"),
            memory=ckpt.get("memory"),
            **kwargs,
        )
        # How far training got: an interrupted run's detector.pt is a half-trained model.
        detector.training_state = {
            "step": int(ckpt.get("step", 0)),
            "total": int(ckpt.get("total", 0)),
            "finished": bool(ckpt.get("finished", True)),
        }
        return detector

    def _as_tensor(self, batch: Any) -> Tensor:
        if isinstance(batch, Tensor):
            x = batch
        elif isinstance(batch, np.ndarray):
            x = torch.from_numpy(batch)
        else:
            items = list(batch)
            if not items:
                raise ThreedsrError("predict: empty batch")
            x = torch.from_numpy(np.stack([model_input(p, self.setup) for p in items]))
        if x.ndim == 3:
            x = x[None]
        dims = ("B", self.model.in_channels, "H", "W")
        try:  # the user's own data: a one-line ThreedsrError, not an internal ShapeError
            vqcore.check_shape(
                x, dims, multiple=32, name="predict", what="", context=f" for setup {self.setup!r}"
            )
        except vqcore.ShapeError as exc:
            raise ThreedsrError(str(exc)) from None
        return x.float()

    @property
    def _memory_alone(self) -> bool:
        """The map is the descriptor memory's alone (the heads would get weight 0)."""
        return (
            self.memory is not None
            and self.memory_weight >= 1.0
            and self.memory.features.kind == "descriptors"
        )

    def predict(self, batch: Tensor | np.ndarray | Sequence[Any]) -> Prediction:
        """Anomaly maps and image scores for (B, C, H, W) inputs or `Prepared` records.

        Runs under ``torch.inference_mode`` in chunks of ``batch_size``; returns CPU tensors.
        """
        x = self._as_tensor(batch)
        maps, raws = [], []
        amp = (
            torch.autocast(self.device.type, dtype=torch.bfloat16)
            if self.bf16
            else contextlib.nullcontext()
        )
        plan = self._fast_plan
        fast = plan.active() if plan is not None else contextlib.nullcontext()
        with torch.inference_mode(), fast:
            for start in range(0, x.shape[0], self.batch_size):
                xb = x[start : start + self.batch_size].to(self.device, non_blocking=True)
                if self.channels_last:
                    xb = xb.contiguous(memory_format=torch.channels_last)
                dist = None
                if self._memory_alone:
                    # Weight 1 on a descriptor memory: the heads' map would be multiplied by 0
                    # and the descriptors need no encoder features, so the 3DSR forward is skipped.
                    dist = memory_map(self.memory, self.model.backbone, xb)
                    heads = torch.zeros_like(dist)
                else:
                    with amp:
                        out = self.model(xb)
                    heads = out.anomaly_map.float()
                    if self.memory is not None and self.memory_weight > 0:
                        dist = memory_map(self.memory, self.model.backbone, xb, features=out.f1)
                raw = heads
                if dist is not None:
                    raw = fuse_maps(
                        heads, dist, self._heads_cal, self._memory_cal, self.memory_weight
                    )
                sm = smooth_maps(raw, self.smoothing, self.filter_size, self.gaussian_sigma)
                maps.append(sm.cpu())
                raws.append(raw.cpu())
        m = torch.cat(maps)
        return Prediction(m, m.flatten(1).amax(dim=1), torch.cat(raws))

    def prepare(self, sample: Any) -> Any:
        """pcprep-preprocess a raw `Sample` with the parameters the detector was trained with."""
        return pcprep.preprocess(sample, **self.preprocess)


def upsample_map(m: np.ndarray | Tensor, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of one (H, W) map to ``shape`` (align_corners=False).

    Example:
        >>> upsample_map(np.ones((4, 4), np.float32), (6, 8)).shape
        (6, 8)
    """
    t = torch.as_tensor(np.asarray(m, dtype=np.float32))[None, None]
    if tuple(t.shape[2:]) == tuple(shape):
        return t[0, 0].numpy().copy()
    return F.interpolate(t, size=tuple(shape), mode="bilinear", align_corners=False)[0, 0].numpy()


def _prepared_iter(detector: Detector, samples: Iterable[Any]) -> Iterable[Any]:
    for s in samples:
        yield s if hasattr(s, "depth") and hasattr(s, "foreground") else detector.prepare(s)


def predict_samples(
    detector: Detector,
    samples: Iterable[Any],
    *,
    batch_size: int | None = None,
    progress: Callable[[int, int | None], None] | None = None,
) -> list[SamplePrediction]:
    """Predict raw `Sample`s (preprocessed with the detector's parameters) or `Prepared` records,
    returning maps at model resolution and at each sample's native resolution (bilinear).

    ``detector`` is a :class:`Detector` or anything with its ``prepare``/``predict`` pair (the
    ONNX backend's ``OnnxDetector``). Samples are prepared lazily and predicted
    ``batch_size`` at a time; ``progress(done, total)`` is called after each batch with the
    number of samples predicted (``total`` is ``len(samples)``, or None for an iterator).
    """
    bs = batch_size or detector.batch_size
    total = len(samples) if isinstance(samples, Sized) else None
    out: list[SamplePrediction] = []
    buf: list[Any] = []

    def flush() -> None:
        pred = detector.predict(buf)
        for p, m, s in zip(buf, np.asarray(pred.maps), np.asarray(pred.scores), strict=True):
            native = tuple(getattr(p, "native_shape", m.shape))
            out.append(
                SamplePrediction(
                    float(s),
                    m,
                    upsample_map(m, native),
                    getattr(p, "path", None),
                    int(getattr(p, "label", 0)),
                    str(getattr(p, "defect_type", "good")),
                )
            )
        buf.clear()
        if progress is not None:
            progress(len(out), total)

    for p in _prepared_iter(detector, samples):
        buf.append(p)
        if len(buf) == bs:
            flush()
    if buf:
        flush()
    return out


def choose_threshold(
    detector: Detector | None = None,
    samples: Iterable[Any] | None = None,
    *,
    scores: Sequence[float] | np.ndarray | None = None,
    method: str = "max",
    quantile: float = 0.99,
    margin: float = 0.0,
) -> float:
    """An image-score threshold from anomaly-free validation samples.

    ``method="max"``: the largest validation score (no validation sample flagged) plus ``margin``;
    ``method="quantile"``: the ``quantile`` of validation scores (accepts that fraction as normal).
    Pass either ``detector`` + ``samples`` or precomputed ``scores``.

    Example:
        >>> choose_threshold(scores=[0.1, 0.3, 0.2])
        0.3
        >>> round(choose_threshold(scores=np.linspace(0, 1, 101), method="quantile", quantile=0.9), 6)
        0.9
    """
    if scores is None:
        if detector is None or samples is None:
            raise ThreedsrError("choose_threshold: pass detector and samples, or scores")
        scores = [p.score for p in predict_samples(detector, samples)]
    arr = np.asarray(scores, dtype=np.float64)
    if arr.size == 0:
        raise ThreedsrError("choose_threshold: no validation scores")
    if not np.isfinite(arr).all():
        raise ThreedsrError("choose_threshold: validation scores contain NaN or inf")
    if method == "max":
        return float(arr.max() + margin)
    if method == "quantile":
        if not 0.0 <= quantile <= 1.0:
            raise ThreedsrError(f"choose_threshold: quantile must be in [0, 1], got {quantile}")
        return float(np.quantile(arr, quantile) + margin)
    raise ThreedsrError(f"choose_threshold: unknown method {method!r} (max or quantile)")
