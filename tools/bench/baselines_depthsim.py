"""Plain vectorised numpy baselines of the depthsim recipes, written the way the reference code
(DRAEM / DSR / 3DSR ``perlin.py``) does them: meshgrid lattice coordinates, gradient tiles built
with ``np.repeat``, then the rotation as a separate image warp (imgaug there; scipy's bilinear
``affine_transform`` with zero padding here, imgaug no longer installs next to numpy 2).
"""

from __future__ import annotations

import math

import numpy as np


def lerp_np(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    return (y - x) * w + x


def rand_perlin_2d_np(
    shape: tuple[int, int], res: tuple[int, int], rng: np.random.Generator
) -> np.ndarray:
    """The reference's ``rand_perlin_2d_np`` (shape must be divisible by res)."""
    delta = (res[0] / shape[0], res[1] / shape[1])
    d = (shape[0] // res[0], shape[1] // res[1])
    grid = np.mgrid[0 : res[0] : delta[0], 0 : res[1] : delta[1]].transpose(1, 2, 0) % 1
    angles = 2 * math.pi * rng.random((res[0] + 1, res[1] + 1))
    gradients = np.stack((np.cos(angles), np.sin(angles)), axis=-1)

    def tile_grads(slice1, slice2):
        g = gradients[slice1[0] : slice1[1], slice2[0] : slice2[1]]
        return np.repeat(np.repeat(g, d[0], axis=0), d[1], axis=1)

    def dot(grad, shift):
        g = grid[: shape[0], : shape[1]]
        return (
            np.stack((g[..., 0] + shift[0], g[..., 1] + shift[1]), axis=-1)
            * grad[: shape[0], : shape[1]]
        ).sum(axis=-1)

    n00 = dot(tile_grads([0, -1], [0, -1]), [0, 0])
    n10 = dot(tile_grads([1, None], [0, -1]), [-1, 0])
    n01 = dot(tile_grads([0, -1], [1, None]), [0, -1])
    n11 = dot(tile_grads([1, None], [1, None]), [-1, -1])
    t = grid[: shape[0], : shape[1]]
    t = 6 * t**5 - 15 * t**4 + 10 * t**3
    return math.sqrt(2) * lerp_np(
        lerp_np(n00, n10, t[..., 0]), lerp_np(n01, n11, t[..., 0]), t[..., 1]
    )


def rotate_np(img: np.ndarray, angle_deg: float) -> np.ndarray:
    """Bilinear rotation about the pixel centre with zero fill (imgaug ``Affine(rotate=...)``)."""
    from scipy import ndimage

    th = np.deg2rad(angle_deg)
    mat = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    centre = (np.array(img.shape) - 1) / 2
    return ndimage.affine_transform(
        img, mat, offset=centre - mat @ centre, order=1, mode="grid-constant", cval=0.0
    )


def simulate_depth_np(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Spec 2.2 with the reference's numpy pieces: 2^a x 2^b Perlin, rotation, min-max, affine."""
    a, b = rng.integers(0, 6, size=2)
    noise = rand_perlin_2d_np(shape, (2 ** int(a), 2 ** int(b)), rng)
    noise = rotate_np(noise, rng.uniform(-90, 90))
    p = (noise - noise.min()) / (noise.max() - noise.min())
    alpha, u = rng.random(2)
    return np.clip(alpha * p + u * (1 - alpha), 0, 1).astype(np.float32)


def anomaly_mask_np(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Spec 3.3: same noise recipe, then |noise| > t, t ~ U(0.4, 0.8)."""
    a, b = rng.integers(0, 6, size=2)
    noise = rotate_np(
        rand_perlin_2d_np(shape, (2 ** int(a), 2 ** int(b)), rng), rng.uniform(-90, 90)
    )
    return (np.abs(noise) > rng.uniform(0.4, 0.8)).astype(np.float32)
