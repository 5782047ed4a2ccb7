"""numba kernels: OpenCV-rule resizes of point clouds, images and masks."""

from __future__ import annotations

import numba
import numpy as np

from pcprep.jit_options import JIT

__all__ = ["area_mask_kernel", "resize_bilinear_kernel", "resize_nearest_xyz_kernel"]


@numba.jit(**JIT)
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
    zero = np.float32(0.0)
    for i in range(out_h):
        src = xyz[min(int(np.floor(i * in_h / out_h)), in_h - 1)]
        row = out[i]
        ok_row = valid[i]
        for j in range(out_w):
            c = cols[j]
            x = src[c, 0]
            y = src[c, 1]
            z = src[c, 2]
            # branch-free (twice as fast on mixed valid/invalid rows); v - v == 0 is False
            # exactly for inf and NaN
            ok = ((x != 0) | (y != 0) | (z != 0)) & (x - x == 0) & (y - y == 0) & (z - z == 0)
            ok_row[j] = ok
            row[j, 0] = x if ok else zero
            row[j, 1] = y if ok else zero
            row[j, 2] = z if ok else zero
    return out, valid


@numba.jit(**JIT)
def resize_bilinear_kernel(img, out_h, out_w, scale, upper):  # pragma: no cover
    """cv2 INTER_LINEAR (half-pixel centres, edge clamp, no antialiasing) to float32 times ``scale``,
    clipped to ``upper`` (float rounding of a convex combination can overshoot by one ulp)."""
    in_h, in_w, ch = img.shape
    src = img.reshape(in_h, in_w * ch)
    n = out_w * ch
    out = np.empty((out_h, n), dtype=np.float32)
    # channels flattened into the row: one gather index pair and weight per output value
    left = np.empty(n, dtype=np.int64)
    right = np.empty(n, dtype=np.int64)
    wx = np.empty(n, dtype=np.float32)
    for j in range(out_w):
        fx = max((j + 0.5) * (in_w / out_w) - 0.5, 0.0)
        x0 = min(int(fx), in_w - 1)
        x1 = min(x0 + 1, in_w - 1)
        for k in range(ch):
            left[j * ch + k] = x0 * ch + k
            right[j * ch + k] = x1 * ch + k
            wx[j * ch + k] = fx - x0
    one = np.float32(1.0)
    for i in range(out_h):
        fy = max((i + 0.5) * (in_h / out_h) - 0.5, 0.0)
        y0 = min(int(fy), in_h - 1)
        top = src[y0]
        bot = src[min(y0 + 1, in_h - 1)]
        wy = np.float32(fy - y0)
        w_bot = wy * scale
        w_top = (one - wy) * scale
        row = out[i]
        for q in range(n):
            a = left[q]
            b = right[q]
            w = wx[q]
            t = np.float32(top[a]) + (np.float32(top[b]) - np.float32(top[a])) * w
            u = np.float32(bot[a]) + (np.float32(bot[b]) - np.float32(bot[a])) * w
            row[q] = min(t * w_top + u * w_bot, upper)
    return out.reshape(out_h, out_w, ch)


@numba.jit(**JIT)
def area_mask_kernel(mask, row_idx, row_w, col_idx, col_w):  # pragma: no cover
    """Fraction of each target pixel's footprint covered by ``mask`` (separable box overlaps).

    ``row_idx``/``row_w`` ``(S_h, span)`` give the source rows each target row overlaps and the
    normalised overlap lengths (likewise for columns).
    """
    in_h, in_w = mask.shape
    out_h, span_r = row_idx.shape
    out_w, span_c = col_idx.shape
    out = np.zeros((out_h, out_w), dtype=np.float64)
    row_has = np.zeros(in_h, dtype=np.bool_)
    for r in range(in_h):
        for c in range(in_w):
            if mask[r, c]:
                row_has[r] = True
                break
    # only target rows that overlap a marked source row need work (masks are mostly empty)
    i0, i1 = out_h, -1
    for i in range(out_h):
        for t in range(span_r):
            if row_w[i, t] != 0.0 and row_has[row_idx[i, t]]:
                i0 = min(i0, i)
                i1 = max(i1, i)
    if i1 < 0:
        return out
    tmp = np.zeros((i1 - i0 + 1, in_w), dtype=np.float64)
    for i in range(i0, i1 + 1):
        for t in range(span_r):
            r = row_idx[i, t]
            w = row_w[i, t]
            if w == 0.0 or not row_has[r]:
                continue
            for c in range(in_w):
                if mask[r, c]:
                    tmp[i - i0, c] += w
    for i in range(i0, i1 + 1):
        for j in range(out_w):
            acc = 0.0
            for t in range(span_c):
                acc += tmp[i - i0, col_idx[j, t]] * col_w[j, t]
            out[i, j] = acc
    return out
