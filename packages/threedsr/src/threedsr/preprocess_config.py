"""``PreprocessConfig``: the pcprep parameters a detector is fitted with, shared by both methods.

They are stored in ``detector.pt`` (as ``preprocess``) so a scan at inference is prepared exactly
as the training scans were; the model side is not among them (it is
``DetectorConfig.image_size``, shared with stage 1 and checked there)."""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import pcprep
from vqcore import ConfigMixin

from threedsr.config_checks import check_bool, check_int, check_number, is_finite_real
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
        depth_unit: the unit own scans' depth / xyz files are written in (``m``, ``mm``, ``um``;
            :data:`pcprep.DEPTH_UNITS`). None = pcprep's default (float metres, integer
            millimetres), what a file written before the field was read with.
        focal_px: back-project own depth maps through a camera of this focal length (pixels,
            ``f`` or ``(fx, fy)``); None = the pixel grid. Also projects unorganized clouds
            onto ``grid_shape``.
        principal_point: the camera's ``(cx, cy)`` in pixels; None = the image centre.
        grid_shape: ``(H, W)``, the camera's pixels that unorganized PCD / PLY clouds are
            projected onto (:func:`pcprep.read_point_cloud`; needs ``focal_px``); None = such
            clouds are refused. Organized clouds keep their own grid.
        distortion: the camera's lens, ``(model, coefficients)`` (:class:`pcprep.Distortion`,
            e.g. from :func:`pcprep.read_camera`); None = a pinhole. Needs ``focal_px``.

    Example:
        >>> PreprocessConfig().kwargs(256)
        {'size': 256, 'plane': 'robust', 'fg_threshold': 0.005, 'fill_iterations': 2, 'drop_border_objects': False, 'depth_axis': 'camera'}
        >>> PreprocessConfig().kwargs(layout="eyecandies")["drop_border_objects"]
        True
        >>> PreprocessConfig(depth_axis="plane").kwargs(layout="mvtec3d")["depth_axis"]
        'plane'
        >>> PreprocessConfig(depth_unit="mm").read_options(), PreprocessConfig().read_options()
        ({'depth_unit': 'mm'}, {})
    """

    _error = ThreedsrError

    plane: str = "robust"
    fg_threshold: float = 0.005
    fill_iterations: int = 2
    drop_border_objects: bool | None = None
    depth_axis: str = "camera"
    depth_unit: str | None = None
    focal_px: float | tuple[float, float] | None = None
    principal_point: tuple[float, float] | None = None
    grid_shape: tuple[int, int] | None = None
    distortion: tuple[str, tuple[float, ...]] | None = None

    def __post_init__(self) -> None:
        # pcprep.preprocess refuses these too, but only when a scan is read, after training
        # has started (or, for a pack, after the whole dataset was read).
        if self.plane not in pcprep.PLANE_METHODS:
            raise ThreedsrError(
                f"PreprocessConfig: plane must be one of {pcprep.PLANE_METHODS}, got {self.plane!r}"
            )
        if self.depth_axis not in pcprep.DEPTH_AXES:
            raise ThreedsrError(
                f"PreprocessConfig: depth_axis must be one of {pcprep.DEPTH_AXES}, got "
                f"{self.depth_axis!r}"
            )
        check_number("PreprocessConfig", "fg_threshold", self.fg_threshold, 0.0, open_low=True)
        check_int("PreprocessConfig", "fill_iterations", self.fill_iterations, 0)
        check_bool(
            "PreprocessConfig", "drop_border_objects", self.drop_border_objects, optional=True
        )
        if self.depth_unit is not None and self.depth_unit not in pcprep.DEPTH_UNITS:
            raise ThreedsrError(
                f"depth_unit must be one of {sorted(pcprep.DEPTH_UNITS)}, got {self.depth_unit!r}"
            )
        self._check_camera()

    def _check_camera(self) -> None:
        # stored as tuples whatever sequence came in (a run's json gives lists)
        focal, point, grid = self.focal_px, self.principal_point, self.grid_shape
        if focal is not None:
            pair = isinstance(focal, list | tuple)
            values = focal if pair else (focal,)
            if not (
                len(values) == (2 if pair else 1)
                and all(is_finite_real(v) and v > 0 for v in values)
            ):
                raise ThreedsrError(
                    f"focal_px must be a positive number or (fx, fy) of them, got {focal!r}"
                )
            object.__setattr__(
                self, "focal_px", (float(focal[0]), float(focal[1])) if pair else float(focal)
            )
        if point is not None:
            if not (
                isinstance(point, list | tuple)
                and len(point) == 2
                and all(is_finite_real(v) for v in point)
            ):
                raise ThreedsrError(f"principal_point must be (cx, cy) finite, got {point!r}")
            object.__setattr__(self, "principal_point", (float(point[0]), float(point[1])))
        if grid is not None:
            if not (
                isinstance(grid, list | tuple)
                and len(grid) == 2
                and all(
                    isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 2
                    for v in grid
                )
            ):
                raise ThreedsrError(f"grid_shape must be (H, W) of integers >= 2, got {grid!r}")
            object.__setattr__(self, "grid_shape", (int(grid[0]), int(grid[1])))
        if self.distortion is not None:
            try:
                object.__setattr__(self, "distortion", pcprep.Distortion.of(self.distortion))
            except ValueError as exc:
                raise ThreedsrError(str(exc)) from None
        for name in ("principal_point", "grid_shape", "distortion"):
            if getattr(self, name) is not None and self.focal_px is None:
                raise ThreedsrError(f"{name} needs focal_px (the camera's focal length)")

    def read_options(self) -> dict[str, Any]:
        """Keywords of the pcprep readers (:func:`pcprep.index_dataset`, :func:`pcprep.read_pair`)
        that read the scans as the detector was fitted on them; empty by default."""
        out: dict[str, Any] = {}
        if self.depth_unit is not None:
            out["depth_unit"] = self.depth_unit
        for name in ("focal_px", "principal_point", "grid_shape", "distortion"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out

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
