"""numba kernels: OpenCV-rule resizes of point clouds, images and masks."""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["area_mask_kernel", "resize_bilinear_kernel", "resize_nearest_xyz_kernel"]

# serial and GIL-free: parallelism is across files; every kernel also runs through .py_func
_JIT = {"nopython": True, "nogil": True, "cache": True}


@numba.jit(**_JIT)
def resize_nearest_xyz_kernel(xyz, out_h, out_w):  # pragma: no cover - exercised via py_func too
    """cv2 INTER_NEAREST (``src = floor(dst * in / out)``) plus the validity mask.

    A point is valid when all coordinates are finite and not all are zero; invalid points are
    written as exact zeros.
    """
    in_h, in_w = xyz.shape[0], xyz.shape[1]
    out = np.empty((out_h, out_w, 3), dtype=np.float32)
    valid = np.empty((out_h, out_w), dtype=np.bool_)
    cols = np.empty(out_w, dtype=np.int64)
    for j in range(out_w):
        cols[j] = min(int(np.floor(j * in_w / out_w)), in_w - 1)
    for i in range(out_h):
        src = xyz[min(int(np.floor(i * in_h / out_h)), in_h - 1)]
        for j in range(out_w):
            c = cols[j]
            x = src[c, 0]
            y = src[c, 1]
            z = src[c, 2]
            # v - v == 0 is False exactly for inf and NaN
            ok = (x != 0 or y != 0 or z != 0) and x - x == 0 and y - y == 0 and z - z == 0
            valid[i, j] = ok
            if ok:
                out[i, j, 0] = x
                out[i, j, 1] = y
                out[i, j, 2] = z
            else:
                out[i, j, 0] = 0.0
                out[i, j, 1] = 0.0
                out[i, j, 2] = 0.0
    return out, valid


@numba.jit(**_JIT)
def resize_bilinear_kernel(img, out_h, out_w, scale, upper):  # pragma: no cover
    """cv2 INTER_LINEAR (half-pixel centres, edge clamp, no antialiasing) to float32 times ``scale``,
    clipped to ``upper`` (float rounding of a convex combination can overshoot by one ulp)."""
    in_h, in_w, ch = img.shape
    out = np.empty((out_h, out_w, ch), dtype=np.float32)
    c0 = np.empty(out_w, dtype=np.int64)
    c1 = np.empty(out_w, dtype=np.int64)
    wx = np.empty(out_w, dtype=np.float32)
    for j in range(out_w):
        fx = max((j + 0.5) * (in_w / out_w) - 0.5, 0.0)
        x0 = min(int(fx), in_w - 1)
        c0[j] = x0
        c1[j] = min(x0 + 1, in_w - 1)
        wx[j] = fx - x0
    one = np.float32(1.0)
    for i in range(out_h):
        fy = max((i + 0.5) * (in_h / out_h) - 0.5, 0.0)
        y0 = min(int(fy), in_h - 1)
        top = img[y0]
        bot = img[min(y0 + 1, in_h - 1)]
        wy = np.float32(fy - y0)
        wy1 = one - wy
        row = out[i]
        for j in range(out_w):
            a = c0[j]
            b = c1[j]
            w = wx[j]
            w1 = one - w
            f00 = w1 * wy1 * scale
            f01 = w * wy1 * scale
            f10 = w1 * wy * scale
            f11 = w * wy * scale
            for k in range(ch):
                v = (
                    np.float32(top[a, k]) * f00
                    + np.float32(top[b, k]) * f01
                    + np.float32(bot[a, k]) * f10
                    + np.float32(bot[b, k]) * f11
                )
                row[j, k] = v if v < upper else upper
    return out


@numba.jit(**_JIT)
def area_mask_kernel(mask, row_idx, row_w, col_idx, col_w):  # pragma: no cover
    """Fraction of each target pixel's footprint covered by ``mask`` (separable box overlaps).

    ``row_idx``/``row_w`` ``(S_h, span)`` give the source rows each target row overlaps and the
    normalised overlap lengths (likewise for columns).
    """
    in_h, in_w = mask.shape
    out_h, span_r = row_idx.shape
    out_w, span_c = col_idx.shape
    tmp = np.zeros((out_h, in_w), dtype=np.float64)
    row_has = np.zeros(in_h, dtype=np.bool_)
    for r in range(in_h):
        for c in range(in_w):
            if mask[r, c]:
                row_has[r] = True
                break
    out_has = np.zeros(out_h, dtype=np.bool_)
    for i in range(out_h):
        for t in range(span_r):
            r = row_idx[i, t]
            w = row_w[i, t]
            if w == 0.0 or not row_has[r]:
                continue
            out_has[i] = True
            for c in range(in_w):
                if mask[r, c]:
                    tmp[i, c] += w
    out = np.zeros((out_h, out_w), dtype=np.float64)
    for i in range(out_h):
        if not out_has[i]:
            continue
        for j in range(out_w):
            acc = 0.0
            for t in range(span_c):
                acc += tmp[i, col_idx[j, t]] * col_w[j, t]
            out[i, j] = acc
    return out
