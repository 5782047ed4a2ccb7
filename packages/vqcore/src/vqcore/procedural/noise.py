"""Batched 2-D gradient (Perlin) noise in torch, on any device.

The same algorithm as depthsim's numba ``perlin_into``: pixel ``(i, j)`` of an ``H x W`` image sits
at lattice coordinate ``(i * ry / H, j * rx / W)``; each lattice corner holds a unit gradient
``(cos, sin)`` where ``cos`` multiplies the y offset and ``sin`` the x offset; corner terms are
blended with the quintic fade ``6t^5 - 15t^4 + 10t^3`` (first in y, then in x) and scaled by
``sqrt(2)``, so values lie in [-1, 1] and are 0 at every lattice point. Given the same gradients
the two agree to float32 rounding.

Every item of a batch may have its own lattice ``(ry[k], rx[k])``: gradients are then padded to
the largest lattice and item k reads only its first ``(ry[k] + 1) x (rx[k] + 1)`` corners.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["fade", "fractal_perlin", "perlin_from_gradients", "perlin_noise", "random_gradients"]

_SQRT2 = math.sqrt(2.0)


def fade(t: Tensor) -> Tensor:
    """Quintic fade ``6t^5 - 15t^4 + 10t^3`` (zero first and second derivative at 0 and 1).

    Example:
        >>> fade(torch.tensor([0.0, 0.5, 1.0])).tolist()
        [0.0, 0.5, 1.0]
    """
    return t * t * t * (t * (t * 6.0 - 15.0) + 10.0)


def random_gradients(
    n: int,
    ry: int,
    rx: int,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor]:
    """``n`` lattices of random unit gradients, angle ~ U(0, 2 pi): ``(cos, sin)``, each
    ``(n, ry + 1, rx + 1)``.

    ``generator`` must live on ``device`` (a CUDA generator for CUDA tensors).

    Example:
        >>> c, s = random_gradients(2, 3, 4, generator=torch.Generator().manual_seed(0))
        >>> c.shape, bool(torch.allclose(c * c + s * s, torch.ones(())))
        (torch.Size([2, 4, 5]), True)
    """
    theta = torch.rand((n, ry + 1, rx + 1), generator=generator, device=device, dtype=dtype)
    theta = theta * (2.0 * math.pi)
    return torch.cos(theta), torch.sin(theta)


def _as_res(res: int | Tensor, n: int, device: torch.device) -> Tensor:
    """Per-item lattice cells as an int64 ``(n,)`` tensor on ``device``.

    Only Python ints are range-checked: checking a tensor would wait for the device, and the
    samplers pass tensors they drew in range.
    """
    if not isinstance(res, Tensor) and int(res) < 1:
        raise ValueError(f"res: lattice cells per axis must be >= 1, got {res}")
    t = torch.as_tensor(res, dtype=torch.int64, device=device)
    if t.dim() == 0:
        t = t.expand(n)
    if t.shape != (n,):
        raise ValueError(f"res: expected an int or {n} values, got shape {tuple(t.shape)}")
    return t


def _axis(size: int, cells: Tensor) -> tuple[Tensor, Tensor]:
    """Cell index and in-cell offset of every pixel along one axis, ``(n, size)`` each.

    Integer arithmetic for the cell (``j * r // size``) so that pixels on lattice lines land in
    the cell they start, whatever the float rounding of ``r / size``.
    """
    j = torch.arange(size, device=cells.device, dtype=torch.int64)
    num = j[None, :] * cells[:, None]
    cell = torch.div(num, size, rounding_mode="floor")
    offset = (num - cell * size).to(torch.float32) / size
    return cell, offset


def perlin_from_gradients(
    gcos: Tensor,
    gsin: Tensor,
    shape: tuple[int, int],
    res: tuple[int, int] | tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    """Single-octave gradient noise from given corner gradients.

    Args:
        gcos: ``(n, Ly, Lx)`` cosines (y components) of the corner gradients.
        gsin: ``(n, Ly, Lx)`` sines (x components), same shape.
        shape: ``(H, W)`` of each image.
        res: ``(ry, rx)``, ints or ``(n,)`` int tensors with ``ry < Ly`` and ``rx < Lx``;
            ``None`` -> ``(Ly - 1, Lx - 1)``.

    Returns:
        ``(n, H, W)`` in the gradients' float dtype, in [-1, 1].

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x = perlin_from_gradients(*random_gradients(2, 2, 2, generator=g), (8, 8))
        >>> x.shape, float(x[0, 0, 0]), float(x[1, 4, 4])
        (torch.Size([2, 8, 8]), 0.0, 0.0)
    """
    if gcos.shape != gsin.shape or gcos.dim() != 3:
        raise ValueError(
            f"gcos/gsin: expected two (n, Ly, Lx) tensors, got {tuple(gcos.shape)} and "
            f"{tuple(gsin.shape)}"
        )
    n, ly, lx = gcos.shape
    h, w = int(shape[0]), int(shape[1])
    if res is None:
        res = (ly - 1, lx - 1)
    for given, size in zip(res, (ly, lx), strict=True):
        if not isinstance(given, Tensor) and int(given) >= size:
            raise ValueError(f"res: needs (ry + 1, rx + 1) <= gradient lattice {(ly, lx)}")
    ry = _as_res(res[0], n, gcos.device)
    rx = _as_res(res[1], n, gcos.device)
    r, ty = _axis(h, ry)  # (n, H)
    c, tx = _axis(w, rx)  # (n, W)
    ty = ty.to(gcos.dtype)[:, :, None]
    tx = tx.to(gcos.dtype)[:, None, :]
    # Flat index of the top-left corner of every pixel's cell, (n, H, W).
    base = (r * lx)[:, :, None] + c[:, None, :]
    flat_c = gcos.reshape(n, -1)
    flat_s = gsin.reshape(n, -1)

    def corner(offset: int, dy: Tensor, dx: Tensor) -> Tensor:
        idx = (base + offset).reshape(n, -1)
        gc = flat_c.gather(1, idx).view(n, h, w)
        gs = flat_s.gather(1, idx).view(n, h, w)
        return gc * dy + gs * dx

    n00 = corner(0, ty, tx)
    n10 = corner(lx, ty - 1.0, tx)
    n01 = corner(1, ty, tx - 1.0)
    n11 = corner(lx + 1, ty - 1.0, tx - 1.0)
    fy = fade(ty)
    fx = fade(tx)
    n0 = torch.lerp(n00, n10, fy.expand_as(n00))
    n1 = torch.lerp(n01, n11, fy.expand_as(n01))
    return _SQRT2 * torch.lerp(n0, n1, fx.expand_as(n0))


def fractal_perlin(
    n: int,
    shape: tuple[int, int],
    res: tuple[int, int] | tuple[Tensor, Tensor],
    *,
    octaves: int | Tensor = 1,
    persistence: float = 0.5,
    lacunarity: int = 2,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    max_res: tuple[int, int] | None = None,
    max_octaves: int | None = None,
) -> Tensor:
    """``n`` fractal noise images: octave o (lattice ``res * lacunarity**o``, amplitude
    ``persistence**o``), summed and divided by the sum of the amplitudes (depthsim's
    ``perlin_batch`` recipe).

    ``res`` and ``octaves`` may be per-item ``(n,)`` int tensors; item k then sums its first
    ``octaves[k]`` octaves only. Gradients are drawn octave by octave on a lattice of
    ``max_res`` cells (default: the largest ``res`` of the batch) for ``max_octaves`` octaves
    (default: the largest ``octaves``); giving both for tensor arguments saves the device a wait.

    Returns:
        ``(n, H, W)`` float32 in [-1, 1].

    Example:
        >>> x = fractal_perlin(3, (16, 16), (2, 2), octaves=3,
        ...                    generator=torch.Generator().manual_seed(0))
        >>> x.shape, bool(x.abs().max() <= 1)
        (torch.Size([3, 16, 16]), True)
    """
    dev = torch.device(device) if device is not None else torch.device("cpu")
    if not isinstance(octaves, Tensor) and int(octaves) < 1:
        raise ValueError(f"octaves: expected >= 1, got {octaves}")
    ry = _as_res(res[0], n, dev)
    rx = _as_res(res[1], n, dev)
    octs = torch.as_tensor(octaves, dtype=torch.int64, device=dev)
    octs = octs.expand(n) if octs.dim() == 0 else octs
    if n == 0:
        return torch.zeros((0, *shape), device=dev)
    my, mx = max_res if max_res is not None else (int(ry.max()), int(rx.max()))
    m_oct = max_octaves if max_octaves is not None else int(octs.max())
    amp = persistence ** torch.arange(m_oct, device=dev, dtype=torch.float32)
    total = torch.cumsum(amp, 0)[octs - 1]  # (n,) sum of each item's own amplitudes
    out = torch.zeros((n, *shape), device=dev)
    for o in range(m_oct):
        ky, kx = ry * lacunarity**o, rx * lacunarity**o
        scale = lacunarity**o
        gc, gs = random_gradients(n, my * scale, mx * scale, generator=generator, device=dev)
        weight = torch.where(octs > o, amp[o] / total, torch.zeros_like(total))
        out += weight[:, None, None] * perlin_from_gradients(gc, gs, shape, (ky, kx))
    return out


def perlin_noise(
    n: int,
    shape: tuple[int, int],
    res: tuple[int, int] | tuple[Tensor, Tensor],
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """``n`` single-octave noise images, gradients drawn from ``generator`` on ``device``.

    Returns:
        ``(n, H, W)`` float32 in [-1, 1].

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> a = perlin_noise(2, (32, 32), (4, 4), generator=g)
        >>> b = perlin_noise(2, (32, 32), (4, 4), generator=torch.Generator().manual_seed(0))
        >>> a.shape, bool(torch.equal(a, b))
        (torch.Size([2, 32, 32]), True)
    """
    return fractal_perlin(n, shape, res, octaves=1, generator=generator, device=device)
