"""Gradient (Perlin) noise in torch, batched, on any device: the values of depthsim's numba
``perlin_into`` (same lattice convention, quintic fade, ``sqrt(2)`` scale) and of its
``rotate_bilinear_into``, so stage 2 can draw anomaly masks on the GPU without a host round trip.

Every item of a batch may have its own lattice (``ry x rx`` cells), held in tensors: nothing here
reads a tensor value on the host.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["perlin_noise", "random_perlin", "rotate_about_centre"]

_SQRT2 = math.sqrt(2.0)


def _fade(t: Tensor) -> Tensor:
    return t * t * t * (t * (t * 6.0 - 15.0) + 10.0)


def perlin_noise(
    gcos: Tensor, gsin: Tensor, ry: Tensor, rx: Tensor, shape: tuple[int, int]
) -> Tensor:
    """One octave of gradient noise per item, from given unit gradients.

    Pixel ``(i, j)`` of item ``k`` sits at lattice coordinate ``(i ry_k / H, j rx_k / W)``
    (the reference ``rand_perlin_2d_np`` convention, as depthsim).

    Args:
        gcos, gsin: (B, Ly, Lx) cos and sin of each lattice corner's gradient angle; item ``k``
            uses the corners ``[:ry_k + 1, :rx_k + 1]``.
        ry, rx: (B,) int lattice cells per axis (``ry_k < Ly``, ``rx_k < Lx``).
        shape: ``(H, W)`` of the output.

    Returns:
        (B, H, W) float32 in [-1, 1], zero on every lattice point.

    Example:
        >>> th = torch.rand(1, 3, 3) * 6.2832
        >>> n = perlin_noise(th.cos(), th.sin(), torch.tensor([2]), torch.tensor([2]), (8, 8))
        >>> n.shape, float(n[0, 0, 0]), float(n[0, 4, 4])
        (torch.Size([1, 8, 8]), 0.0, 0.0)
    """
    b, _, lx = gcos.shape
    h, w = shape
    dev = gcos.device
    # Lattice coordinates in float64 (only (B, H) + (B, W) values): depthsim computes in float64.
    py = torch.arange(h, device=dev, dtype=torch.float64)[None] * (
        ry.to(dev, torch.float64)[:, None] / h
    )
    px = torch.arange(w, device=dev, dtype=torch.float64)[None] * (
        rx.to(dev, torch.float64)[:, None] / w
    )
    r, c = py.floor(), px.floor()
    ty, tx = (py - r).float(), (px - c).float()
    r, c = r.long(), c.long()
    flat_c, flat_s = gcos.reshape(b, -1).float(), gsin.reshape(b, -1).float()

    def corner(dr: int, dc: int) -> Tensor:
        idx = ((r + dr)[:, :, None] * lx + (c + dc)[:, None, :]).reshape(b, -1)
        oy = (ty - dr)[:, :, None]
        ox = (tx - dc)[:, None, :]
        gc = flat_c.gather(1, idx).view(b, h, w)
        gs = flat_s.gather(1, idx).view(b, h, w)
        return gc * oy + gs * ox

    fy, fx = _fade(ty)[:, :, None], _fade(tx)[:, None, :]
    a = torch.lerp(corner(0, 0), corner(1, 0), fy)
    bb = torch.lerp(corner(0, 1), corner(1, 1), fy)
    return torch.lerp(a, bb, fx) * _SQRT2


def rotate_about_centre(x: Tensor, angles_deg: Tensor) -> Tensor:
    """Rotate (B, H, W) images about the pixel centre ``((W-1)/2, (H-1)/2)``, bilinear, zero
    outside: depthsim's ``rotate_bilinear_into`` (positive angles turn content clockwise).

    Example:
        >>> x = torch.rand(2, 6, 6)
        >>> torch.allclose(rotate_about_centre(x, torch.zeros(2)), x, atol=1e-5)
        True
    """
    b, h, w = x.shape
    th = angles_deg.to(x.device, torch.float64) * (math.pi / 180.0)
    cos, sin = th.cos(), th.sin()
    # Output pixel (i, j) samples source x = c dx + s dy + cx, y = -s dx + c dy + cy; in
    # align_corners=True coordinates u = 2 x / (W - 1) - 1 that is the affine map below.
    theta = torch.zeros(b, 2, 3, dtype=torch.float64, device=x.device)
    sx, sy = max(w - 1, 1), max(h - 1, 1)
    theta[:, 0, 0] = cos
    theta[:, 0, 1] = sin * sy / sx
    theta[:, 1, 0] = -sin * sx / sy
    theta[:, 1, 1] = cos
    grid = F.affine_grid(theta.float(), [b, 1, h, w], align_corners=True)
    out = F.grid_sample(
        x[:, None].float(), grid, mode="bilinear", padding_mode="zeros", align_corners=True
    )
    return out[:, 0]


def random_perlin(
    n: int,
    shape: tuple[int, int],
    *,
    generator: torch.Generator,
    max_exponent: int = 5,
    max_angle: float = 90.0,
) -> Tensor:
    """``n`` noise images with depthsim's recipe (``sample_noise_params``): lattice
    ``2**a x 2**b`` with a, b ~ U{0..max_exponent}, gradient angles ~ U(0, 2 pi), then a
    rotation ~ U(-max_angle, max_angle) degrees. Drawn from ``generator`` on its device; the
    same generator state gives the same images (not depthsim's numpy stream).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x = random_perlin(3, (16, 16), generator=g)
        >>> x.shape, bool(x.abs().max() <= 1)
        (torch.Size([3, 16, 16]), True)
    """
    dev = generator.device
    side = 2**max_exponent + 1
    ab = torch.randint(0, max_exponent + 1, (n, 2), generator=generator, device=dev)
    res = torch.pow(2, ab)
    theta = torch.rand(n, side, side, generator=generator, device=dev) * (2.0 * math.pi)
    angle = (torch.rand(n, generator=generator, device=dev) * 2.0 - 1.0) * max_angle
    noise = perlin_noise(theta.cos(), theta.sin(), res[:, 0], res[:, 1], shape)
    return rotate_about_centre(noise, angle)
