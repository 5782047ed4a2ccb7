"""Lens distortion of a camera's calibration, on normalised image coordinates.

A calibrated camera maps a point ``(x, y, z)`` to the normalised coordinates ``(x / z, y / z)``,
bends them by its lens (`distort`), then to pixels ``u = fx * xd + cx``, ``v = fy * yd + cy``.
Projecting an unorganized cloud onto the camera's pixels without the lens term misplaces points
by a pixel or two near the border and swaps neighbours; back-projecting a depth map needs the
inverse (`undistort`).

Models (the names their calibration files use):

- ``plumb_bob`` (OpenCV, ROS ``camera_info``): ``k1, k2, p1, p2[, k3]``;
- ``rational_polynomial`` (OpenCV's 8-term radial): ``k1, k2, p1, p2, k3, k4, k5, k6``;
- ``division`` (HALCON ``area_scan_division``, MVTec 3D-AD's calibration): ``kappa`` on the
  normalised coordinates, i.e. HALCON's kappa times its focus squared; undistorted
  ``x = xd / (1 + kappa * rd**2)``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba
import numpy as np

from pcprep.jit_options import JIT

__all__ = [
    "DISTORTION_MODELS",
    "Camera",
    "Distortion",
    "distort",
    "lens_arguments",
    "lens_kernel",
    "lens_point",
    "undistort",
    "unlens_point",
]

#: Each model and the coefficient counts it takes.
DISTORTION_MODELS: dict[str, tuple[int, ...]] = {
    "plumb_bob": (4, 5),
    "rational_polynomial": (8,),
    "division": (1,),
}

#: `undistort`'s most fixed-point iterations for the polynomial models (OpenCV's default is 5).
#: They converge linearly, slowest for a strong barrel at the image corner (k1 = -0.25,
#: k2 = -0.0625 at r = 0.8: still 1e-7 off after 20); each point stops once a step moves it by
#: less than `UNDISTORT_TOLERANCE`.
UNDISTORT_ITERATIONS = 200
UNDISTORT_TOLERANCE = 1e-15


class Distortion(NamedTuple):
    """A lens model and its coefficients, checked.

    Example:
        >>> Distortion.checked("plumb_bob", [0.1, -0.02, 0.0, 0.0, 0.0])
        Distortion(model='plumb_bob', coefficients=(0.1, -0.02, 0.0, 0.0, 0.0))
        >>> Distortion.checked("fisheye", [0.1])
        Traceback (most recent call last):
        ...
        ValueError: distortion model must be one of ['plumb_bob', 'rational_polynomial', 'division'], got 'fisheye'
    """

    model: str
    coefficients: tuple[float, ...]

    @classmethod
    def checked(cls, model: object, coefficients: object) -> Distortion:
        if model not in DISTORTION_MODELS:
            raise ValueError(
                f"distortion model must be one of {list(DISTORTION_MODELS)}, got {model!r}"
            )
        try:
            values = tuple(float(c) for c in coefficients)  # type: ignore[attr-defined]
        except (TypeError, ValueError):
            values = ()
            ok = False
        else:
            ok = len(values) in DISTORTION_MODELS[model] and all(map(math.isfinite, values))
        if not ok:
            raise ValueError(
                f"{model} distortion takes {' or '.join(map(str, DISTORTION_MODELS[model]))} "
                f"finite coefficients, got {coefficients!r}"
            )
        return cls(str(model), values)

    @classmethod
    def of(cls, value: object) -> Distortion | None:
        """``value`` as a checked `Distortion`: one already, or ``(model, coefficients)`` as
        json gives it back (a list); None stays None.

        Example:
            >>> Distortion.of(["division", [-0.2]])
            Distortion(model='division', coefficients=(-0.2,))
        """
        if value is None or isinstance(value, Distortion):
            return value
        try:
            model, coefficients = value  # type: ignore[misc]
        except (TypeError, ValueError):
            raise ValueError(f"distortion must be (model, coefficients), got {value!r}") from None
        return cls.checked(model, coefficients)

    @property
    def is_identity(self) -> bool:
        return not any(self.coefficients)


#: `lens_arguments`' model codes, as the numba kernels take them.
NO_LENS, POLYNOMIAL, DIVISION = 0, 1, 2


def lens_arguments(distortion: Distortion | None) -> tuple[int, np.ndarray]:
    """The kernels' ``(model, coefficients)`` of a lens: a model code and 8 float64 values
    (OpenCV's order; plumb_bob's missing k3..k6 are zeros, which change nothing).

    Example:
        >>> lens_arguments(Distortion("plumb_bob", (0.1, 0.0, 0.0, 0.0)))
        (1, array([0.1, 0. , 0. , 0. , 0. , 0. , 0. , 0. ]))
        >>> lens_arguments(None)[0]
        0
    """
    distortion = Distortion.of(distortion)
    c = np.zeros(8, dtype=np.float64)
    if distortion is None or distortion.is_identity:
        return NO_LENS, c
    c[: len(distortion.coefficients)] = distortion.coefficients
    return (DIVISION if distortion.model == "division" else POLYNOMIAL), c


@numba.jit(**JIT, inline="always")
def _polynomial(x, y, c):  # pragma: no cover - exercised via py_func too
    """``(radial, dx, dy)`` of OpenCV's model: distorted = undistorted * radial + (dx, dy)."""
    r2 = x * x + y * y
    radial = 1.0 + r2 * (c[0] + r2 * (c[1] + r2 * c[4]))
    radial = radial / (1.0 + r2 * (c[5] + r2 * (c[6] + r2 * c[7])))
    dx = 2.0 * c[2] * x * y + c[3] * (r2 + 2.0 * x * x)
    dy = c[2] * (r2 + 2.0 * y * y) + 2.0 * c[3] * x * y
    return radial, dx, dy


# Inlined into the z-buffer kernels: called there per point, it cost the lens path 1.75x
# (zbuffer_kernel on 88k points, 1.95 -> 3.42 ms); inlined, 1.71-1.76 ms as written in place.
@numba.jit(**JIT, inline="always")
def lens_point(x, y, model, c):  # pragma: no cover - exercised via py_func too
    """Where the lens ``(model, c)`` puts the normalised point ``(x, y)``; NaN where it images
    nothing (a division lens past its fold, a polynomial whose radial factor is not positive)."""
    if model == NO_LENS:
        return x, y
    if model == DIVISION:
        root = 1.0 - 4.0 * c[0] * (x * x + y * y)
        if not (root >= 0.0):
            return np.nan, np.nan
        scale = 2.0 / (1.0 + np.sqrt(root))
        return x * scale, y * scale
    radial, dx, dy = _polynomial(x, y, c)
    if not (radial > 0.0):
        return np.nan, np.nan
    return x * radial + dx, y * radial + dy


@numba.jit(**JIT)
def unlens_point(xd, yd, model, c):  # pragma: no cover - exercised via py_func too
    """The normalised point whose image is ``(xd, yd)``: closed form for the division lens,
    OpenCV's ``undistortPoints`` fixed-point iteration for the polynomials; NaN where the lens
    images no point (beyond the largest radius a barrel lens reaches)."""
    if model == NO_LENS:
        return xd, yd
    if model == DIVISION:
        denominator = 1.0 + c[0] * (xd * xd + yd * yd)
        if not (denominator > 0.0):
            return np.nan, np.nan
        return xd / denominator, yd / denominator
    x = xd
    y = yd
    for _ in range(UNDISTORT_ITERATIONS):
        radial, dx, dy = _polynomial(x, y, c)
        if not (radial > 0.0):  # run past the fold: no point images here
            break
        step_x = (xd - dx) / radial - x
        step_y = (yd - dy) / radial - y
        x += step_x
        y += step_y
        if abs(step_x) + abs(step_y) < UNDISTORT_TOLERANCE:
            return x, y
    # no fixed point: past the lens's fold no ray is imaged there (and NaN stays NaN)
    return np.nan, np.nan


@numba.jit(**JIT)
def lens_kernel(x, y, model, c, inverse, out_x, out_y):  # pragma: no cover - via py_func too
    """`lens_point` (or, ``inverse``, `unlens_point`) of each of the flat arrays ``x``, ``y``."""
    for i in range(x.size):
        if inverse:
            out_x[i], out_y[i] = unlens_point(x[i], y[i], model, c)
        else:
            out_x[i], out_y[i] = lens_point(x[i], y[i], model, c)


def _apply(x: object, y: object, distortion: object, inverse: bool):
    x, y = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    model, c = lens_arguments(distortion)  # type: ignore[arg-type]
    if model == NO_LENS:
        return x, y
    flat_x, flat_y = np.ascontiguousarray(x).ravel(), np.ascontiguousarray(y).ravel()
    out_x, out_y = np.empty_like(flat_x), np.empty_like(flat_y)
    lens_kernel(flat_x, flat_y, model, c, inverse, out_x, out_y)
    return out_x.reshape(x.shape), out_y.reshape(y.shape)


def distort(
    x: np.ndarray, y: np.ndarray, distortion: Distortion | None
) -> tuple[np.ndarray, np.ndarray]:
    """Where the lens puts the normalised coordinates ``(x, y)``: ``(xd, yd)``, float64.

    Coordinates the model cannot image (a division lens past its fold, a polynomial whose
    radial factor is not positive: far outside the field of view) are NaN, so a projection
    drops them instead of folding them back onto the image. The z-buffer runs the same
    `lens_point` on each point.

    Example:
        >>> xd, yd = distort(np.array([0.0, 0.3]), np.array([0.0, 0.4]), Distortion("division", (-0.2,)))
        >>> xd.round(6).tolist(), float(np.hypot(xd[1], yd[1]) / 0.5) < 1  # barrel: pulled in
        ([0.0, 0.286335], True)
    """
    return _apply(x, y, distortion, False)


def undistort(
    xd: np.ndarray, yd: np.ndarray, distortion: Distortion | None
) -> tuple[np.ndarray, np.ndarray]:
    """The normalised coordinates whose image is ``(xd, yd)``: the inverse of `distort` (closed
    form for ``division``; fixed-point iterations as OpenCV's ``undistortPoints`` otherwise);
    NaN where the lens images no point.

    Example:
        >>> lens = Distortion("plumb_bob", (-0.3, 0.1, 0.001, -0.002, 0.0))
        >>> x, y = undistort(*distort(np.array([0.4]), np.array([-0.3]), lens), lens)
        >>> bool(abs(x[0] - 0.4) < 1e-9 and abs(y[0] + 0.3) < 1e-9)
        True
    """
    return _apply(xd, yd, distortion, True)


class Camera(NamedTuple):
    """A calibrated camera: what `pcprep.read_camera` reads from a calibration file, and what
    `read_pair` / `read_point_cloud` / `index_dataset` take as ``grid_shape``, ``focal_px``,
    ``principal_point`` and ``distortion``.

    Attributes:
        grid_shape: ``(H, W)``, its resolution in pixels.
        focal_px: ``(fx, fy)`` in pixels.
        principal_point: ``(cx, cy)`` in pixels (column, row; pixel centres at integers).
        distortion: its lens model, or None for a pinhole.
    """

    grid_shape: tuple[int, int]
    focal_px: tuple[float, float]
    principal_point: tuple[float, float]
    distortion: Distortion | None = None

    def read_options(self) -> dict[str, object]:
        """The keyword arguments of pcprep's readers that describe this camera.

        Example:
            >>> Camera((480, 640), (600.0, 601.0), (320.0, 240.0)).read_options()["focal_px"]
            (600.0, 601.0)
        """
        return {
            "grid_shape": self.grid_shape,
            "focal_px": self.focal_px,
            "principal_point": self.principal_point,
            "distortion": self.distortion,
        }
