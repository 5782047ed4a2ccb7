"""The 3DSR stage-1 depth simulator (reference spec 2.2) in torch, batched on any device.

The recipe of :func:`depthsim.simulate_depth_batch`: per item, single-octave Perlin noise on a
``2**a x 2**b`` lattice (a, b ~ U{0..5}), rotated by U(-90, 90) degrees about the pixel centre
(bilinear, zero fill), min-max normalised to P, then ``D = alpha * P + beta`` with
alpha ~ U(0, 1), beta = u (1 - alpha), u ~ U(0, 1), clipped to [0, 1].

The parameters are drawn all at once from a ``torch.Generator`` (not item by item as depthsim
does), so a batch depends on its size; :func:`depth_params_from_numpy` renders depthsim's own
draws instead, which is how the two are compared.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import depthsim
import torch
from torch import Tensor

from .noise import perlin_from_gradients

__all__ = [
    "TorchDepthParams",
    "depth_params_from_numpy",
    "render_depth",
    "rotate_bilinear",
    "sample_depth_params",
    "simulate_depth",
]


@dataclass(frozen=True)
class TorchDepthParams:
    """Random draws behind a batch of simulated depth maps (tensors on one device).

    Attributes:
        ry, rx: ``(n,)`` int64 lattice cells.
        angle: ``(n,)`` rotation in degrees.
        gcos, gsin: ``(n, L, L)`` unit gradients (item k reads its first ``ry+1 x rx+1``).
        alpha, beta: ``(n,)`` the affine map ``D = alpha * P + beta``.
    """

    ry: Tensor
    rx: Tensor
    angle: Tensor
    gcos: Tensor
    gsin: Tensor
    alpha: Tensor
    beta: Tensor

    def __len__(self) -> int:
        return len(self.angle)


def sample_depth_params(
    n: int,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    max_exponent: int = 5,
    max_angle: float = 90.0,
) -> TorchDepthParams:
    """Draw depthsim's parameter distributions for ``n`` items from ``generator`` on ``device``.

    Example:
        >>> p = sample_depth_params(4, generator=torch.Generator().manual_seed(0))
        >>> len(p), p.gcos.shape, bool(((p.beta >= 0) & (p.alpha + p.beta <= 1)).all())
        (4, torch.Size([4, 33, 33]), True)
    """
    kw = dict(generator=generator, device=device)
    lattice = 2**max_exponent + 1
    ab = torch.randint(0, max_exponent + 1, (n, 2), **kw)
    theta = torch.rand((n, lattice, lattice), **kw) * (2.0 * math.pi)
    angle = (torch.rand(n, **kw) * 2.0 - 1.0) * max_angle
    alpha, u = torch.rand((2, n), **kw)
    return TorchDepthParams(
        ry=2 ** ab[:, 0],
        rx=2 ** ab[:, 1],
        angle=angle,
        gcos=torch.cos(theta),
        gsin=torch.sin(theta),
        alpha=alpha,
        beta=u * (1.0 - alpha),
    )


def depth_params_from_numpy(
    params: depthsim.DepthParams, device: torch.device | str | None = None
) -> TorchDepthParams:
    """depthsim's drawn parameters as float32 tensors, to render the very same depth maps.

    Example:
        >>> p = depth_params_from_numpy(depthsim.sample_depth_params(2, 0))
        >>> p.ry.dtype, p.gcos.dtype
        (torch.int64, torch.float32)
    """

    def t(a, dtype=torch.float32):
        return torch.as_tensor(a, dtype=dtype, device=device)

    nz = params.noise
    return TorchDepthParams(
        ry=t(nz.res[:, 0], torch.int64),
        rx=t(nz.res[:, 1], torch.int64),
        angle=t(nz.angle),
        gcos=t(nz.gcos),
        gsin=t(nz.gsin),
        alpha=t(params.alpha),
        beta=t(params.beta),
    )


def rotate_bilinear(src: Tensor, angle_deg: Tensor) -> Tensor:
    """Rotate each ``(H, W)`` image of ``src`` (n, H, W) about its pixel centre by its angle.

    Bilinear; neighbours outside the image count as 0 (imgaug ``Affine(rotate=...)`` defaults,
    depthsim's ``rotate_bilinear_into``). Positive angles turn the content clockwise on screen.

    Example:
        >>> x = torch.arange(9.0).view(1, 3, 3)
        >>> rotate_bilinear(x, torch.tensor([90.0]))[0].tolist()
        [[6.0, 3.0, 0.0], [7.0, 4.0, 1.0], [8.0, 5.0, 2.0]]
    """
    n, h, w = src.shape
    cy, cx = (h - 1) * 0.5, (w - 1) * 0.5
    th = angle_deg.to(torch.float64) * (math.pi / 180.0)
    c = torch.cos(th).to(src.dtype)[:, None, None]
    s = torch.sin(th).to(src.dtype)[:, None, None]
    dy = (torch.arange(h, device=src.device, dtype=src.dtype) - cy)[None, :, None]
    dx = (torch.arange(w, device=src.device, dtype=src.dtype) - cx)[None, None, :]
    x = c * dx + s * dy + cx
    y = -s * dx + c * dy + cy
    x0f, y0f = torch.floor(x), torch.floor(y)
    fx, fy = x - x0f, y - y0f
    x0, y0 = x0f.long(), y0f.long()
    flat = src.reshape(n, -1)

    def tap(yy: Tensor, xx: Tensor) -> Tensor:
        inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        idx = (yy.clamp(0, h - 1) * w + xx.clamp(0, w - 1)).reshape(n, -1)
        return torch.where(inside, flat.gather(1, idx).view(n, h, w), 0.0)

    top = torch.lerp(tap(y0, x0), tap(y0, x0 + 1), fx)
    bot = torch.lerp(tap(y0 + 1, x0), tap(y0 + 1, x0 + 1), fx)
    return torch.lerp(top, bot, fy)


def render_depth(
    params: TorchDepthParams, shape: tuple[int, int], *, affine: bool = True
) -> Tensor:
    """Depth maps ``(n, H, W)`` float32 in [0, 1] from drawn parameters (deterministic).

    Example:
        >>> p = sample_depth_params(2, generator=torch.Generator().manual_seed(0))
        >>> d = render_depth(p, (32, 32), affine=False)
        >>> d.amin((1, 2)).tolist(), d.amax((1, 2)).tolist()
        ([0.0, 0.0], [1.0, 1.0])
    """
    noise = perlin_from_gradients(params.gcos, params.gsin, shape, (params.ry, params.rx))
    img = rotate_bilinear(noise, params.angle)
    lo = img.amin(dim=(1, 2), keepdim=True)
    span = img.amax(dim=(1, 2), keepdim=True) - lo
    inv = torch.where(span > 1e-12, 1.0 / span.clamp_min(1e-12), torch.zeros_like(span))
    p = (img - lo) * inv
    if affine:
        p = params.alpha.to(p.dtype)[:, None, None] * p + params.beta.to(p.dtype)[:, None, None]
    return p.clamp(0.0, 1.0)


def simulate_depth(
    n: int,
    shape: tuple[int, int],
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    affine: bool = True,
) -> Tensor:
    """``n`` simulated depth maps ``(n, H, W)`` float32 in [0, 1] on ``device``.

    Example:
        >>> d = simulate_depth(3, (64, 64), generator=torch.Generator().manual_seed(0))
        >>> d.shape, bool((d >= 0).all() and (d <= 1).all())
        (torch.Size([3, 64, 64]), True)
    """
    params = sample_depth_params(n, generator=generator, device=device)
    return render_depth(params, shape, affine=affine)
