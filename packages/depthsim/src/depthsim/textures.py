"""Procedural colour textures: a stage-1 RGB source for users without an image folder.

Each image stacks a palette-mapped fractal-noise field with one to three overlays (stripes,
checkerboards, noise blobs, discs, smooth colour gradients), a lighting ramp and sensor grain, so
that an autoencoder trained on them sees saturated and dull colours, sharp edges, smooth shading
and fine texture.
"""

from __future__ import annotations

import numpy as np

from depthsim._rng import RngLike, as_generator, check_count, check_shape
from depthsim.noise import perlin_batch


def _random_palette(gen: np.random.Generator, k: int) -> np.ndarray:
    """``k`` colours (k, 3) in [0, 1] from random HSV (hues clustered or spread)."""
    base = gen.random()
    spread = gen.choice([0.08, 0.25, 1.0])
    hue = (base + spread * gen.random(k)) % 1.0
    sat = gen.beta(1.2, 1.2, k)
    val = gen.uniform(0.1, 1.0, k)
    i = np.floor(hue * 6).astype(int) % 6
    f = hue * 6 - np.floor(hue * 6)
    p, q, t = val * (1 - sat), val * (1 - f * sat), val * (1 - (1 - f) * sat)
    table = np.stack(
        [
            np.stack([val, t, p], -1),
            np.stack([q, val, p], -1),
            np.stack([p, val, t], -1),
            np.stack([p, q, val], -1),
            np.stack([t, p, val], -1),
            np.stack([val, p, q], -1),
        ]
    )
    return table[i, np.arange(k)]


def _palette_map(field01: np.ndarray, palette: np.ndarray, steps: int | None) -> np.ndarray:
    """Map a [0, 1] field through a piecewise-linear palette (optionally posterised)."""
    k = len(palette)
    pal = palette.astype(np.float32)
    if k == 1:
        return np.broadcast_to(pal[0], (*field01.shape, 3)).copy()
    x = field01 * np.float32(k - 1)
    if steps:
        x = np.round(x * np.float32(steps / (k - 1))) * np.float32((k - 1) / steps)
    lo = np.minimum(x.astype(np.intp), k - 2)
    frac = (x - lo)[..., None]
    base = pal[lo]
    return base + (pal[lo + 1] - base) * frac


def _noise01(gen: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    res = (int(gen.integers(1, 9)), int(gen.integers(1, 9)))
    f = perlin_batch(1, shape, res, rng=gen, octaves=int(gen.integers(1, 6)))[0]
    lo, hi = f.min(), f.max()
    return (f - lo) * np.float32(1.0 / (hi - lo)) if hi > lo else np.zeros_like(f)


def _grid(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (y, x) over the longer side, as broadcastable float32 (H, 1), (1, W)."""
    h, w = shape
    scale = np.float32(1.0 / max(h, w))
    return np.arange(h, dtype=np.float32)[:, None] * scale, np.arange(w, dtype=np.float32)[
        None
    ] * scale


def _rotated_coords(
    gen: np.random.Generator, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    y, x = _grid(shape)
    th = gen.uniform(0, np.pi)
    c, s = np.float32(np.cos(th)), np.float32(np.sin(th))
    return x * c + y * s, y * c - x * s


def _overlay_mask(gen: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A soft [0, 1] mask of one pattern kind."""
    kind = gen.integers(0, 5)
    u, v = _rotated_coords(gen, shape)
    if kind == 0:  # stripes, optionally warped by noise
        freq = gen.uniform(2, 40)
        warp = gen.uniform(0, 0.15) * (_noise01(gen, shape) - 0.5)
        s = np.sin(2 * np.pi * freq * (u + warp) + gen.uniform(0, 2 * np.pi))
        return np.clip(s * gen.uniform(1, 20), -1, 1) * 0.5 + 0.5
    if kind == 1:  # checkerboard
        freq = gen.uniform(2, 24)
        c = np.sin(2 * np.pi * freq * u) * np.sin(2 * np.pi * freq * v)
        return (c > 0).astype(np.float32)
    if kind == 2:  # thresholded noise blobs
        n = _noise01(gen, shape)
        t = gen.uniform(0.35, 0.65)
        return np.clip((n - t) * gen.uniform(5, 60), 0, 1)
    if kind == 3:  # a few discs
        h, w = shape
        y, x = _grid(shape)
        m = np.zeros(shape, np.float32)
        for _ in range(int(gen.integers(1, 8))):
            cy, cx, r = (
                gen.uniform(0, h / max(h, w)),
                gen.uniform(0, w / max(h, w)),
                gen.uniform(0.03, 0.3),
            )
            m = np.maximum(m, np.clip((r - np.hypot(y - cy, x - cx)) * gen.uniform(30, 400), 0, 1))
        return m
    return np.clip(u * gen.uniform(0.5, 2) + gen.uniform(-0.5, 0.5), 0, 1)  # smooth ramp


def procedural_rgb(n: int, shape: tuple[int, int] | int, *, rng: RngLike = None) -> np.ndarray:
    """``n`` varied procedural colour textures.

    Args:
        n: number of images.
        shape: ``(H, W)``.
        rng: Generator, seed or None (same seed, same images).

    Returns:
        ``(n, H, W, 3)`` float32 in [0, 1].

    Example:
        >>> x = procedural_rgb(2, (32, 32), rng=0)
        >>> x.shape, x.dtype, bool(x.min() >= 0 and x.max() <= 1)
        ((2, 32, 32, 3), dtype('float32'), True)
    """
    n = check_count(n)
    h, w = check_shape(shape)
    gen = as_generator(rng)
    out = np.empty((n, h, w, 3), np.float32)
    for i in range(n):
        palette = _random_palette(gen, int(gen.integers(2, 6)))
        steps = int(gen.integers(2, 7)) if gen.random() < 0.3 else None
        img = _palette_map(_noise01(gen, (h, w)), palette, steps)
        for _ in range(int(gen.integers(1, 4))):
            m = _overlay_mask(gen, (h, w))[..., None] * np.float32(gen.uniform(0.5, 1.0))
            colour = (
                _random_palette(gen, 1)[0]
                if gen.random() < 0.6
                else palette[gen.integers(len(palette))]
            ).astype(np.float32)
            img += (colour - img) * m
        ramp = _rotated_coords(gen, (h, w))[0]
        light = np.float32(gen.uniform(0.6, 1.0)) + np.float32(gen.uniform(0, 0.5)) * ramp
        img *= light[..., None]
        img += np.float32(gen.uniform(0, 0.03)) * gen.standard_normal(img.shape, dtype=np.float32)
        np.clip(img, 0.0, 1.0, out=out[i])
    return out
