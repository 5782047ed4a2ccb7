"""Anomaly-map smoothing used for pixel scores and image scores (spec §5)."""

from __future__ import annotations

import numbers

import torch
import torch.nn.functional as F
from torch import Tensor

from threedsr.errors import ThreedsrError

__all__ = [
    "SMOOTHINGS",
    "box_filter",
    "check_smoothing",
    "gaussian_filter",
    "gaussian_kernel1d",
    "is_filter_size",
    "is_gaussian_sigma",
    "separable_filter",
    "smooth_maps",
]

SMOOTHINGS = ("box", "gaussian", "none")


def check_smoothing(method: str, size: object, sigma: object, where: str) -> None:
    """Refuse smoothing options that would fail deep inside torch at the first prediction (a
    negative box) or silently give NaN maps (sigma 0), with a one-line ``ThreedsrError``.

    Example:
        >>> check_smoothing("box", 4, 4.0, "Detector")
        Traceback (most recent call last):
        ...
        threedsr.errors.ThreedsrError: Detector: filter_size must be a positive odd int, got 4
    """
    if method not in SMOOTHINGS:
        raise ThreedsrError(f"{where}: smoothing must be one of {SMOOTHINGS}, got {method!r}")
    if not is_filter_size(size):
        raise ThreedsrError(f"{where}: filter_size must be a positive odd int, got {size!r}")
    if not is_gaussian_sigma(sigma):
        raise ThreedsrError(f"{where}: gaussian_sigma must be a positive number, got {sigma!r}")


def is_filter_size(size: object) -> bool:
    """A positive odd int (not a bool): what ``box_filter`` and ``gaussian_filter`` take."""
    return (
        not isinstance(size, bool)
        and isinstance(size, numbers.Integral)
        and size >= 1
        and size % 2 == 1
    )


def is_gaussian_sigma(sigma: object) -> bool:
    """A finite positive number (not a bool): sigma 0 gives NaN maps, inf a flat kernel."""
    return not isinstance(sigma, bool) and isinstance(sigma, numbers.Real) and 0 < sigma < 1e6


def _check_maps(where: str, maps: object) -> None:
    """A (B, H, W) tensor: torch's own errors name neither the function nor the shape."""
    if not isinstance(maps, Tensor):
        raise TypeError(
            f"{where}: maps must be a torch.Tensor (B, H, W), got {type(maps).__name__}"
        )
    if maps.ndim != 3:
        raise ValueError(f"{where}: maps must be (B, H, W), got shape {tuple(maps.shape)}")


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
    # avg_pool2d reads a (H, W) map as (C, 1, W) rows and pools the wrong axes silently.
    _check_maps("box_filter", maps)
    if not is_filter_size(size):
        # torch's errors for a float, a bool or a negative size name neither box_filter nor size.
        wrong_type = isinstance(size, bool) or not isinstance(size, numbers.Integral)
        raise (TypeError if wrong_type else ValueError)(
            f"box_filter: size must be a positive odd int, got {size!r}"
        )
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
    if not sigma > 0:
        raise ValueError(f"gaussian_kernel1d: sigma must be positive, got {sigma}")  # 0: NaN maps
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return (k / k.sum()).to(dtype)


def _filter_rows(x: Tensor, kernel: Tensor, mode: str) -> Tensor:
    """``kernel`` along the last dim of (N, R, L) ``x``: each of the R rows is one group of a
    depthwise ``conv1d``."""
    # int(): a traced graph records the row count as a constant, so the weight is one (ONNX
    # cannot export a convolution whose kernel shape it has to compute).
    r, rows = (kernel.numel() - 1) // 2, int(x.shape[1])
    x = F.pad(x, (r, r), mode=mode)
    return F.conv1d(x, kernel.view(1, 1, -1).expand(rows, 1, -1), groups=rows)


def separable_filter(x: Tensor, kernel: Tensor, *, mode: str = "constant") -> Tensor:
    """``kernel`` (odd length) along W, then along H, of (N, H, W) ``x``, borders padded by
    ``mode`` (``constant`` = zeros, or ``replicate``); correlation, as ``conv2d``.

    Each pass is a depthwise ``conv1d`` over the image's rows (its columns for the second pass),
    not a one-channel ``conv2d`` per image, which PyTorch's CPU convolution runs image by image:
    the same sums, 6-8x faster on four colour scans at 256² (tools/bench/bench_descriptors.py).
    The weight's shape depends on the image's size only, fixed in an exported graph.

    Shape:
        - x: (N, H, W); kernel: (K,). Output: (N, H, W).

    Example:
        >>> x = torch.zeros(1, 5, 5); x[0, 2, 2] = 1.0
        >>> separable_filter(x, torch.tensor([1.0, 2.0, 1.0]))[0, 1:4, 1:4].tolist()
        [[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]
    """
    if kernel.ndim != 1 or kernel.numel() % 2 == 0:
        raise ValueError(
            f"separable_filter: kernel must be (K,) with K odd, got {tuple(kernel.shape)}"
        )
    if x.ndim != 3:
        raise ValueError(f"separable_filter: x must be (N, H, W), got {tuple(x.shape)}")
    kernel = kernel.to(x.device, x.dtype)
    x = _filter_rows(x, kernel, mode)
    return _filter_rows(x.transpose(1, 2), kernel, mode).transpose(1, 2).contiguous()


def gaussian_filter(maps: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur with zero padding (the paper's "Gaussian filter then max").

    Example:
        >>> gaussian_filter(torch.ones(1, 32, 32), 2.0)[0, 16, 16].item() > 0.999
        True
    """
    _check_maps("gaussian_filter", maps)
    return separable_filter(maps, gaussian_kernel1d(sigma, dtype=maps.dtype))


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
