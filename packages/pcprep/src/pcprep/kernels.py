"""numba kernels behind the preprocessing steps (serial, ``nogil``: parallelism is across files).

Each kernel is a plain loop nest that also runs uncompiled through ``.py_func`` (the tests do).
The kernels live in `kernels_resize`, `kernels_plane` and `kernels_depth`; this module gathers them.
"""

from pcprep.kernels_depth import box_close, fill_holes_kernel, normalize_kernel
from pcprep.kernels_plane import (
    border_points_kernel,
    foreground_kernel,
    inlier_moments,
    ransac_scores,
    smallest_eigvec3,
)
from pcprep.kernels_resize import (
    area_mask_kernel,
    resize_bilinear_kernel,
    resize_nearest_xyz_kernel,
)

__all__ = [
    "area_mask_kernel",
    "border_points_kernel",
    "box_close",
    "fill_holes_kernel",
    "foreground_kernel",
    "inlier_moments",
    "normalize_kernel",
    "ransac_scores",
    "resize_bilinear_kernel",
    "resize_nearest_xyz_kernel",
    "smallest_eigvec3",
]
