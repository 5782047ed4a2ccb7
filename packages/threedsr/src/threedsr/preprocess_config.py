"""``PreprocessConfig``: the pcprep parameters a detector is fitted with, shared by both methods.

They are stored in ``detector.pt`` (as ``preprocess``) so a scan at inference is prepared exactly
as the training scans were; the model side is not among them (it is
``DetectorConfig.image_size``, shared with stage 1 and checked there)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vqcore import ConfigMixin

from threedsr.errors import ThreedsrError

__all__ = ["PreprocessConfig"]


@dataclass(frozen=True)
class PreprocessConfig(ConfigMixin):
    """pcprep preprocessing parameters (besides the side, ``DetectorConfig.image_size``).

    Args:
        plane: background-plane removal (``robust``, see :func:`pcprep.preprocess`).
        fg_threshold: foreground height above the plane.
        fill_iterations: hole-filling passes.
        drop_border_objects: drop foreground parts that touch the image border. None = the
            dataset's default: on for the Eyecandies layout, whose conveyor rails and back wall
            rise off the belt and would otherwise be most of the "object" (CandyCane: 3 of 5
            foreground pixels; package README, row 34), off elsewhere.
        depth_axis: what the depth channel measures (:func:`pcprep.preprocess`): ``camera``
            (z, the reference; every dataset's default) or ``plane`` (height above the
            background plane). ``plane`` won on metric defects implanted into raw CandyCane
            validation scans (pooled image AUROC 0.703 -> 0.835) but lost on the CandyCane test
            half (0.712 -> 0.603) and tied on cable_gland's implants (package README, row 39).

    Example:
        >>> PreprocessConfig().kwargs(256)
        {'size': 256, 'plane': 'robust', 'fg_threshold': 0.005, 'fill_iterations': 2, 'drop_border_objects': False, 'depth_axis': 'camera'}
        >>> PreprocessConfig().kwargs(layout="eyecandies")["drop_border_objects"]
        True
        >>> PreprocessConfig(depth_axis="plane").kwargs(layout="mvtec3d")["depth_axis"]
        'plane'
    """

    _error = ThreedsrError

    plane: str = "robust"
    fg_threshold: float = 0.005
    fill_iterations: int = 2
    drop_border_objects: bool | None = None
    depth_axis: str = "camera"

    def kwargs(self, size: int | None = None, layout: str | None = None) -> dict[str, Any]:
        """Keyword arguments of :func:`pcprep.preprocess` (what ``detector.pt`` stores as
        ``preprocess``); ``size`` (the model side) first when given; ``layout`` (pcprep's
        :func:`~pcprep.detect_layout`) settles the dataset defaults."""
        out: dict[str, Any] = {} if size is None else {"size": int(size)}
        drop = self.drop_border_objects
        out.update(
            plane=self.plane,
            fg_threshold=self.fg_threshold,
            fill_iterations=self.fill_iterations,
            drop_border_objects=bool(layout == "eyecandies" if drop is None else drop),
            depth_axis=self.depth_axis,
        )
        return out
