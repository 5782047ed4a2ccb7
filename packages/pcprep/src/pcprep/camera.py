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

import numpy as np

__all__ = ["DISTORTION_MODELS", "Camera", "Distortion", "distort", "undistort"]

#: Each model and the coefficient counts it takes.
DISTORTION_MODELS: dict[str, tuple[int, ...]] = {
    "plumb_bob": (4, 5),
    "rational_polynomial": (8,),
    "division": (1,),
}

#: `undistort`'s fixed-point iterations for the polynomial models (OpenCV's default is 5; the
#: residual of a strong barrel lens at the image corner is below 1e-9 after 20).
UNDISTORT_ITERATIONS = 20


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


def _polynomial_terms(
    x: np.ndarray, y: np.ndarray, c: tuple[float, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(radial, dx, dy)`` of OpenCV's model: distorted = undistorted * radial + (dx, dy)."""
    k1, k2, p1, p2 = c[:4]
    k3 = c[4] if len(c) > 4 else 0.0
    r2 = x * x + y * y
    radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
    if len(c) == 8:
        k4, k5, k6 = c[5:]
        radial = radial / (1.0 + r2 * (k4 + r2 * (k5 + r2 * k6)))
    dx = 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x)
    dy = p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y
    return radial, dx, dy


def distort(
    x: np.ndarray, y: np.ndarray, distortion: Distortion | None
) -> tuple[np.ndarray, np.ndarray]:
    """Where the lens puts the normalised coordinates ``(x, y)``: ``(xd, yd)``, float64.

    Coordinates the model cannot image (a division lens past its fold, a polynomial whose
    radial factor is not positive: far outside the field of view) are NaN, so a projection
    drops them instead of folding them back onto the image.

    Example:
        >>> xd, yd = distort(np.array([0.0, 0.3]), np.array([0.0, 0.4]), Distortion("division", (-0.2,)))
        >>> xd.round(6).tolist(), float(np.hypot(xd[1], yd[1]) / 0.5) < 1  # barrel: pulled in
        ([0.0, 0.286335], True)
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if distortion is None or distortion.is_identity:
        return x, y
    c = distortion.coefficients
    if distortion.model == "division":
        root = 1.0 - 4.0 * c[0] * (x * x + y * y)
        with np.errstate(invalid="ignore"):
            scale = np.where(root >= 0.0, 2.0 / (1.0 + np.sqrt(np.maximum(root, 0.0))), np.nan)
        return x * scale, y * scale
    radial, dx, dy = _polynomial_terms(x, y, c)
    radial = np.where(radial > 0.0, radial, np.nan)
    return x * radial + dx, y * radial + dy


def undistort(
    xd: np.ndarray, yd: np.ndarray, distortion: Distortion | None
) -> tuple[np.ndarray, np.ndarray]:
    """The normalised coordinates whose image is ``(xd, yd)``: the inverse of `distort` (closed
    form for ``division``; fixed-point iterations as OpenCV's ``undistortPoints`` otherwise).

    Example:
        >>> lens = Distortion("plumb_bob", (-0.3, 0.1, 0.001, -0.002, 0.0))
        >>> x, y = undistort(*distort(np.array([0.4]), np.array([-0.3]), lens), lens)
        >>> bool(abs(x[0] - 0.4) < 1e-9 and abs(y[0] + 0.3) < 1e-9)
        True
    """
    xd = np.asarray(xd, dtype=np.float64)
    yd = np.asarray(yd, dtype=np.float64)
    if distortion is None or distortion.is_identity:
        return xd, yd
    c = distortion.coefficients
    if distortion.model == "division":
        scale = 1.0 / (1.0 + c[0] * (xd * xd + yd * yd))
        return xd * scale, yd * scale
    x, y = xd, yd
    for _ in range(UNDISTORT_ITERATIONS):
        radial, dx, dy = _polynomial_terms(x, y, c)
        x = (xd - dx) / radial
        y = (yd - dy) / radial
    return x, y


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
