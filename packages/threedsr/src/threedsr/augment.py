"""Batched stage-2 augmentation: the ±15° rotation and foreground-restricted anomaly masks."""

from __future__ import annotations

import math

import depthsim
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["anomaly_masks", "rotate"]


def rotate(x: Tensor, angles_deg: Tensor | np.ndarray, *, mode: str = "bilinear") -> Tensor:
    """Rotate each image about its centre, zero fill outside (imgaug ``Rotate`` semantics).

    Args:
        x: (B, C, H, W).
        angles_deg: (B,) angles in degrees.
        mode: ``bilinear`` for images, ``nearest`` for masks.

    Example:
        >>> x = torch.rand(2, 3, 8, 8)
        >>> torch.allclose(rotate(x, np.zeros(2)), x, atol=1e-6)
        True
    """
    a = torch.as_tensor(np.asarray(angles_deg, dtype=np.float64) * math.pi / 180.0)
    b, _, h, w = x.shape
    cos, sin = torch.cos(a), torch.sin(a)
    # Normalised coordinates are anisotropic for non-square images: scale the shear terms.
    theta = torch.zeros(b, 2, 3, dtype=torch.float64)
    theta[:, 0, 0] = cos
    theta[:, 0, 1] = -sin * h / w
    theta[:, 1, 0] = sin * w / h
    theta[:, 1, 1] = cos
    grid = F.affine_grid(theta.to(x.device, torch.float32), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode=mode, padding_mode="zeros", align_corners=False)


def anomaly_masks(
    n: int,
    shape: tuple[int, int],
    *,
    rng: np.random.Generator,
    threshold: tuple[float, float] = (0.4, 0.8),
    zero_prob: float = 0.5,
) -> np.ndarray:
    """``n`` depthsim Perlin masks (|noise| > t), each zeroed with probability ``zero_prob``.

    Returns:
        (n, H, W) float32 in {0, 1}.

    Example:
        >>> m = anomaly_masks(4, (32, 32), rng=np.random.default_rng(0), zero_prob=1.0)
        >>> m.shape, float(m.sum())
        ((4, 32, 32), 0.0)
    """
    out = np.zeros((n, *shape), dtype=np.float32)
    keep = rng.random(n) >= zero_prob
    if keep.any():
        out[keep] = depthsim.anomaly_mask_batch(
            int(keep.sum()), shape, rng=rng, threshold=threshold
        )
    return out
