"""Anomaly-map smoothing used for pixel scores and image scores (spec §5)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["box_filter", "gaussian_filter", "gaussian_kernel1d", "smooth_maps"]


def box_filter(maps: Tensor, size: int) -> Tensor:
    """Mean over a ``size x size`` window, stride 1, zero padding counted in the mean
    (``avg_pool2d(..., count_include_pad=True)``, the reference test scripts).

    Shape:
        - maps: (B, H, W). Output: (B, H, W) (``size`` odd).

    Example:
        >>> m = torch.zeros(1, 5, 5); m[0, 2, 2] = 9.0
        >>> box_filter(m, 3)[0, 1:4, 1:4].tolist() == [[1.0] * 3] * 3
        True
        >>> box_filter(torch.ones(1, 3, 3), 3)[0, 0, 0].item()  # corner: 4 of 9 inside
        0.4444444477558136
    """
    if size % 2 == 0:
        raise ValueError(f"box_filter: size must be odd, got {size}")
    return F.avg_pool2d(maps[:, None], size, stride=1, padding=size // 2, count_include_pad=True)[
        :, 0
    ]


def gaussian_kernel1d(
    sigma: float, *, truncate: float = 4.0, dtype: torch.dtype = torch.float32
) -> Tensor:
    """Normalised 1-D Gaussian of radius ``int(truncate * sigma + 0.5)`` (scipy's convention).

    Example:
        >>> k = gaussian_kernel1d(1.0); k.shape, round(float(k.sum()), 6)
        (torch.Size([9]), 1.0)
    """
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return (k / k.sum()).to(dtype)


def gaussian_filter(maps: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur with zero padding (the paper's "Gaussian filter then max").

    Example:
        >>> gaussian_filter(torch.ones(1, 32, 32), 2.0)[0, 16, 16].item() > 0.999
        True
    """
    k = gaussian_kernel1d(sigma, dtype=maps.dtype).to(maps.device)
    r = (k.numel() - 1) // 2
    x = maps[:, None]
    x = F.conv2d(x, k.view(1, 1, 1, -1), padding=(0, r))
    x = F.conv2d(x, k.view(1, 1, -1, 1), padding=(r, 0))
    return x[:, 0]


def smooth_maps(maps: Tensor, method: str = "box", size: int = 11, sigma: float = 4.0) -> Tensor:
    """Dispatch to :func:`box_filter` (``size``) or :func:`gaussian_filter` (``sigma``); ``none``
    returns the maps unchanged."""
    if method == "box":
        return box_filter(maps, size)
    if method == "gaussian":
        return gaussian_filter(maps, sigma)
    if method == "none":
        return maps
    raise ValueError(f"unknown smoothing {method!r} (box, gaussian or none)")
