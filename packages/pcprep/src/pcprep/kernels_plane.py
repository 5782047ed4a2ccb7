"""numba kernels: border points, RANSAC scoring, inlier moments, plane distances."""

from __future__ import annotations

import numba
import numpy as np

from pcprep.jit_options import JIT

__all__ = [
    "border_points_kernel",
    "foreground_kernel",
    "inlier_moments",
    "ransac_scores",
    "smallest_eigvec3",
]


@numba.jit(**JIT)
def border_points_kernel(xyz, valid, width):  # pragma: no cover
    """Valid points within ``width`` pixels of the image border, as ``(N, 3)`` float64 (row-major
    order); only the band is visited."""
    h, w = valid.shape
    cap = 0
    for i in range(h):
        cap += w if (i < width or i >= h - width) else min(2 * width, w)
    pts = np.empty((cap, 3), dtype=np.float64)
    k = 0
    for i in range(h):
        full = i < width or i >= h - width
        left_end = w if full else min(width, w)
        right_start = w if full else max(w - width, width)
        for j in range(left_end):
            if valid[i, j]:
                pts[k, 0] = xyz[i, j, 0]
                pts[k, 1] = xyz[i, j, 1]
                pts[k, 2] = xyz[i, j, 2]
                k += 1
        for j in range(right_start, w):
            if valid[i, j]:
                pts[k, 0] = xyz[i, j, 0]
                pts[k, 1] = xyz[i, j, 1]
                pts[k, 2] = xyz[i, j, 2]
                k += 1
    return pts[:k].copy()


@numba.jit(**JIT)
def inlier_moments(points, plane, threshold):  # pragma: no cover
    """Count, mean and 3x3 centred scatter of the points within ``threshold`` of ``plane``."""
    n = 0
    mean = np.zeros(3)
    for k in range(points.shape[0]):
        p = points[k]
        if abs(plane[0] * p[0] + plane[1] * p[1] + plane[2] * p[2] + plane[3]) <= threshold:
            n += 1
            for a in range(3):
                mean[a] += p[a]
    scatter = np.zeros((3, 3))
    if n == 0:
        return n, mean, scatter
    mean /= n
    for k in range(points.shape[0]):
        p = points[k]
        if abs(plane[0] * p[0] + plane[1] * p[1] + plane[2] * p[2] + plane[3]) <= threshold:
            for a in range(3):
                da = p[a] - mean[a]
                for b in range(a, 3):
                    scatter[a, b] += da * (p[b] - mean[b])
    for a in range(3):
        for b in range(a):
            scatter[a, b] = scatter[b, a]
    return n, mean, scatter


@numba.jit(**JIT)
def ransac_scores(points, triples, threshold, confidence):  # pragma: no cover
    """Inlier count of the plane through each index triple (degenerate triples score -1).

    Stops early (remaining scores stay -1) once, with the best inlier ratio ``w`` so far, the
    chance that all hypotheses tried missed an all-inlier triple, ``(1 - w^3)^k``, falls below
    ``1 - confidence``; ``confidence >= 1`` scores every triple.
    """
    n_hyp = triples.shape[0]
    scores = np.full(n_hyp, -1, dtype=np.int64)
    n = points.shape[0]
    best = 0
    log_fail = np.log(1.0 - confidence) if confidence < 1.0 else -np.inf
    for h in range(n_hyp):
        if best > 0 and confidence < 1.0:
            w3 = (best / n) ** 3
            if w3 >= 1.0 or h * np.log(1.0 - w3) < log_fail:
                break
        p0 = points[triples[h, 0]]
        p1 = points[triples[h, 1]]
        p2 = points[triples[h, 2]]
        ux, uy, uz = p1[0] - p0[0], p1[1] - p0[1], p1[2] - p0[2]
        vx, vy, vz = p2[0] - p0[0], p2[1] - p0[1], p2[2] - p0[2]
        nx = uy * vz - uz * vy
        ny = uz * vx - ux * vz
        nz = ux * vy - uy * vx
        norm = np.sqrt(nx * nx + ny * ny + nz * nz)
        scale = np.sqrt(ux * ux + uy * uy + uz * uz) * np.sqrt(vx * vx + vy * vy + vz * vz)
        if norm <= 1e-6 * scale or norm == 0.0:
            continue
        nx /= norm
        ny /= norm
        nz /= norm
        d = -(nx * p0[0] + ny * p0[1] + nz * p0[2])
        count = 0
        for k in range(n):
            dist = abs(nx * points[k, 0] + ny * points[k, 1] + nz * points[k, 2] + d)
            if dist <= threshold:
                count += 1
        scores[h] = count
        if count > best:
            best = count
    return scores


@numba.jit(**JIT)
def foreground_kernel(xyz, valid, plane, threshold):  # pragma: no cover
    """``valid & |plane . (x, y, z, 1)| > threshold`` per pixel (plane has a unit normal)."""
    h, w = valid.shape
    fg = np.empty((h, w), dtype=np.bool_)
    a, b, c, d = plane[0], plane[1], plane[2], plane[3]
    for i in range(h):
        for j in range(w):
            # branch-free; a NaN distance (never produced by the resize) compares False
            dist = abs(a * xyz[i, j, 0] + b * xyz[i, j, 1] + c * xyz[i, j, 2] + d)
            fg[i, j] = valid[i, j] & (dist > threshold)
    return fg


@numba.jit(**JIT)
def smallest_eigvec3(a):  # pragma: no cover
    """Unit eigenvector of the smallest eigenvalue of a symmetric 3x3 matrix (cyclic Jacobi).

    Done here rather than with ``numpy.linalg.eigh`` so that the tiny plane solve never wakes a
    multithreaded BLAS/LAPACK pool (whose spinning threads cost more CPU than the solve).
    """
    m = a.copy()
    v = np.eye(3)
    for _ in range(64):
        off = m[0, 1] * m[0, 1] + m[0, 2] * m[0, 2] + m[1, 2] * m[1, 2]
        scale = m[0, 0] * m[0, 0] + m[1, 1] * m[1, 1] + m[2, 2] * m[2, 2]
        if off <= 1e-30 * scale or off == 0.0:
            break
        for p in range(2):
            for q in range(p + 1, 3):
                if m[p, q] == 0.0:
                    continue
                theta = (m[q, q] - m[p, p]) / (2.0 * m[p, q])
                t = (1.0 if theta >= 0 else -1.0) / (abs(theta) + np.sqrt(theta * theta + 1.0))
                c = 1.0 / np.sqrt(t * t + 1.0)
                s = t * c
                for k in range(3):  # m <- m J
                    mkp = m[k, p]
                    mkq = m[k, q]
                    m[k, p] = c * mkp - s * mkq
                    m[k, q] = s * mkp + c * mkq
                for k in range(3):  # m <- J^T m
                    mpk = m[p, k]
                    mqk = m[q, k]
                    m[p, k] = c * mpk - s * mqk
                    m[q, k] = s * mpk + c * mqk
                for k in range(3):
                    vkp = v[k, p]
                    vkq = v[k, q]
                    v[k, p] = c * vkp - s * vkq
                    v[k, q] = s * vkp + c * vkq
    best = 0
    for k in range(1, 3):
        if m[k, k] < m[best, best]:
            best = k
    out = v[:, best].copy()
    return out / np.sqrt(out[0] * out[0] + out[1] * out[1] + out[2] * out[2])
