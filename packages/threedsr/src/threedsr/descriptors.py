"""Hand-made local descriptors of the model input: surface shape and normalised colour at a few
Gaussian scales, all invariant to in-plane rotation. The feature memory
(:mod:`threedsr.memory`) can store them instead of the backbone's encoder features.

Not in the paper or the reference code. A dent or a bump a few millimetres deep changes the
local curvature of the surface by far more than the sensor noise does, yet the stage-1 codes that
a CPU-sized backbone learns hardly change there (docs/bench/threedsr.md, "Diagnose"). Gaussian
derivatives measure that curvature directly, need no training, and cost a few convolutions.

Per scale ``s`` (pixels at model resolution) the depth channel gives three numbers:
``s |grad|``, ``s^2 (d_xx + d_yy)`` (the Laplacian, mean curvature up to sign) and
``s^2 sqrt(((d_xx - d_yy) / 2)^2 + d_xy^2)`` (how far the two principal curvatures differ); the
``s`` powers make the responses comparable across scales. Colour is the Gaussian-blurred RGB
divided by the scan's mean object colour, so that a class's tint and the light level of a scan
drop out and a stain remains.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from threedsr.smoothing import gaussian_kernel1d

__all__ = ["colour_descriptors", "descriptor_channels", "local_descriptors", "surface_descriptors"]

#: Foreground test on the normalised depth channel (pcprep: background 0, object in [0.1, 0.9]).
_FOREGROUND_DEPTH = 0.05


def _blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian (radius 3 sigma) with replicated borders, per channel."""
    k = gaussian_kernel1d(sigma, truncate=3.0, dtype=x.dtype).to(x.device)
    r, (b, c, h, w) = (k.numel() - 1) // 2, x.shape
    # Channels folded into the batch: one (1, 1, k) kernel of a fixed shape, which an exported
    # graph needs (torch.onnx cannot export a convolution whose weight shape depends on the
    # input's); the same per-channel sums as a grouped convolution.
    x = x.reshape(b * c, 1, h, w)
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))
    return x.reshape(b, c, h, w)


def _gradient(x: Tensor) -> tuple[Tensor, Tensor]:
    """Central differences along W and H, one-sided at the border (replicated)."""
    dx = F.pad((x[..., :, 2:] - x[..., :, :-2]) / 2, (1, 1, 0, 0), mode="replicate")
    dy = F.pad((x[..., 2:, :] - x[..., :-2, :]) / 2, (0, 0, 1, 1), mode="replicate")
    return dx, dy


def surface_descriptors(depth: Tensor, scales: Sequence[float] = (1, 2, 4)) -> Tensor:
    """Gradient magnitude, Laplacian and curvature anisotropy of the depth at each scale.

    Args:
        depth: (B, 1, H, W) normalised depth.
        scales: Gaussian sigmas in pixels.

    Shape:
        - Output: (B, 3 * len(scales), H, W).

    Example:
        >>> d = torch.zeros(2, 1, 16, 16)
        >>> surface_descriptors(d).shape, float(surface_descriptors(d).abs().max())
        (torch.Size([2, 9, 16, 16]), 0.0)
    """
    _check(depth, 1, "depth")
    out = []
    for s in scales:
        g = _blur(depth, float(s))
        gx, gy = _gradient(g)
        gxx, gxy = _gradient(gx)
        _, gyy = _gradient(gy)
        aniso = torch.sqrt(((gxx - gyy) / 2) ** 2 + gxy**2)
        out += [s * torch.hypot(gx, gy), s * s * (gxx + gyy), s * s * aniso]
    return torch.cat(out, 1)


def colour_descriptors(
    rgb: Tensor, foreground: Tensor | None = None, scales: Sequence[float] = (1, 2, 4)
) -> Tensor:
    """Blurred RGB over the scan's mean colour on ``foreground`` (the whole image when None).

    Shape:
        - rgb: (B, 3, H, W); foreground: (B, 1, H, W) in {0, 1} or None.
        - Output: (B, 3 * len(scales), H, W).

    Example:
        >>> rgb = torch.full((1, 3, 8, 8), 0.5)
        >>> torch.allclose(colour_descriptors(rgb), torch.ones(1, 9, 8, 8))
        True
    """
    _check(rgb, 3, "rgb")
    w = torch.ones_like(rgb[:, :1]) if foreground is None else foreground.to(rgb.dtype)
    mean = (rgb * w).sum((2, 3), keepdim=True) / w.sum((2, 3), keepdim=True).clamp_min(1.0)
    rgb = rgb / mean.clamp_min(1e-3)
    return torch.cat([_blur(rgb, float(s)) for s in scales], 1)


def local_descriptors(x: Tensor, setup: str, scales: Sequence[float] = (1, 2, 4)) -> Tensor:
    """The descriptors of a model input: surface for ``depth``, colour for ``rgb``, both (surface
    first) for ``rgbd`` in the backbone's channel order [D, R, G, B].

    Shape:
        - x: (B, C, H, W) with C = 4 / 1 / 3 for rgbd / depth / rgb.
        - Output: (B, :func:`descriptor_channels`, H, W).

    Example:
        >>> local_descriptors(torch.rand(1, 4, 32, 32), "rgbd").shape
        torch.Size([1, 18, 32, 32])
    """
    x = x.float()
    if setup == "depth":
        return surface_descriptors(x, scales)
    if setup == "rgb":
        return colour_descriptors(x, None, scales)
    if setup == "rgbd":
        _check(x, 4, "rgbd input")
        fg = (x[:, :1] > _FOREGROUND_DEPTH).float()
        return torch.cat(
            [surface_descriptors(x[:, :1], scales), colour_descriptors(x[:, 1:], fg, scales)], 1
        )
    raise ValueError(f"local_descriptors: unknown setup {setup!r}; expected rgbd, depth or rgb")


def descriptor_channels(setup: str, n_scales: int) -> int:
    """Channels :func:`local_descriptors` returns.

    Example:
        >>> descriptor_channels("rgbd", 3), descriptor_channels("depth", 3)
        (18, 9)
    """
    per_scale = {"rgbd": 6, "depth": 3, "rgb": 3}
    if setup not in per_scale:
        raise ValueError(f"descriptor_channels: unknown setup {setup!r}")
    return per_scale[setup] * n_scales


def _check(x: Tensor, channels: int, name: str) -> None:
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(f"{name}: expected (B, {channels}, H, W), got {tuple(x.shape)}")
