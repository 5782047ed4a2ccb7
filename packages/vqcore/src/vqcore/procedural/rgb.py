"""Procedural colour textures in torch: depthsim's ``procedural_rgb`` recipe, batched on a device.

Per image: a palette (2-5 random HSV colours, hues clustered or spread) mapped over a fractal
noise field (posterised with probability 0.3), one to three overlays (stripes warped by noise,
checkerboard, thresholded noise blobs, 1-7 discs, smooth ramp) blended towards a colour, a
lighting ramp and Gaussian sensor grain. Every distribution is depthsim's; the draws come from a
``torch.Generator`` in a different order, so the images match depthsim's in distribution, not
pixel for pixel.

Each overlay slot computes every pattern kind for every image and keeps the drawn one: a few
extra element-wise passes, but no data-dependent indexing that would make the device wait.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .noise import fractal_perlin

__all__ = ["procedural_rgb", "random_palettes", "sample_beta"]

_MAX_COLOURS = 5
_MAX_DISCS = 7


class _Draw:
    """Uniform/integer/normal draws of shape ``(n, *extra)`` from one generator on one device."""

    def __init__(self, n: int, generator: torch.Generator | None, device: torch.device) -> None:
        self.n, self.gen, self.device = n, generator, device

    def uniform(self, lo: float, hi: float, *extra: int) -> Tensor:
        u = torch.rand((self.n, *extra), generator=self.gen, device=self.device)
        return lo + (hi - lo) * u

    def integers(self, lo: int, hi: int, *extra: int) -> Tensor:
        """Integers in ``[lo, hi)`` (numpy's convention)."""
        return torch.randint(lo, hi, (self.n, *extra), generator=self.gen, device=self.device)


def sample_beta(
    a: float, b: float, shape: tuple[int, ...], *, generator=None, device=None, tries: int = 64
) -> Tensor:
    """Beta(a, b) samples by Jöhnk's method (uniforms only, so any ``torch.Generator`` works).

    Each value takes the first accepted of ``tries`` proposals, with no data-dependent loop, so
    the device never waits for the host. A value with no accepted proposal (probability
    ``(1 - p)**tries``; for a = b = 1.2, p ~ 0.41: about 3e-15, once in 2e14 values) keeps the
    last proposal's ratio, which lies in (0, 1) but is not Beta-distributed.

    Example:
        >>> x = sample_beta(1.2, 1.2, (1000,), generator=torch.Generator().manual_seed(0))
        >>> bool((x > 0).all() and (x < 1).all()), round(float(x.mean()), 1)
        (True, 0.5)
    """
    u = torch.rand((tries, *shape), generator=generator, device=device)
    v = torch.rand((tries, *shape), generator=generator, device=device)
    x, y = u ** (1.0 / a), v ** (1.0 / b)
    s = x + y
    ok = (s <= 1.0) & (s > 0)
    ok[-1] = True  # the fallback above
    first = ok.to(torch.int8).argmax(0, keepdim=True)
    return (x / s.clamp_min(1e-30)).gather(0, first)[0]


def _hsv_to_rgb(hue: Tensor, sat: Tensor, val: Tensor) -> Tensor:
    h6 = hue * 6.0
    i = torch.floor(h6).long() % 6
    f = h6 - torch.floor(h6)
    p, q, t = val * (1 - sat), val * (1 - f * sat), val * (1 - (1 - f) * sat)
    table = torch.stack(
        [
            torch.stack([val, t, p], -1),
            torch.stack([q, val, p], -1),
            torch.stack([p, val, t], -1),
            torch.stack([p, q, val], -1),
            torch.stack([t, p, val], -1),
            torch.stack([val, p, q], -1),
        ]
    )  # (6, ..., 3)
    idx = i[None, ..., None].expand(1, *i.shape, 3)
    return table.gather(0, idx)[0]


def random_palettes(draw: _Draw, k: int) -> Tensor:
    """``(n, k, 3)`` colours in [0, 1]: hue = base + spread * U, spread in {0.08, 0.25, 1}."""
    base = draw.uniform(0, 1)[:, None]
    spread = torch.tensor([0.08, 0.25, 1.0], device=draw.device)[draw.integers(0, 3)][:, None]
    hue = (base + spread * draw.uniform(0, 1, k)) % 1.0
    sat = sample_beta(1.2, 1.2, (draw.n, k), generator=draw.gen, device=draw.device)
    val = draw.uniform(0.1, 1.0, k)
    return _hsv_to_rgb(hue, sat, val)


def _noise01(draw: _Draw, shape: tuple[int, int]) -> Tensor:
    """Fractal noise (lattice 1-8 per axis, 1-5 octaves) min-max normalised to [0, 1]."""
    ry, rx = draw.integers(1, 9), draw.integers(1, 9)
    octaves = draw.integers(1, 6)
    f = fractal_perlin(
        draw.n, shape, (ry, rx), octaves=octaves, generator=draw.gen, device=draw.device,
        max_res=(8, 8), max_octaves=5,
    )  # fmt: skip
    lo, hi = f.amin((1, 2), keepdim=True), f.amax((1, 2), keepdim=True)
    return torch.where(hi > lo, (f - lo) / (hi - lo).clamp_min(1e-12), torch.zeros_like(f))


def _grid(shape: tuple[int, int], device: torch.device) -> tuple[Tensor, Tensor]:
    """Pixel coordinates (y, x) over the longer side: (1, H, 1), (1, 1, W)."""
    h, w = shape
    scale = 1.0 / max(h, w)
    y = torch.arange(h, device=device, dtype=torch.float32)[None, :, None] * scale
    x = torch.arange(w, device=device, dtype=torch.float32)[None, None, :] * scale
    return y, x


def _rotated_coords(draw: _Draw, shape: tuple[int, int]) -> tuple[Tensor, Tensor]:
    y, x = _grid(shape, draw.device)
    th = draw.uniform(0, math.pi)[:, None, None]
    c, s = torch.cos(th), torch.sin(th)
    return x * c + y * s, y * c - x * s


def _col(t: Tensor) -> Tensor:
    return t[:, None, None]


def _overlay_mask(draw: _Draw, shape: tuple[int, int]) -> Tensor:
    """``(n, H, W)`` soft masks, each of its image's drawn kind (depthsim's ``_overlay_mask``)."""
    kind = _col(draw.integers(0, 5))
    u, v = _rotated_coords(draw, shape)
    noise = _noise01(draw, shape)  # the stripes' warp and the blobs
    # Stripes, optionally warped by noise.
    warp = _col(draw.uniform(0, 0.15)) * (noise - 0.5)
    phase = 2 * math.pi * _col(draw.uniform(2, 40)) * (u + warp) + _col(
        draw.uniform(0, 2 * math.pi)
    )
    stripes = (torch.sin(phase) * _col(draw.uniform(1, 20))).clamp(-1, 1) * 0.5 + 0.5
    # Checkerboard.
    f = 2 * math.pi * _col(draw.uniform(2, 24))
    checker = (torch.sin(f * u) * torch.sin(f * v) > 0).float()
    # Thresholded noise blobs.
    blobs = ((noise - _col(draw.uniform(0.35, 0.65))) * _col(draw.uniform(5, 60))).clamp(0, 1)
    # 1-7 discs; the unused ones have radius 0 and add nothing.
    h, w = shape
    y, x = _grid(shape, draw.device)
    count = draw.integers(1, _MAX_DISCS + 1)
    cy = draw.uniform(0, h / max(h, w), _MAX_DISCS)
    cx = draw.uniform(0, w / max(h, w), _MAX_DISCS)
    r = draw.uniform(0.03, 0.3, _MAX_DISCS)
    sharp = draw.uniform(30, 400, _MAX_DISCS)
    used = torch.arange(_MAX_DISCS, device=draw.device)[None] < count[:, None]

    def per_disc(t: Tensor) -> Tensor:
        return t[:, :, None, None]

    dist = torch.hypot(y[:, None] - per_disc(cy), x[:, None] - per_disc(cx))  # (n, 7, H, W)
    disc = ((per_disc(r) - dist) * per_disc(sharp)).clamp(0, 1) * per_disc(used.float())
    discs = disc.amax(dim=1)
    # Smooth ramp.
    ramp = (u * _col(draw.uniform(0.5, 2)) + _col(draw.uniform(-0.5, 0.5))).clamp(0, 1)
    kinds = torch.stack(
        [stripes, checker.expand_as(stripes), blobs, discs, ramp.expand_as(stripes)]
    )
    return kinds.gather(0, kind[None].expand(1, draw.n, h, w))[0]


def _palette_map(field01: Tensor, palette: Tensor, k: Tensor, steps: Tensor) -> Tensor:
    """Piecewise-linear palette map of a [0, 1] field, posterised where ``steps > 0``."""
    km1 = _col((k - 1).float())
    x = field01 * km1
    st = _col(steps.float())
    poster = torch.round(x * st / km1) * km1 / st.clamp_min(1)
    x = torch.where(st > 0, poster, x)
    lo = torch.minimum(x.long(), _col(k - 2))
    frac = (x - lo)[..., None]
    n, h, w = field01.shape
    idx = lo.reshape(n, -1, 1).expand(n, h * w, 3)
    c0 = palette.gather(1, idx).view(n, h, w, 3)
    c1 = palette.gather(1, idx + 1).view(n, h, w, 3)
    return c0 + (c1 - c0) * frac


def procedural_rgb(
    n: int,
    shape: tuple[int, int],
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """``n`` procedural colour textures, channels first.

    Args:
        n: number of images.
        shape: ``(H, W)``.
        generator: a ``torch.Generator`` on ``device`` (same seed, same images on that device).
        device: where to make them.

    Returns:
        ``(n, 3, H, W)`` float32 in [0, 1] (depthsim's is ``(n, H, W, 3)``).

    Example:
        >>> x = procedural_rgb(2, (32, 32), generator=torch.Generator().manual_seed(0))
        >>> x.shape, bool(x.min() >= 0 and x.max() <= 1)
        (torch.Size([2, 3, 32, 32]), True)
    """
    dev = torch.device(device) if device is not None else torch.device("cpu")
    draw = _Draw(n, generator, dev)
    k = draw.integers(2, 6)
    palette = random_palettes(draw, _MAX_COLOURS)
    steps = torch.where(draw.uniform(0, 1) < 0.3, draw.integers(2, 7), 0)
    img = _palette_map(_noise01(draw, shape), palette, k, steps)  # (n, H, W, 3)
    overlays = draw.integers(1, 4)
    for slot in range(3):
        m = _overlay_mask(draw, shape) * _col(draw.uniform(0.5, 1.0))
        m = m * _col((overlays > slot).float())
        own = palette.gather(1, (draw.uniform(0, 1) * k).long()[:, None, None].expand(n, 1, 3))[
            :, 0
        ]
        fresh = random_palettes(draw, 1)[:, 0]
        colour = torch.where(draw.uniform(0, 1)[:, None] < 0.6, fresh, own)
        img = img + (colour[:, None, None, :] - img) * m[..., None]
    ramp = _rotated_coords(draw, shape)[0]
    light = _col(draw.uniform(0.6, 1.0)) + _col(draw.uniform(0, 0.5)) * ramp
    img = img * light[..., None]
    sigma = draw.uniform(0, 0.03)[:, None, None, None]
    grain = torch.randn(img.shape, generator=generator, device=dev)
    return (img + sigma * grain).clamp(0.0, 1.0).permute(0, 3, 1, 2).contiguous()
