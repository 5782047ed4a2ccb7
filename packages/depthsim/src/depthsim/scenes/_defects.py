"""Surface defects: height changes (dent, bump, crack) and albedo changes (stain, crack).

Each defect is drawn on the object's top surface in in-plane coordinates (metres), so its size
does not depend on the image resolution. The ground truth is where the change is material.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFECT_MODALITY: dict[str, str] = {
    "dent": "depth",
    "bump": "depth",
    "stain": "rgb",
    "crack": "both",
}
"""Defect type -> the modality it changes: ``depth`` (xyz only), ``rgb`` (rgb only) or ``both``."""

GT_IDS: dict[str, int] = {"dent": 255, "bump": 254, "stain": 253, "crack": 252}
"""Grey value of each defect type in ``gt/NNN.png`` (MVTec 3D-AD style; 0 is good)."""


@dataclass(frozen=True)
class DefectEffect:
    """What one defect does: ``dh`` is added to the height (m); ``paint`` blends ``colour`` in."""

    dh: np.ndarray | None
    paint: np.ndarray | None
    colour: np.ndarray | None
    gt: np.ndarray


def _pick_centre(
    gen: np.random.Generator, a: np.ndarray, b: np.ndarray, h: np.ndarray
) -> tuple[float, float]:
    """A random point of the upper part of the object (falls back to its highest pixel)."""
    cand = np.flatnonzero(h.ravel() >= 0.6 * h.max())
    k = int(cand[gen.integers(len(cand))]) if len(cand) else int(np.argmax(h))
    return float(a.ravel()[k]), float(b.ravel()[k])


def _blob_distance(
    gen: np.random.Generator,
    a: np.ndarray,
    b: np.ndarray,
    centre: tuple[float, float],
    radius: float,
) -> np.ndarray:
    """Normalised distance to an irregular elliptical blob (< 1 inside)."""
    th = gen.uniform(0, np.pi)
    aspect = gen.uniform(1.0, 1.8)
    da, db = a - centre[0], b - centre[1]
    u = (da * np.cos(th) + db * np.sin(th)) / aspect
    v = -da * np.sin(th) + db * np.cos(th)
    ang = np.arctan2(v, u)
    wobble = 1.0
    for k in (2, 3, 5):
        wobble = wobble + gen.uniform(0.0, 0.12) * np.sin(k * ang + gen.uniform(0, 2 * np.pi))
    return np.hypot(u, v) / (radius * wobble)


def _gt(change: np.ndarray, footprint: np.ndarray, centre_px: int) -> np.ndarray:
    gt = (change > 0.1) & footprint
    if not gt.any():  # a defect smaller than a pixel still marks its centre
        gt.ravel()[centre_px] = True
    return gt


def _centre_pixel(a: np.ndarray, b: np.ndarray, centre: tuple[float, float]) -> int:
    return int(np.argmin(np.hypot(a - centre[0], b - centre[1])))


def make_defect(
    kind: str,
    gen: np.random.Generator,
    a: np.ndarray,
    b: np.ndarray,
    h: np.ndarray,
    size: float,
) -> DefectEffect:
    """Draw one defect of ``kind`` on the object whose clean height field is ``h``.

    Args:
        kind: a key of :data:`DEFECT_MODALITY`.
        gen: random stream of the defect (separate from the scene's).
        a, b: in-plane coordinates (m) of every pixel.
        h: clean height above the support plane (m); > 0 on the object.
        size: the object's longest extent (m); radii are 4-12 % of it.
    """
    footprint = h > 0
    centre = _pick_centre(gen, a, b, h)
    radius = gen.uniform(0.04, 0.12) * size
    cpx = _centre_pixel(a, b, centre)
    if kind in ("dent", "bump"):
        rho = _blob_distance(gen, a, b, centre, radius)
        prof = np.where(rho < 1, 0.5 * (1 + np.cos(np.pi * np.clip(rho, 0, 1))), 0.0) * footprint
        amount = gen.uniform(0.0015, 0.005)
        if kind == "bump":
            prof = prof**0.6
        dh = -amount * prof if kind == "dent" else amount * prof
        if kind == "dent":
            dh = np.maximum(dh, -0.8 * h)
        return DefectEffect(dh=dh, paint=None, colour=None, gt=_gt(prof, footprint, cpx))
    if kind == "stain":
        rho = _blob_distance(gen, a, b, centre, radius)
        soft = np.clip((1.0 - rho) * gen.uniform(3, 8), 0.0, 1.0) * footprint
        colour = np.array([gen.uniform(0.05, 0.35), gen.uniform(0.08, 0.3), gen.uniform(0.0, 0.2)])
        if gen.random() < 0.5:  # a light deposit instead of a dark one
            colour = 1.0 - 0.5 * colour
        paint = soft * gen.uniform(0.7, 0.95)
        return DefectEffect(dh=None, paint=paint, colour=colour, gt=_gt(soft, footprint, cpx))
    if kind == "crack":
        length = gen.uniform(2.5, 5.0) * radius
        half_width = gen.uniform(0.0006, 0.0010)
        heading = gen.uniform(0, 2 * np.pi)
        turns = np.cumsum(gen.normal(0, 0.25, 48))
        step = length / 48
        pts = np.cumsum(np.stack([np.cos(heading + turns), np.sin(heading + turns)], -1) * step, 0)
        pts = pts - pts.mean(0) + np.asarray(centre)
        near = np.hypot(a - centre[0], b - centre[1]) < length + 4 * half_width
        d = np.full(a.shape, np.inf)
        d[near] = np.min(
            np.hypot(a[near][:, None] - pts[:, 0], b[near][:, None] - pts[:, 1]), axis=1
        )
        prof = np.sqrt(np.clip(1.0 - d / half_width, 0.0, 1.0)) * footprint
        dh = np.maximum(-gen.uniform(0.0015, 0.003) * prof, -0.8 * h)
        return DefectEffect(
            dh=dh,
            paint=prof * 0.85,
            colour=np.array([0.05, 0.04, 0.04]),
            gt=_gt(prof, footprint, cpx),
        )
    raise ValueError(f"unknown defect type {kind!r}; expected one of {sorted(DEFECT_MODALITY)}")
