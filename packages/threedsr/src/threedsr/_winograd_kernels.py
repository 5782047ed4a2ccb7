"""numba kernels for the Winograd input and output transforms (see :mod:`threedsr.fastconv`).

Each kernel reads its source once and writes its result once: the tile gather, the zero padding,
both one-dimensional transforms, the bias and the crop to the output size happen in registers.
The torch formulation of the same steps (pad, strided gather, two dense (T² x T²) products,
permutes) moved the data five to six times and took longer than the GEMMs in between.

Layouts (P = N·th·tw tiles, tile index ``(img·th + ty)·tw + tx``):
    x (N, C, H, W) -> v (T², C, P) -> [GEMM] -> m (T², K, P) -> y (N, K, H, W)

The F(4x4, 3x3) matrices are Lavin & Gray's (points 0, ±1, ±2); every coefficient is an exact
float32, and all arithmetic is float32 (the ``np.float32`` constants keep numba from promoting
to float64).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

F2 = np.float32(2.0)
F4 = np.float32(4.0)
F5 = np.float32(5.0)
F8 = np.float32(8.0)
ZERO = np.float32(0.0)


@njit(cache=True, nogil=True, inline="always")
def _gather_tile(
    x: np.ndarray, img: int, c: int, y0: int, x0: int, d: np.ndarray
) -> None:  # pragma: no cover
    """``d`` = the (T x T) window of ``x[img, c]`` at (y0, x0), zeros outside the image."""
    h, w = x.shape[2], x.shape[3]
    for i in range(d.shape[0]):
        yy = y0 + i
        for j in range(d.shape[1]):
            xx = x0 + j
            d[i, j] = x[img, c, yy, xx] if 0 <= yy < h and 0 <= xx < w else ZERO


@njit(cache=True, nogil=True, inline="always")
def _input_tile_f4(
    d: np.ndarray, t: np.ndarray, v: np.ndarray, c: int, p: int
) -> None:  # pragma: no cover
    for j in range(6):
        d0, d1, d2, d3, d4, d5 = d[0, j], d[1, j], d[2, j], d[3, j], d[4, j], d[5, j]
        t[0, j] = F4 * d0 - F5 * d2 + d4
        t[1, j] = d3 + d4 - F4 * (d1 + d2)
        t[2, j] = F4 * (d1 - d2) - d3 + d4
        t[3, j] = F2 * (d3 - d1) - d2 + d4
        t[4, j] = F2 * (d1 - d3) - d2 + d4
        t[5, j] = F4 * d1 - F5 * d3 + d5
    for i in range(6):
        d0, d1, d2, d3, d4, d5 = t[i, 0], t[i, 1], t[i, 2], t[i, 3], t[i, 4], t[i, 5]
        v[6 * i, c, p] = F4 * d0 - F5 * d2 + d4
        v[6 * i + 1, c, p] = d3 + d4 - F4 * (d1 + d2)
        v[6 * i + 2, c, p] = F4 * (d1 - d2) - d3 + d4
        v[6 * i + 3, c, p] = F2 * (d3 - d1) - d2 + d4
        v[6 * i + 4, c, p] = F2 * (d1 - d3) - d2 + d4
        v[6 * i + 5, c, p] = F4 * d1 - F5 * d3 + d5


@njit(cache=True, nogil=True, inline="always")
def _input_tile_f2(
    d: np.ndarray, t: np.ndarray, v: np.ndarray, c: int, p: int
) -> None:  # pragma: no cover
    for j in range(4):
        t[0, j] = d[0, j] - d[2, j]
        t[1, j] = d[1, j] + d[2, j]
        t[2, j] = d[2, j] - d[1, j]
        t[3, j] = d[1, j] - d[3, j]
    for i in range(4):
        v[4 * i, c, p] = t[i, 0] - t[i, 2]
        v[4 * i + 1, c, p] = t[i, 1] + t[i, 2]
        v[4 * i + 2, c, p] = t[i, 2] - t[i, 1]
        v[4 * i + 3, c, p] = t[i, 1] - t[i, 3]


@njit(cache=True, nogil=True, inline="always")
def _output_tile_f4(
    col: np.ndarray, s: np.ndarray, out: np.ndarray, y0: int, x0: int, b: float
) -> None:  # pragma: no cover
    """One output tile of ``out`` (H, W) at (y0, x0) from its products ``col`` (T²,)."""
    h, w = out.shape
    for j in range(6):
        m0, m1, m2 = col[j], col[6 + j], col[12 + j]
        m3, m4, m5 = col[18 + j], col[24 + j], col[30 + j]
        s[0, j] = m0 + m1 + m2 + m3 + m4
        s[1, j] = m1 - m2 + F2 * (m3 - m4)
        s[2, j] = m1 + m2 + F4 * (m3 + m4)
        s[3, j] = m1 - m2 + F8 * (m3 - m4) + m5
    for i in range(min(4, h - y0)):
        m0, m1, m2, m3, m4, m5 = s[i, 0], s[i, 1], s[i, 2], s[i, 3], s[i, 4], s[i, 5]
        out[y0 + i, x0] = m0 + m1 + m2 + m3 + m4 + b
        if x0 + 1 < w:
            out[y0 + i, x0 + 1] = m1 - m2 + F2 * (m3 - m4) + b
        if x0 + 2 < w:
            out[y0 + i, x0 + 2] = m1 + m2 + F4 * (m3 + m4) + b
        if x0 + 3 < w:
            out[y0 + i, x0 + 3] = m1 - m2 + F8 * (m3 - m4) + m5 + b


@njit(cache=True, nogil=True, inline="always")
def _output_tile_f2(
    col: np.ndarray, s: np.ndarray, out: np.ndarray, y0: int, x0: int, b: float
) -> None:  # pragma: no cover
    """One output tile of ``out`` (H, W) at (y0, x0) from its products ``col`` (T²,)."""
    h, w = out.shape
    for j in range(4):
        m0, m1, m2, m3 = col[j], col[4 + j], col[8 + j], col[12 + j]
        s[0, j] = m0 + m1 + m2
        s[1, j] = m1 - m2 - m3
    for i in range(min(2, h - y0)):
        out[y0 + i, x0] = s[i, 0] + s[i, 1] + s[i, 2] + b
        if x0 + 1 < w:
            out[y0 + i, x0 + 1] = s[i, 1] - s[i, 2] - s[i, 3] + b


@njit(cache=True, parallel=True, nogil=True)
def input_transform(
    x: np.ndarray, v: np.ndarray, th: int, tw: int, tile: int
) -> None:  # pragma: no cover
    """``v[:, c, p] = vec(Bᵀ d B)`` for each zero-padded input tile ``d`` of F(tile x tile, 3x3).

    Shape:
        - x: (N, C, H, W) float32, C-contiguous. v: (T², C, N·th·tw) float32, T = tile + 2.
    """
    n, c_in = x.shape[0], x.shape[1]
    size = tile + 2
    for c in prange(c_in):
        d = np.empty((size, size), np.float32)
        t = np.empty((size, size), np.float32)
        for img in range(n):
            for ty in range(th):
                for tx in range(tw):
                    _gather_tile(x, img, c, tile * ty - 1, tile * tx - 1, d)
                    p = (img * th + ty) * tw + tx
                    if tile == 4:
                        _input_tile_f4(d, t, v, c, p)
                    else:
                        _input_tile_f2(d, t, v, c, p)


@njit(cache=True, parallel=True, nogil=True)
def output_transform(
    m: np.ndarray, bias: np.ndarray, y: np.ndarray, th: int, tw: int, tile: int
) -> None:  # pragma: no cover
    """Each output tile = ``Aᵀ M A + bias`` from its products ``m[:, k, p]``, cropped to ``y``.

    Shape:
        - m: (T², K, N·th·tw) float32. bias: (K,) float32. y: (N, K, H, W) float32, written.
    """
    n, k_out = y.shape[0], y.shape[1]
    for k in prange(k_out):
        s = np.empty((tile, tile + 2), np.float32)
        b = bias[k]
        for img in range(n):
            for ty in range(th):
                for tx in range(tw):
                    p = (img * th + ty) * tw + tx
                    if tile == 4:
                        _output_tile_f4(m[:, k, p], s, y[img, k], 4 * ty, 4 * tx, b)
                    else:
                        _output_tile_f2(m[:, k, p], s, y[img, k], 2 * ty, 2 * tx, b)
