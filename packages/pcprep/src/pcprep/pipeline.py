"""`preprocess`: one raw `Sample` to model inputs, composed of the steps in `pcprep.steps`."""

from __future__ import annotations

import numpy as np

from pcprep.errors import PcprepError
from pcprep.plane import (
    PlaneFitError,
    border_points,
    fit_plane_corners,
    fit_plane_robust,
    foreground_mask,
    plane_height,
)
from pcprep.records import Prepared, Sample
from pcprep.steps import (
    close_mask,
    drop_border_components,
    fill_holes,
    normalize_depth,
    normalize_height,
    parse_size,
    resize_mask,
    resize_rgb,
    resize_xyz,
)

__all__ = ["check_sample", "preprocess"]

PLANE_METHODS = ("robust", "corners")
DEPTH_AXES = ("camera", "plane")


def check_sample(sample: Sample) -> None:
    """Raise `PcprepError` (naming ``sample.path``) unless shapes and dtypes are usable."""
    if not isinstance(sample, Sample):  # a path or an array failed later on a missing .xyz
        raise TypeError(
            f"sample must be a pcprep.Sample (read_mvtec3d, read_eyecandies, read_pair), "
            f"got {type(sample).__name__}"
        )
    xyz, rgb, path = sample.xyz, sample.rgb, sample.path
    if not isinstance(xyz, np.ndarray) or xyz.ndim != 3 or xyz.shape[-1] != 3:
        raise PcprepError.at(path, f"xyz must be (H, W, 3), got shape {np.shape(xyz)}")
    if not np.issubdtype(xyz.dtype, np.floating):
        raise PcprepError.at(path, f"xyz must be float (metres), got dtype {xyz.dtype}")
    if min(xyz.shape[:2]) < 2:
        raise PcprepError.at(path, f"point cloud too small: {xyz.shape[0]}x{xyz.shape[1]}")
    if rgb is None:  # a depth-only scan: nothing to check
        pass
    elif not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise PcprepError.at(path, f"rgb must be (H, W, 3), got shape {np.shape(rgb)}")
    elif rgb.dtype != np.uint8:
        raise PcprepError.at(path, f"rgb must be uint8, got dtype {rgb.dtype}")
    elif rgb.shape[:2] != xyz.shape[:2]:
        raise PcprepError.at(
            path, f"rgb size {rgb.shape[:2]} does not match xyz size {xyz.shape[:2]}"
        )
    if sample.gt is not None and np.shape(sample.gt) != xyz.shape[:2]:
        raise PcprepError.at(
            path, f"gt size {np.shape(sample.gt)} does not match xyz size {xyz.shape[:2]}"
        )


def preprocess(
    sample: Sample,
    *,
    size: int | tuple[int, int] = 384,
    plane: str = "robust",
    fg_threshold: float = 0.005,
    fill_iterations: int = 2,
    closing_iterations: int = 3,
    gt_mode: str = "area",
    border_band: float = 0.05,
    ransac_threshold: float | None = None,
    ransac_iterations: int = 256,
    drop_border_objects: bool = False,
    depth_axis: str = "camera",
) -> Prepared:
    """Turn a raw organized scan into the 3DSR model inputs (reference recipe, spec §4).

    Steps: nearest resize of xyz (bilinear for RGB, area-threshold for gt) -> background plane ->
    foreground = valid & distance > ``fg_threshold`` -> 3x3 closing x ``closing_iterations`` ->
    z on the foreground normalised per image to [0.1, 0.9] (background 0) -> hole filling.

    Args:
        sample: the raw scan (`read_mvtec3d`, `read_eyecandies`, `read_pair`).
        size: output ``S`` or ``(S_h, S_w)``.
        plane: ``"robust"`` (default): RANSAC + least-squares refit on the valid points of a
            border band, which tolerates objects touching the border, missing corners and tilted
            supports; ``"corners"``: the reference code's 3-corner plane, for parity.
        fg_threshold: point-to-plane distance (metres) above which a point is foreground.
        fill_iterations: hole-filling passes (3x3 mean of non-zero neighbours).
        closing_iterations: 3x3 closing repetitions on the foreground mask.
        gt_mode: ``"area"`` (target pixel anomalous when >= half its footprint is) or ``"nearest"``.
        border_band: band width as a fraction of ``min(S_h, S_w)`` (at least 3 px), robust plane only.
        ransac_threshold: inlier distance for the robust fit; default ``fg_threshold / 2``.
        ransac_iterations: RANSAC hypotheses (seeded: the result is deterministic).
        drop_border_objects: remove foreground components touching the image border (after
            closing), e.g. Eyecandies' conveyor rails; off by default (reference behaviour).
            When every foreground part touches the border, the mask is kept whole.
        depth_axis: what the depth channel measures before the per-image normalisation:
            ``"camera"`` (default, the reference): z along the camera axis; ``"plane"``: the
            height above the background plane (`normalize_height`: the plane at 0.9, the scan's
            top at 0.1), so that an oblique camera (Eyecandies looks at a receding conveyor: a
            cane's camera z spans 0.5-1.1 m, its own height a fraction of that) does not put the
            support's tilt into the object's depth. Both map nearer the camera to lower values.

    Returns:
        `Prepared` at the requested size.

    Raises:
        PcprepError: naming ``sample.path``: malformed arrays, no valid point, no usable background
            points (robust: none in the border band; corners: an empty corner patch), or an empty
            foreground. Non-finite points are treated as invalid, so no output is ever NaN.

    Examples:
        >>> import numpy as np
        >>> yy, xx = np.mgrid[0:64, 0:64] / 64.0
        >>> z = 0.5 + 0.02 * xx                      # tilted support plane
        >>> z[24:40, 24:40] -= 0.02                  # a box 2 cm closer to the camera
        >>> xyz = np.stack([xx * 0.1, yy * 0.1, z], -1).astype(np.float32)
        >>> rgb = np.zeros((64, 64, 3), np.uint8)
        >>> out = preprocess(Sample(xyz, rgb), size=32)
        >>> out.depth.shape, int(out.foreground.sum()), float(out.depth.max()) <= 0.9
        ((32, 32), 64, True)
    """
    if depth_axis not in DEPTH_AXES:
        raise ValueError(f"depth_axis must be one of {DEPTH_AXES}, got {depth_axis!r}")
    if plane not in PLANE_METHODS:
        raise ValueError(f"plane must be one of {PLANE_METHODS}, got {plane!r}")
    if not (np.isfinite(fg_threshold) and fg_threshold > 0):
        raise ValueError(f"fg_threshold must be a positive number, got {fg_threshold!r}")
    out_size = parse_size(size)
    check_sample(sample)
    path = sample.path

    xyz, valid = resize_xyz(sample.xyz, out_size)
    if not valid.any():
        raise PcprepError.at(path, "all points are invalid (zero or non-finite)")
    if sample.rgb is None:  # kept the shape every batch and cache expects; `colour` says why
        rgb = np.zeros((*out_size, 3), np.float32)
    else:
        rgb = resize_rgb(sample.rgb, out_size)
    gt = None if sample.gt is None else resize_mask(sample.gt, out_size, mode=gt_mode)

    try:
        if plane == "robust":
            pts = border_points(xyz, valid, band=border_band)
            if pts.shape[0] < 3:
                raise PlaneFitError(
                    f"only {pts.shape[0]} valid points in the image border band; no background plane"
                )
            thr = fg_threshold / 2 if ransac_threshold is None else ransac_threshold
            plane_eq = fit_plane_robust(pts, threshold=thr, iterations=ransac_iterations)
        else:
            plane_eq = fit_plane_corners(xyz, valid)
    except PlaneFitError as exc:
        raise PcprepError.at(path, str(exc)) from None

    fg = close_mask(foreground_mask(xyz, valid, plane_eq, fg_threshold), closing_iterations)
    if drop_border_objects:
        inner = drop_border_components(fg)
        # An object that itself reaches the border is all there is: keep it rather than fail.
        fg = inner if (inner & valid).any() else fg
    if depth_axis == "camera":
        depth, count = normalize_depth(xyz[..., 2], fg & valid)
    else:
        depth, count = normalize_height(plane_height(xyz, plane_eq), fg & valid)
    if count == 0:
        raise PcprepError.at(
            path,
            f"empty foreground: no valid point is more than {fg_threshold} from the background plane",
        )
    depth = fill_holes(depth, fill_iterations)
    return Prepared(
        depth=depth,
        rgb=rgb,
        valid=valid,
        foreground=fg,
        gt=gt,
        native_shape=sample.shape,
        path=path,
        label=int(sample.label),
        defect_type=str(sample.defect_type),
        plane=plane_eq,
        colour=sample.rgb is not None,
    )
