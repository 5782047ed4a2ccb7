"""Object classes as height fields (metres above the support plane) over in-plane coordinates.

Each class draws its own dimensions and returns a height field ``h(s1, s2) >= 0`` in the object's
own frame (``s1`` along its long axis), plus its base colour and shininess for the renderer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ObjectSpec:
    """Everything the renderer needs about one drawn object instance."""

    height: Callable[[np.ndarray, np.ndarray], np.ndarray]
    size: float  # longest extent in metres (defect radii scale with it)
    top: float  # highest point in metres
    colour: tuple[float, float, float]
    specular: float


def _smooth_groove(r: np.ndarray, centre: float, half_width: float, depth: float) -> np.ndarray:
    x = np.clip(np.abs(r - centre) / half_width, 0.0, 1.0)
    return depth * 0.5 * (1.0 + np.cos(np.pi * x))


def _puck(gen: np.random.Generator) -> ObjectSpec:
    """A machined disc: flat top, filleted rim, a concentric groove and a shallow centre recess."""
    radius = gen.uniform(0.020, 0.024)
    top = gen.uniform(0.010, 0.014)
    fillet = gen.uniform(0.002, 0.0035)
    groove_at = gen.uniform(0.5, 0.65) * radius
    recess = gen.uniform(0.2, 0.3) * radius

    def height(s1: np.ndarray, s2: np.ndarray) -> np.ndarray:
        r = np.hypot(s1, s2)
        edge = np.clip(r - (radius - fillet), 0.0, None)
        h = top - fillet + np.sqrt(np.clip(fillet**2 - edge**2, 0.0, None))
        h -= _smooth_groove(r, groove_at, 0.0012, 0.001)
        h -= 0.002 * np.clip((recess - r) / 0.001, 0.0, 1.0)
        return np.where(r < radius, h, 0.0)

    return ObjectSpec(height, 2 * radius, top, (0.58, 0.60, 0.64), 0.5)


def _bar(gen: np.random.Generator) -> ObjectSpec:
    """A rounded rectangular bar with a crowned top and two drilled holes."""
    half_len = gen.uniform(0.025, 0.030)
    half_wid = gen.uniform(0.009, 0.011)
    top = gen.uniform(0.008, 0.012)
    corner = gen.uniform(0.003, 0.005)
    hole_r = gen.uniform(0.0022, 0.003)

    def height(s1: np.ndarray, s2: np.ndarray) -> np.ndarray:
        qx = np.abs(s1) - (half_len - corner)
        qy = np.abs(s2) - (half_wid - corner)
        outside = np.hypot(np.clip(qx, 0, None), np.clip(qy, 0, None))
        sdf = outside + np.minimum(np.maximum(qx, qy), 0.0) - corner  # < 0 inside
        h = top * (1.0 - 0.25 * (s2 / half_wid) ** 2)
        h *= np.sqrt(np.clip(-sdf / 0.0025, 0.0, 1.0))  # rounded edge
        for cx in (-half_len / 2, half_len / 2):
            d = np.hypot(s1 - cx, s2)
            h = np.where(d < hole_r, h - 0.004, h)
        return np.where(sdf < 0, np.clip(h, 0.0, None), 0.0)

    return ObjectSpec(height, 2 * half_len, top, (0.74, 0.56, 0.26), 0.7)


def _dome(gen: np.random.Generator) -> ObjectSpec:
    """An elliptical dome (capsule cap) on a thin flange."""
    rx = gen.uniform(0.018, 0.022)
    ry = rx * gen.uniform(0.8, 1.0)
    top = gen.uniform(0.018, 0.028)
    flange = gen.uniform(1.1, 1.2)

    def height(s1: np.ndarray, s2: np.ndarray) -> np.ndarray:
        q = (s1 / rx) ** 2 + (s2 / ry) ** 2
        h = top * np.sqrt(np.clip(1.0 - q, 0.0, None))
        return np.where(q < flange**2, np.maximum(h, 0.002), 0.0)

    return ObjectSpec(height, 2 * rx * flange, top, (0.78, 0.20, 0.16), 0.35)


OBJECT_CLASSES: dict[str, Callable[[np.random.Generator], ObjectSpec]] = {
    "puck": _puck,
    "bar": _bar,
    "dome": _dome,
}
