"""numba kernels: binary closing, depth normalisation and hole filling."""

from __future__ import annotations

import numba
import numpy as np

from pcprep.jit_options import JIT

__all__ = ["box_close", "fill_holes_kernel", "normalize_kernel"]


@numba.jit(**JIT)
def _window_any(mask, radius, axis, outside_true):  # pragma: no cover
    """1-D sliding-window OR (``outside_true=False``) or AND (True) of width ``2 radius + 1``
    along ``axis``; pixels outside the image are ignored."""
    h, w = mask.shape
    out = np.empty((h, w), dtype=np.bool_)
    n_lines = h if axis == 1 else w
    length = w if axis == 1 else h
    target = not outside_true  # dilation looks for a True, erosion for a False
    near = np.empty(length, dtype=np.int64)
    for line in range(n_lines):
        # distance to the nearest `target` pixel: a forward then a backward sweep
        last = -(1 << 30)
        for k in range(length):
            v = mask[line, k] if axis == 1 else mask[k, line]
            if v == target:
                last = k
            near[k] = k - last
        last = 1 << 30
        for k in range(length - 1, -1, -1):
            v = mask[line, k] if axis == 1 else mask[k, line]
            if v == target:
                last = k
            hit = near[k] <= radius or last - k <= radius
            res = hit if target else not hit
            if axis == 1:
                out[line, k] = res
            else:
                out[k, line] = res
    return out


@numba.jit(**JIT)
def box_close(mask, iterations):  # pragma: no cover
    """Binary closing by a 3x3 square repeated ``iterations`` times, with OpenCV border rules.

    ``iterations`` dilations then as many erosions by 3x3 equal one dilation / erosion by a
    ``(2 iterations + 1)`` square, done separably in O(pixels). Pixels outside the image never
    count (dilation pads with False, erosion with True), as ``cv2.morphologyEx`` does.
    """
    if iterations <= 0:
        return mask.copy()
    h, w = mask.shape
    r0, r1, c0, c1 = h, -1, w, -1
    for i in range(h):
        for j in range(w):
            if mask[i, j]:
                r0 = min(r0, i)
                r1 = max(r1, i)
                c0 = min(c0, j)
                c1 = max(c1, j)
    out = np.zeros((h, w), dtype=np.bool_)
    if r1 < 0:
        return out
    # Only the bounding box grown by 2 k matters: the dilation stays within k of it, and every
    # in-image neighbour that the erosion of a dilated pixel reads lies within 2 k, so the crop
    # edges that are not image edges are never read by a pixel that can stay True.
    m = 2 * iterations
    r0, r1, c0, c1 = max(r0 - m, 0), min(r1 + m, h - 1), max(c0 - m, 0), min(c1 + m, w - 1)
    crop = mask[r0 : r1 + 1, c0 : c1 + 1].copy()
    dil = _window_any(_window_any(crop, iterations, 1, False), iterations, 0, False)
    out[r0 : r1 + 1, c0 : c1 + 1] = _window_any(
        _window_any(dil, iterations, 1, True), iterations, 0, True
    )
    return out


@numba.jit(**JIT)
def normalize_kernel(z, keep, low, high):  # pragma: no cover
    """Per-image min-max of ``z`` over ``keep & z != 0`` mapped to ``[low, high]``; others 0.

    Returns ``(depth, count)``; a constant foreground maps to ``(low + high) / 2``.
    """
    h, w = z.shape
    zmin = np.inf
    zmax = -np.inf
    count = 0
    for i in range(h):
        for j in range(w):
            v = z[i, j]
            if keep[i, j] and v != 0.0:
                count += 1
                zmin = min(zmin, v)
                zmax = max(zmax, v)
    out = np.zeros((h, w), dtype=np.float32)
    if count == 0:
        return out, count
    span = zmax - zmin
    # a span so small (subnormal) that (high - low) / span would overflow is flat too: no inf or
    # NaN out; the test needs no division, so it never overflows itself
    flat = not (span > 0.0 and span > (high - low) * 1e-308)
    scale = 0.0 if flat else (high - low) / span
    base = 0.5 * (low + high) if flat else low
    for i in range(h):
        for j in range(w):
            v = z[i, j]
            if keep[i, j] and v != 0.0:
                out[i, j] = base + scale * (v - zmin)
    return out, count


@numba.jit(**JIT)
def fill_holes_kernel(depth, iterations):  # pragma: no cover
    """Each pass sets every zero pixel to the mean of its non-zero 3x3 neighbours (from the previous
    pass); pixels without any stay 0 and non-zero pixels never change.

    Work is confined to the bounding box of the non-zero pixels, grown by one pixel per pass.
    """
    h, w = depth.shape
    cur = depth.copy()
    r0, r1, c0, c1 = h, -1, w, -1
    for i in range(h):
        for j in range(w):
            if cur[i, j] != 0.0:
                r0 = min(r0, i)
                r1 = max(r1, i)
                c0 = min(c0, j)
                c1 = max(c1, j)
    if r1 < 0 or iterations <= 0:
        return cur
    nxt = cur.copy()
    zero = np.float32(0.0)
    for _ in range(iterations):
        r0 = max(r0 - 1, 0)
        r1 = min(r1 + 1, h - 1)
        c0 = max(c0 - 1, 0)
        c1 = min(c1 + 1, w - 1)
        changed = False
        for i in range(r0, r1 + 1):
            lo = max(i - 1, 0)
            hi = min(i + 2, h)
            for j in range(c0, c1 + 1):
                if cur[i, j] != 0.0:
                    nxt[i, j] = cur[i, j]
                    continue
                total = zero
                count = 0
                for ii in range(lo, hi):
                    for jj in range(max(j - 1, 0), min(j + 2, w)):
                        v = cur[ii, jj]
                        total += v  # zeros add nothing
                        count += v != 0.0
                nxt[i, j] = total / count if count > 0 else zero
                changed |= count > 0
        # swap buffers: both hold the same values outside the current window
        cur, nxt = nxt, cur
        if not changed:
            break
    return cur
