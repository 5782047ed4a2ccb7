"""Baseline for bench_pcprep.py: the 3DSR reference preprocessing (spec §4) written the
straightforward way with numpy / scipy, as the reference code does it (cv2 calls replaced by
their numpy / scipy equivalents with the same semantics).

Not part of any package; only the benchmark imports it.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def resize_nearest(arr: np.ndarray, h: int, w: int) -> np.ndarray:
    """cv2.INTER_NEAREST: src = floor(dst * in / out)."""
    rows = np.minimum(np.floor(np.arange(h) * arr.shape[0] / h).astype(int), arr.shape[0] - 1)
    cols = np.minimum(np.floor(np.arange(w) * arr.shape[1] / w).astype(int), arr.shape[1] - 1)
    return arr[rows[:, None], cols[None, :]]


def resize_bilinear(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """cv2.INTER_LINEAR: half-pixel centres, edge clamp, no antialiasing."""

    def axis(n_out: int, n_in: int):
        f = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, None)
        i0 = np.minimum(np.floor(f).astype(int), n_in - 1)
        return i0, np.minimum(i0 + 1, n_in - 1), (f - i0).astype(np.float32)

    y0, y1, wy = axis(h, img.shape[0])
    x0, x1, wx = axis(w, img.shape[1])
    img = img.astype(np.float32)
    if img.ndim == 2:
        img = img[..., None]
    wx3 = wx[None, :, None]
    top = img[y0][:, x0] * (1 - wx3) + img[y0][:, x1] * wx3
    bot = img[y1][:, x0] * (1 - wx3) + img[y1][:, x1] * wx3
    out = top * (1 - wy)[:, None, None] + bot * wy[:, None, None]
    return out[..., 0] if out.shape[-1] == 1 else out


def corner_plane(xyz: np.ndarray) -> np.ndarray:
    """Plane through the mean valid point of three 3x3 corner patches (reference code)."""
    pts = []
    for rs, cs in (
        (slice(0, 3), slice(0, 3)),
        (slice(0, 3), slice(-3, None)),
        (slice(-3, None), slice(0, 3)),
    ):
        patch = xyz[rs, cs].reshape(-1, 3)
        patch = patch[(patch != 0).any(-1)]
        pts.append(patch.mean(axis=0))
    p0, p1, p2 = (np.asarray(p, dtype=np.float64) for p in pts)
    normal = np.cross(p1 - p0, p2 - p0)
    normal /= np.linalg.norm(normal)
    if normal[2] < 0:
        normal = -normal
    return np.append(normal, -normal @ p0)


def fill_holes(depth: np.ndarray, iterations: int) -> np.ndarray:
    """Each pass: zero pixels get the mean of the non-zero 3x3 neighbours (vectorised)."""
    cur = depth.astype(np.float32)
    h, w = cur.shape
    for _ in range(iterations):
        pad = np.pad(cur, 1)
        nz = np.pad((cur != 0).astype(np.float32), 1)
        total = sum(pad[i : i + h, j : j + w] for i in range(3) for j in range(3))
        count = sum(nz[i : i + h, j : j + w] for i in range(3) for j in range(3))
        fill = (cur == 0) & (count > 0)
        cur = np.where(fill, total / np.maximum(count, 1), cur)
    return cur


def preprocess_reference(
    xyz: np.ndarray,
    rgb: np.ndarray,
    gt: np.ndarray | None,
    size: int = 384,
    threshold: float = 0.005,
    closing_iterations: int = 3,
    fill_iterations: int = 2,
    plane: np.ndarray | None = None,
):
    """Returns depth, rgb, foreground, gt (fractional, as the reference) and the plane."""
    xyz_s = resize_nearest(xyz, size, size).astype(np.float32)
    rgb_s = resize_bilinear(rgb, size, size) / 255.0
    gt_s = None if gt is None else resize_bilinear(gt.astype(np.float32) * 255, size, size) / 255.0
    valid = (xyz_s != 0).any(-1)
    if plane is None:
        plane = corner_plane(xyz_s)
    dist = np.abs(xyz_s.astype(np.float64) @ plane[:3] + plane[3])
    fg = (dist > threshold) & valid
    st = np.ones((3, 3), bool)
    fg = ndimage.binary_dilation(fg, st, iterations=closing_iterations, border_value=0)
    fg = ndimage.binary_erosion(fg, st, iterations=closing_iterations, border_value=1)
    z = xyz_s[..., 2] * fg
    nz = z != 0
    zmin, zmax = z[nz].min(), z[nz].max()
    depth = np.zeros_like(z)
    depth[nz] = (z[nz] - zmin) / (zmax - zmin) * 0.8 + 0.1
    return fill_holes(depth, fill_iterations), rgb_s, fg, gt_s, plane
