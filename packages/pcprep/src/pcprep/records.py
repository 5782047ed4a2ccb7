"""The two records pcprep passes around: a raw `Sample` and a model-ready `Prepared`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["Prepared", "Sample"]


@dataclass(eq=False)
class Sample:
    """One raw organized scan as read from disk.

    Attributes:
        xyz: ``(H, W, 3)`` float32 organized point cloud in metres; invalid points are exact zeros
            (readers turn NaN/inf points into zeros).
        rgb: ``(H, W, 3)`` uint8 colour image registered to ``xyz``, or ``None`` for a scan
            without colour (a depth-only sensor): only a ``depth`` detector takes it.
        gt: ``(H, W)`` bool anomaly mask, or ``None`` when the sample has no ground truth.
        label: 0 for good, 1 for anomalous.
        defect_type: ``"good"``, the defect folder name, or ``"unlabeled"`` for own scans.
        path: the file the point cloud came from (named in every error message).
    """

    xyz: np.ndarray
    rgb: np.ndarray | None
    gt: np.ndarray | None = None
    label: int = 0
    defect_type: str = "good"
    path: Path | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """Native ``(H, W)``."""
        return int(self.xyz.shape[0]), int(self.xyz.shape[1])


@dataclass(eq=False)
class Prepared:
    """A sample turned into model inputs at ``(S_h, S_w)``.

    Attributes:
        depth: ``(S_h, S_w)`` float32, foreground in ``[0.1, 0.9]``, background 0 (hole-filled).
        rgb: ``(S_h, S_w, 3)`` float32 in ``[0, 1]``; zeros when the scan has no colour.
        valid: ``(S_h, S_w)`` bool, the point had a measurement.
        foreground: ``(S_h, S_w)`` bool object mask (after closing; may cover invalid points).
        gt: ``(S_h, S_w)`` float32 in ``{0, 1}``, or ``None``.
        native_shape: ``(H, W)`` of the raw sample.
        path: the raw sample's point-cloud file.
        label: 0 good / 1 anomalous (copied from the sample).
        defect_type: copied from the sample.
        plane: ``(4,)`` float64 ``(a, b, c, d)`` of the background plane ``a x + b y + c z + d = 0``
            with unit normal.
        colour: False when the scan had no colour image (``Sample.rgb`` None): ``rgb`` is then
            a placeholder that a detector using colour must refuse.
    """

    depth: np.ndarray
    rgb: np.ndarray
    valid: np.ndarray
    foreground: np.ndarray
    gt: np.ndarray | None
    native_shape: tuple[int, int]
    path: Path | None = None
    label: int = 0
    defect_type: str = "good"
    plane: np.ndarray = field(default_factory=lambda: np.zeros(4))
    colour: bool = True

    def rgbd(self) -> np.ndarray:
        """``(4, S_h, S_w)`` float32 in the model's channel order ``[depth, R, G, B]``."""
        return np.concatenate([self.depth[None], np.moveaxis(self.rgb, -1, 0)], axis=0)
