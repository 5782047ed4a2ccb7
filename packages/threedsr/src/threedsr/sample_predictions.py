"""Per-sample prediction: raw scans or prepared records in, one score and two maps out each.

:class:`~threedsr.inference.Detector` works on batched tensors at model resolution; this is the
layer that prepares samples lazily, batches them, and brings each map back to the scan's own
(native) resolution, for any detector with a ``prepare``/``predict`` pair (the ONNX backend's
too)."""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable, Iterable, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pcprep
import torch
import torch.nn.functional as F
from torch import Tensor

from threedsr.errors import require_detector
from threedsr.inference import Detector

__all__ = ["SamplePrediction", "predict_samples", "upsample_map"]


@dataclass
class SamplePrediction:
    """One sample's result: model-resolution and native-resolution maps (numpy, float32)."""

    score: float
    map: np.ndarray
    native_map: np.ndarray
    path: Path | None = None
    label: int = 0
    defect_type: str = "good"


def _pair(shape: object) -> tuple[int, int]:
    """``shape`` as two ints >= 1: an int alone failed on ``len()``, a zero or a float inside
    ``F.interpolate``, neither naming upsample_map's argument."""
    why = f"upsample_map: shape must be (H, W), two ints >= 1, got {shape!r}"
    try:
        values = tuple(shape)  # type: ignore[call-overload]
    except TypeError:
        raise TypeError(why) from None
    if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in values):
        raise TypeError(why)
    if len(values) != 2 or min(values) < 1:
        raise ValueError(why)
    return int(values[0]), int(values[1])


def upsample_map(m: np.ndarray | Tensor, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of one (H, W) map to ``shape`` (align_corners=False).

    Example:
        >>> upsample_map(np.ones((4, 4), np.float32), (6, 8)).shape
        (6, 8)
        >>> upsample_map(np.ones((4, 4), np.float32), 100)
        Traceback (most recent call last):
        ...
        TypeError: upsample_map: shape must be (H, W), two ints >= 1, got 100
    """
    size = _pair(shape)
    if isinstance(m, Tensor):
        t = m.detach().to("cpu", torch.float32)  # np.asarray refuses a CUDA or a grad tensor
    else:
        try:
            t = torch.as_tensor(np.asarray(m, dtype=np.float32))
        except (TypeError, ValueError):
            raise TypeError(
                f"upsample_map: m must be an (H, W) array of numbers, got {type(m).__name__}"
            ) from None
    if t.ndim != 2 or t.numel() == 0:
        raise ValueError(
            f"upsample_map: m must be one (H, W) map with H, W >= 1, got shape {tuple(t.shape)}"
        )
    if tuple(t.shape) == size:
        return t.numpy().copy()
    return F.interpolate(t[None, None], size=size, mode="bilinear", align_corners=False)[
        0, 0
    ].numpy()


def _prepared_iter(detector: Detector, samples: Iterable[Any]) -> Iterable[Any]:
    for s in samples:
        if isinstance(s, pcprep.SampleRef):
            # What pcprep.index_dataset yields: read it as the detector's training data was
            # (own scans' depth unit, Eyecandies' light) unless the reference says otherwise.
            options = getattr(detector, "read_options", None) or {}
            if options and not s.options:
                s = dataclasses.replace(s, options=tuple(sorted(options.items())))
            s = s.load()
        yield s if hasattr(s, "depth") and hasattr(s, "foreground") else detector.prepare(s)


def predict_samples(
    detector: Detector,
    samples: Iterable[Any],
    *,
    batch_size: int | None = None,
    progress: Callable[[int, int | None], None] | None = None,
) -> list[SamplePrediction]:
    """Predict raw `Sample`s (preprocessed with the detector's parameters), `pcprep.SampleRef`s
    (what ``pcprep.index_dataset`` yields, read with the detector's reader options unless they
    carry their own) or `Prepared` records, returning maps at model resolution and at each
    sample's native resolution (bilinear).

    ``detector`` is a :class:`Detector` or anything with its ``prepare``/``predict`` pair (the
    ONNX backend's ``OnnxDetector``). Samples are prepared lazily and predicted
    ``batch_size`` at a time; ``progress(done, total)`` is called after each batch with the
    number of samples predicted (``total`` is ``len(samples)``, or None for an iterator).
    """
    require_detector(detector, "predict_samples")
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
