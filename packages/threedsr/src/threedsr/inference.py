"""``Detector``: inference in one object, whichever method (``memory``, ``3dsr``, ``fused``)
made the detector. ``Detector.load`` needs only the run's ``detector.pt``, and ``predict`` runs
the smoothing the detector was calibrated with, so its scores are on the stored threshold's scale.

It works on batched tensors at model resolution; raw scans and native-resolution maps are
:mod:`threedsr.sample_predictions`, the threshold choice :mod:`threedsr.thresholds`."""

from __future__ import annotations

import contextlib
import numbers
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pcprep
import torch
import vqcore
from torch import Tensor

from threedsr.calibration import DisplayScale, MapCalibration
from threedsr.checkpoint import resolve_detector_file
from threedsr.config import DetectorConfig, default_smoothing_size
from threedsr.data import check_finite_inputs, check_float_dtype, prepared_inputs
from threedsr.detector_file import LoadedDetector, load_detector_parts
from threedsr.dsr.torch_model import ThreeDSR
from threedsr.errors import ThreedsrError
from threedsr.maps import AnomalyMap
from threedsr.memory.torch_model import FeatureMemory
from threedsr.smoothing import check_smoothing

__all__ = ["Detector", "Prediction"]


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


class Detector:
    """A fitted detector ready for inference: the method's map, smoothed, and image scores.

    Args:
        config: its configuration (method, setup, preprocessing, and the smoothing it was
            calibrated with: the defaults of the three smoothing options).
        network: the 3DSR network (:class:`ThreeDSR`), for ``3dsr`` and ``fused``.
        memory: the descriptor memory (:class:`~threedsr.memory.FeatureMemory`), for ``memory``
            and ``fused``.
        heads_calibration, memory_calibration: good-scan statistics of the two maps.
        display: the colour scale and threshold calibrated when the detector was written
            (:class:`~threedsr.calibration.DisplayScale`); None = not calibrated.
        method: the method to run; None = ``config.method``. A fused detector can also run as
            ``3dsr`` or ``memory`` (its display scale then no longer applies).
        device: where to run.
        smoothing: ``box`` | ``gaussian`` | ``none``; None = ``config.smoothing`` (box).
        filter_size: box size; None = ``config.smoothing_size``, else 11 (rgbd/rgb) / 21 (depth).
        gaussian_sigma: sigma of ``gaussian``; None = ``config.gaussian_sigma`` (4).
        batch_size: images per forward pass; None = 8 on CUDA, 1 on CPU (on CPU batching
            measured slower than one image at a time, see docs/bench/threedsr.md).
        channels_last: None = on for CUDA and for CPU bf16, off for CPU fp32 (NCHW keeps every
            layer before the last re-quantisation bit-identical to the plain fp32 run, so no
            near-tie VQ code can flip).
        bf16: bf16 autocast of the network (the VQ and memory searches stay fp32). None = on for
            CUDA, off on CPU.
        precision: ``fp32`` (no autocast; on CUDA TF32 off: IEEE fp32 convolutions and
            matmuls, the reference's arithmetic), ``tf32`` (no autocast, TF32 on; on a CPU the
            same as fp32), ``bf16`` (autocast, TF32 off for what stays fp32) or ``auto``/None
            (``bf16`` decides the autocast, TF32 as PyTorch's defaults); see
            :func:`vqcore.precision_scope`. Give ``precision`` or ``bf16``, not both.

    Example:
        >>> import torch
        >>> from threedsr.memory import fit_memory
        >>> x = torch.zeros(3, 1, 64, 64); x[:, :, 16:48, 16:48] = 0.5
        >>> cfg = DetectorConfig.for_memory("depth", image_size=64, memory={"local_k": 0})
        >>> det = Detector(cfg, memory=fit_memory(x, "depth", cfg.memory),
        ...                memory_calibration=MapCalibration(0.0, 1.0))
        >>> pred = det.predict(x[:2])
        >>> pred.maps.shape, pred.scores.shape
        (torch.Size([2, 64, 64]), torch.Size([2]))
    """

    def __init__(
        self,
        config: DetectorConfig,
        *,
        network: ThreeDSR | None = None,
        memory: FeatureMemory | None = None,
        heads_calibration: MapCalibration | None = None,
        memory_calibration: MapCalibration | None = None,
        display: DisplayScale | None = None,
        method: str | None = None,
        device: torch.device | str = "cpu",
        smoothing: str | None = None,
        filter_size: int | None = None,
        gaussian_sigma: float | None = None,
        batch_size: int | None = None,
        channels_last: bool | None = None,
        bf16: bool | None = None,
        precision: str | None = None,
        path: Path | None = None,
        category: str | None = None,
        preprocess: dict[str, Any] | None = None,
    ) -> None:
        self.device = vqcore.resolve_device(device)
        self.config = config
        self.method = method or config.method
        self.path = path
        where = path or "detector"
        try:
            self.map = AnomalyMap(
                self.method,
                network=network,
                memory=memory,
                heads_calibration=heads_calibration,
                memory_calibration=memory_calibration,
                weight=config.fusion_weight,
                squash=config.squash,
            )
        except ThreedsrError as exc:
            raise ThreedsrError(f"{where}: {exc}") from None
        self.map = self.map.to(self.device).eval()
        # The stored scale was calibrated on the stored method's maps only.
        self.display = display if self.method == config.method else None
        self.smoothing = smoothing or config.smoothing
        self.filter_size = (
            filter_size
            if filter_size is not None
            else config.smoothing_size or default_smoothing_size(config.setup)
        )
        sigma = config.gaussian_sigma if gaussian_sigma is None else gaussian_sigma
        check_smoothing(self.smoothing, self.filter_size, sigma, str(where))
        self.gaussian_sigma = float(sigma)
        if batch_size is None:
            batch_size = 8 if self.device.type == "cuda" else 1
        if (
            isinstance(batch_size, bool)
            or not isinstance(batch_size, numbers.Integral)
            or batch_size < 1
        ):
            raise ThreedsrError(f"{where}: batch_size must be a positive int, got {batch_size!r}")
        self.batch_size = int(batch_size)
        for name, flag in (("bf16", bf16), ("channels_last", channels_last)):
            # bool("no") is True: a str turned the option on without a word.
            if flag is not None and not isinstance(flag, (bool, np.bool_)):
                raise ThreedsrError(f"{where}: {name} must be True, False or None, got {flag!r}")
        self.precision = precision or "auto"
        if self.precision not in vqcore.PRECISIONS:
            raise ThreedsrError(
                f"{where}: precision must be one of {vqcore.PRECISIONS}, got {precision!r}"
            )
        if self.precision != "auto":
            if bf16 is not None:
                raise ThreedsrError(f"{where}: give precision or bf16, not both")
            bf16 = self.precision == "bf16"
        self.bf16 = self.device.type == "cuda" if bf16 is None else bool(bf16)
        self.channels_last = (
            self.device.type == "cuda" or self.bf16
            if channels_last is None
            else bool(channels_last)
        )
        if self.channels_last and self.network is not None:
            self.map.network = self.network.to(memory_format=torch.channels_last)
        self.category = category if category is not None else config.category
        self.preprocess = dict(preprocess) if preprocess is not None else config.preprocess_kwargs()
        #: pcprep reader keywords (own scans' depth unit, ...): new scans are read as training's.
        self.read_options = config.preprocess.read_options()
        #: How far training got (``Detector.load`` fills it from the file).
        self.training_state = {"step": 0, "total": 0, "finished": True}

    @property
    def network(self) -> ThreeDSR | None:
        """The 3DSR network the map runs (None for the memory method)."""
        return self.map.network

    @property
    def memory(self) -> FeatureMemory | None:
        """The descriptor memory the map runs (None for the 3dsr method)."""
        return self.map.memory

    @property
    def setup(self) -> str:
        return self.config.setup

    @property
    def in_channels(self) -> int:
        return self.config.in_channels

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
        method: str | None = None,
        **kwargs: Any,
    ) -> Detector:
        """Load ``<run>/detector.pt`` (or the file itself); nothing else is needed.

        Args:
            run: run folder or checkpoint file.
            device: ``auto`` | ``cpu`` | ``cuda``.
            setup: when given, the checkpoint's setup must be this one.
            method: run another method the file holds (a fused detector's ``3dsr`` or
                ``memory``); None = the one it was made with.
            **kwargs: :class:`Detector` options (smoothing, filter_size, gaussian_sigma,
                batch_size, ...).

        Raises:
            ThreedsrError: missing, truncated, wrong-kind or wrong-setup file, or a method the
                file does not hold (one line naming it).
        """
        path = resolve_detector_file(run)
        dev = vqcore.resolve_device(device)
        parts: LoadedDetector = load_detector_parts(path, device=dev)
        if setup is not None and parts.config.setup != setup:
            raise ThreedsrError(
                f"{path}: is a {parts.config.setup!r} detector, but a {setup!r} one is required"
            )
        detector = cls(
            parts.config,
            network=parts.network,
            memory=parts.memory,
            heads_calibration=parts.heads_calibration,
            memory_calibration=parts.memory_calibration,
            display=parts.display,
            method=method,
            device=dev,
            path=path,
            category=parts.category,
            preprocess=parts.preprocess,
            **kwargs,
        )
        # An interrupted run's detector.pt is a half-trained network.
        detector.training_state = dict(parts.training_state)
        return detector

    def _as_tensor(self, batch: Any) -> Tensor:
        if isinstance(batch, Tensor):
            x = batch
        elif isinstance(batch, np.ndarray):
            check_float_dtype(batch.dtype, "predict")
            # from_numpy refuses negative strides (a flipped view, x[:, :, ::-1]).
            x = torch.from_numpy(np.ascontiguousarray(batch))
        elif batch is None or all(hasattr(batch, a) for a in ("depth", "rgb", "foreground")):
            # One record is not iterable; list(record) raised a TypeError naming nothing.
            what = "None" if batch is None else "one Prepared record"
            raise ThreedsrError(
                f"predict: got {what}; pass a (B, C, H, W) tensor or array, or a list of "
                "pcprep Prepared records"
            )
        else:
            x = torch.from_numpy(prepared_inputs(batch, self.setup))
        check_float_dtype(x.dtype, "predict")
        if x.ndim == 3:
            x = x[None]
        # The detector's own size, as its export and OnnxDetector require: the memory's
        # descriptor scales are in pixels and the network's codes and the calibrated threshold
        # hold at that size, so another size gave maps on no known scale, with no error.
        dims = ("B", self.in_channels, f"H={self.size}", f"W={self.size}")
        try:  # the user's own data: a one-line ThreedsrError, not an internal ShapeError
            vqcore.check_shape(
                x,
                dims,
                name="predict",
                what="",
                context=f" for setup {self.setup!r}",
            )
        except vqcore.ShapeError as exc:
            raise ThreedsrError(str(exc)) from None
        if x.shape[0] == 0:
            raise ThreedsrError(f"predict: empty batch, got {tuple(x.shape)}")
        return x.float()

    def predict(self, batch: Tensor | np.ndarray | Sequence[Any]) -> Prediction:
        """Anomaly maps and image scores for (B, C, H, W) inputs or `Prepared` records.

        Runs under ``torch.inference_mode`` in chunks of ``batch_size``; returns CPU tensors.
        On CUDA the chunks are queued back to back: inputs are copied from pinned memory
        without waiting, the maps stay on the device, and one copy brings everything back.
        """
        x = self._as_tensor(batch)
        cuda = self.device.type == "cuda"
        if cuda and not x.is_cuda:
            x = x.pin_memory()
        maps, raws = [], []
        amp = (
            torch.autocast(self.device.type, dtype=torch.bfloat16)
            if self.bf16
            else contextlib.nullcontext()
        )
        # A caller's own autocast would reach the memory's fp32 search (a dtype error there) and
        # override the detector's precision; amp re-enables it for the network only.
        no_outer_amp = torch.autocast(self.device.type, enabled=False)
        with torch.inference_mode(), no_outer_amp, vqcore.precision_scope(self.precision):
            finite = []
            for start in range(0, x.shape[0], self.batch_size):
                xb = x[start : start + self.batch_size].to(self.device, non_blocking=True)
                # Checked on the device and read with the results: on the host it costs 6 ms
                # per 8 images at 384², a third of a batch's time at 400 img/s on a GPU.
                finite.append(torch.isfinite(xb).all())
                if self.channels_last:
                    xb = xb.contiguous(memory_format=torch.channels_last)
                pre, _ = self.map(xb, autocast=amp)
                smoothed, raw = self.map.finish(
                    pre, self.smoothing, self.filter_size, self.gaussian_sigma
                )
                maps.append(smoothed)
                raws.append(raw)
            m, r = torch.cat(maps), torch.cat(raws)
            n, hw = m.shape[0], m[0].numel()
            all_finite = torch.stack(finite).all().to(m.dtype).expand(n, 1)
            # One device-to-host copy (the only wait): maps, raw maps, scores and the input check.
            flat = torch.cat(
                (m.reshape(n, hw), r.reshape(n, hw), m.reshape(n, hw).amax(1, True), all_finite),
                1,
            )
            flat = flat.cpu() if cuda else flat
        if flat[0, -1] != 1:
            check_finite_inputs(x)  # names the first NaN or inf
        shape = (n, *m.shape[1:])
        return Prediction(
            flat[:, :hw].reshape(shape).contiguous(),
            flat[:, -2].contiguous(),
            flat[:, hw : 2 * hw].reshape(shape).contiguous(),
        )

    def prepare(self, sample: Any) -> Any:
        """pcprep-preprocess a raw `Sample` with the parameters the detector was fitted with."""
        return pcprep.preprocess(sample, **self.preprocess)
