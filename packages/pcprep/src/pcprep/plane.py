"""Background (support) plane estimation and foreground segmentation.

Planes are ``(a, b, c, d)`` float64 with a unit normal: the signed distance of ``p`` is
``a x + b y + c z + d``.
"""

from __future__ import annotations

import numpy as np

from pcprep.kernels import border_points_kernel, foreground_kernel, inlier_moments, ransac_scores
from pcprep.kernels_plane import smallest_eigvec3

__all__ = [
    "PlaneFitError",
    "border_points",
    "fit_plane_corners",
    "fit_plane_lstsq",
    "fit_plane_robust",
    "foreground_mask",
    "plane_distance",
    "plane_height",
]


class PlaneFitError(ValueError):
    """Not enough usable points for a plane (the caller adds the file name)."""


def _check_xyz_valid(xyz: np.ndarray, valid: np.ndarray) -> None:
    # the numba kernels do not check bounds: a mismatch would read outside the arrays
    if np.ndim(xyz) != 3 or np.shape(xyz)[2] != 3 or np.shape(valid) != np.shape(xyz)[:2]:
        raise ValueError(
            f"xyz must be (H, W, 3) and valid (H, W), got {np.shape(xyz)} and {np.shape(valid)}"
        )


def border_points(xyz: np.ndarray, valid: np.ndarray, *, band: float = 0.05) -> np.ndarray:
    """Valid points within a border band of ``max(3, band * min(H, W))`` pixels.

    Shape:
        ``(H, W, 3)``, ``(H, W)`` -> ``(N, 3)`` float64.
    """
    _check_xyz_valid(xyz, valid)
    h, w = valid.shape
    width = max(3, round(band * min(h, w)))
    return border_points_kernel(
        np.ascontiguousarray(xyz), np.ascontiguousarray(valid, dtype=bool), width
    )


def fit_plane_lstsq(points: np.ndarray) -> np.ndarray:
    """Total-least-squares plane (smallest principal axis) through ``(N, 3)`` points, ``N >= 3``.

    Examples:
        >>> pts = np.array([[0, 0, 1.0], [1, 0, 1.0], [0, 1, 1.0], [1, 1, 1.0]])
        >>> np.abs(fit_plane_lstsq(pts)).round(6).tolist()
        [0.0, 0.0, 1.0, 1.0]
    """
    points = np.asarray(points, dtype=np.float64)
    if points.shape[0] < 3:
        raise PlaneFitError(f"need at least 3 points for a plane, got {points.shape[0]}")
    # 3x3 scatter instead of an N x 3 SVD: same axis, O(N); an infinite threshold keeps all points
    _, centre, scatter = inlier_moments(points, np.zeros(4), np.inf)
    return _plane_from_moments(centre, scatter)


def plane_distance(xyz: np.ndarray, plane: np.ndarray) -> np.ndarray:
    """Absolute point-to-plane distance, shape ``xyz.shape[:-1]``."""
    plane = np.asarray(plane, dtype=np.float64)
    return np.abs(np.asarray(xyz, dtype=np.float64) @ plane[:3] + plane[3])


def plane_height(xyz: np.ndarray, plane: np.ndarray) -> np.ndarray:
    """Signed distance to the plane, positive on the camera's side (the camera is the origin of
    the point cloud's frame), shape ``xyz.shape[:-1]``; ``plane`` has a unit normal.

    Examples:
        >>> plane = np.array([0.0, 0.0, -1.0, 1.0])  # z = 1, the normal pointing away
        >>> plane_height(np.array([[0.0, 0.0, 0.9], [0.0, 0.0, 1.1]]), plane).round(2).tolist()
        [0.1, -0.1]
    """
    plane = np.asarray(plane, dtype=np.float64)
    signed = np.asarray(xyz, dtype=np.float64) @ plane[:3] + plane[3]
    # At the origin the signed distance is plane[3]: the camera's side has its sign.
    return signed if plane[3] >= 0 else -signed


def fit_plane_robust(
    points: np.ndarray,
    *,
    threshold: float,
    iterations: int = 256,
    max_points: int = 4096,
    refits: int = 2,
    confidence: float = 0.999999,
    rng: np.random.Generator | int | None = 0,
) -> np.ndarray:
    """RANSAC plane (largest consensus) refined by least squares on its inliers.

    Args:
        points: ``(N, 3)`` candidate background points (e.g. `border_points`).
        threshold: inlier distance, in the points' units.
        iterations: at most this many random 3-point hypotheses.
        max_points: RANSAC scores hypotheses on about this many points at most (an evenly spaced
            subset); the refits use all points.
        refits: least-squares refits, each on the inliers of the previous plane.
        confidence: adaptive stop: no more hypotheses once an all-inlier triple has been drawn
            with this probability (given the best inlier ratio so far); 1 tries all.
        rng: seed or generator; the default seed makes the fit deterministic.

    Returns:
        ``(4,)`` plane with unit normal.

    Raises:
        PlaneFitError: fewer than 3 points, or all points collinear.
    """
    points = np.ascontiguousarray(points, dtype=np.float64)
    n = points.shape[0]
    if n < 3:
        raise PlaneFitError(f"need at least 3 valid background points, got {n}")
    gen = np.random.default_rng(rng)
    # an evenly spaced subset keeps every part of the border represented
    # (a strided view: no copy)
    subset = points if n <= max_points else points[:: -(-n // max_points)]
    m = subset.shape[0]
    # triples with a repeated index are degenerate and simply score -1 in the kernel
    triples = gen.integers(0, m, size=(max(1, iterations), 3), dtype=np.int64)
    if m == 3:
        triples[0] = (0, 1, 2)
    scores = ransac_scores(subset, triples, float(threshold), float(confidence))
    best = int(np.argmax(scores))
    if scores[best] < 3:
        raise PlaneFitError("background points are collinear; no plane through them")
    plane = fit_plane_lstsq(subset[triples[best]])
    for _ in range(refits):
        count, mean, scatter = inlier_moments(points, plane, float(threshold))
        if count < 3:
            break
        candidate = _plane_from_moments(mean, scatter)
        if not np.isfinite(candidate).all():
            break
        plane = candidate
    return plane


def _plane_from_moments(mean: np.ndarray, scatter: np.ndarray) -> np.ndarray:
    normal = smallest_eigvec3(np.ascontiguousarray(scatter, dtype=np.float64))
    if normal[2] < 0:  # orient towards +z so results are reproducible
        normal = -normal
    return np.append(normal, -normal @ mean)


def fit_plane_corners(xyz: np.ndarray, valid: np.ndarray, *, patch: int = 3) -> np.ndarray:
    """The reference code's plane: through the mean valid point of the top-left, top-right and
    bottom-left ``patch x patch`` corner patches.

    Raises:
        PlaneFitError: a corner patch without a valid point, or collinear corner points (the
            reference would silently produce a zero normal and NaN distances).
    """
    _check_xyz_valid(xyz, valid)
    corners = {
        "top-left": (slice(0, patch), slice(0, patch)),
        "top-right": (slice(0, patch), slice(-patch, None)),
        "bottom-left": (slice(-patch, None), slice(0, patch)),
    }
    pts = []
    for name, (rs, cs) in corners.items():
        ok = valid[rs, cs]
        if not ok.any():
            raise PlaneFitError(f"no valid point in the {name} {patch}x{patch} corner patch")
        pts.append(xyz[rs, cs][ok].astype(np.float64).mean(axis=0))
    p0, p1, p2 = pts
    normal = np.cross(p1 - p0, p2 - p0)
    norm = np.linalg.norm(normal)
    if not np.isfinite(norm) or norm <= 1e-12 * max(1.0, np.linalg.norm(p1 - p0) ** 2):
        raise PlaneFitError("corner points are collinear; no plane through them")
    normal = normal / norm
    if normal[2] < 0:
        normal = -normal
    return np.append(normal, -normal @ p0)


def foreground_mask(
    xyz: np.ndarray, valid: np.ndarray, plane: np.ndarray, threshold: float
) -> np.ndarray:
    """``valid & distance(point, plane) > threshold`` as a bool ``(H, W)`` mask."""
    _check_xyz_valid(xyz, valid)
    if np.shape(plane) != (4,):
        raise ValueError(f"plane must be (a, b, c, d), got shape {np.shape(plane)}")
    return foreground_kernel(
        np.ascontiguousarray(xyz),
        np.ascontiguousarray(valid, dtype=bool),
        np.asarray(plane, dtype=np.float64),
        float(threshold),
    )
