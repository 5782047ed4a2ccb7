"""Per-item numba kernels: gradient noise, bilinear rotation, normalisation, thresholding.

The batch drivers that run them over many items live in :mod:`depthsim._drivers`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_SQRT2 = math.sqrt(2.0)


@njit(cache=True, nogil=True)
def fade(t: float) -> float:
    """Quintic fade 6t^5 - 15t^4 + 10t^3 (zero first and second derivative at 0 and 1)."""
    return t * t * t * (t * (t * 6.0 - 15.0) + 10.0)


@njit(cache=True, nogil=True)
def perlin_into(
    out: np.ndarray, gcos: np.ndarray, gsin: np.ndarray, ry: int, rx: int, scale: float, add: bool
) -> None:
    """Evaluate one octave of gradient noise on ``out`` (H, W).

    Pixel ``(i, j)`` sits at lattice coordinate ``(i * ry / H, j * rx / W)``, the convention of the
    reference ``rand_perlin_2d_np``. ``gcos``/``gsin`` hold the unit gradient of each lattice corner
    (at least ``(ry + 1, rx + 1)``). The value is ``sqrt(2) * noise * scale``, written or added.
    """
    h, w = out.shape
    sy = ry / h
    sx = rx / w
    # Column tables, and the run of columns [start[c], start[c + 1]) inside lattice cell c.
    tx = np.empty(w, np.float64)
    fx = np.empty(w, np.float64)
    start = np.full(rx + 2, w, np.int64)
    start[0] = 0
    prev = 0
    for j in range(w):
        p = j * sx
        c = math.floor(p)
        while prev < c:
            prev += 1
            start[prev] = j
        tx[j] = p - c
        fx[j] = fade(p - c)
    k = _SQRT2 * scale
    for i in range(h):
        p = i * sy
        r = math.floor(p)
        ty = p - r
        fy = fade(ty)
        row = out[i]
        for c in range(rx):
            j0 = start[c]
            j1 = start[c + 1]
            if j0 >= j1:
                continue
            # Within a cell every corner term is linear in t: n = base + slope * t. Blend the two
            # lattice rows first (fade in y), so a pixel costs two multiply-adds and one lerp.
            g00, s00 = gcos[r, c] * ty, gsin[r, c]
            g10, s10 = gcos[r + 1, c] * (ty - 1.0), gsin[r + 1, c]
            g01, s01 = gcos[r, c + 1] * ty - gsin[r, c + 1], gsin[r, c + 1]
            g11, s11 = gcos[r + 1, c + 1] * (ty - 1.0) - gsin[r + 1, c + 1], gsin[r + 1, c + 1]
            a0 = g00 + fy * (g10 - g00)
            a1 = s00 + fy * (s10 - s00)
            b0 = g01 + fy * (g11 - g01)
            b1 = s01 + fy * (s11 - s01)
            d0 = b0 - a0
            d1 = b1 - a1
            if add:
                for j in range(j0, j1):
                    t = tx[j]
                    row[j] += k * (a0 + a1 * t + fx[j] * (d0 + d1 * t))
            else:
                for j in range(j0, j1):
                    t = tx[j]
                    row[j] = k * (a0 + a1 * t + fx[j] * (d0 + d1 * t))


@njit(cache=True, nogil=True)
def rotate_bilinear_into(src: np.ndarray, angle_deg: float, out: np.ndarray) -> None:
    """Rotate ``src`` about the pixel centre ((W-1)/2, (H-1)/2) into ``out`` (same shape).

    Bilinear interpolation; samples outside the source count as 0 (imgaug ``Affine(rotate=...)``
    defaults: order 1, constant fill 0). Positive angles turn the content clockwise on screen.
    """
    h, w = src.shape
    cy = (h - 1) * 0.5
    cx = (w - 1) * 0.5
    th = angle_deg * math.pi / 180.0
    c = math.cos(th)
    s = math.sin(th)
    for i in range(h):
        dy = i - cy
        for j in range(w):
            dx = j - cx
            x = c * dx + s * dy + cx
            y = -s * dx + c * dy + cy
            x0 = math.floor(x)
            y0 = math.floor(y)
            fxv = x - x0
            fyv = y - y0
            if 0 <= x0 < w - 1 and 0 <= y0 < h - 1:  # all four neighbours inside: no checks
                v00 = src[y0, x0]
                v01 = src[y0, x0 + 1]
                v10 = src[y0 + 1, x0]
                v11 = src[y0 + 1, x0 + 1]
            elif x0 < -1 or y0 < -1 or x0 >= w or y0 >= h:
                out[i, j] = 0.0
                continue
            else:
                v00 = src[y0, x0] if (y0 >= 0 and x0 >= 0) else 0.0
                v01 = src[y0, x0 + 1] if (y0 >= 0 and x0 + 1 < w) else 0.0
                v10 = src[y0 + 1, x0] if (y0 + 1 < h and x0 >= 0) else 0.0
                v11 = src[y0 + 1, x0 + 1] if (y0 + 1 < h and x0 + 1 < w) else 0.0
            top = v00 + fxv * (v01 - v00)
            bot = v10 + fxv * (v11 - v10)
            out[i, j] = top + fyv * (bot - top)


@njit(cache=True, nogil=True)
def noise_item_into(
    out: np.ndarray, gcos: np.ndarray, gsin: np.ndarray, ry: int, rx: int, angle_deg: float
) -> None:
    """One octave of noise rotated by ``angle_deg`` (0 skips the rotation)."""
    if angle_deg == 0.0:
        perlin_into(out, gcos, gsin, ry, rx, 1.0, False)
        return
    buf = np.empty(out.shape, np.float32)
    perlin_into(buf, gcos, gsin, ry, rx, 1.0, False)
    rotate_bilinear_into(buf, angle_deg, out)


@njit(cache=True, nogil=True)
def minmax_affine_into(img: np.ndarray, alpha: float, beta: float, affine: bool) -> None:
    """In place: min-max normalise to P in [0, 1]; then D = alpha * P + beta clipped to [0, 1]."""
    lo = np.inf
    hi = -np.inf
    for v in img.ravel():
        lo = min(lo, v)
        hi = max(hi, v)
    span = hi - lo
    inv = 1.0 / span if span > 1e-12 else 0.0
    h, w = img.shape
    for i in range(h):
        for j in range(w):
            p = (img[i, j] - lo) * inv
            if affine:
                p = alpha * p + beta
            img[i, j] = min(max(p, 0.0), 1.0)


@njit(cache=True, nogil=True)
def threshold_abs_into(img: np.ndarray, t: float) -> None:
    """In place: 1 where |img| > t, else 0."""
    h, w = img.shape
    for i in range(h):
        for j in range(w):
            img[i, j] = 1.0 if abs(img[i, j]) > t else 0.0
