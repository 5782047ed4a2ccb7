"""Batched stage-2 augmentation: the ±15° rotation and foreground-restricted anomaly masks."""

from __future__ import annotations

import math

import depthsim
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from threedsr.dsr.config import AnomalyConfig

__all__ = ["anomaly_masks", "deform_depth", "paint_rgb", "place_masks", "rotate"]


def _per_sample(v: Tensor | np.ndarray, device: torch.device, dtype: torch.dtype) -> Tensor:
    """(B,) values as a tensor on ``device``: arrays are copied there, tensors moved (a no-op
    for the device sampler's, which are already there)."""
    if isinstance(v, Tensor):
        return v.to(device, dtype)
    return torch.as_tensor(np.asarray(v, dtype=np.float64), device=device).to(dtype)


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
    # A tensor stays on its device (the device sampler's angles): no host round trip.
    a = _per_sample(angles_deg, x.device, torch.float64) * math.pi / 180.0
    b, _, h, w = x.shape
    cos, sin = torch.cos(a), torch.sin(a)
    # Normalised coordinates are anisotropic for non-square images: scale the shear terms.
    theta = torch.zeros(b, 2, 3, dtype=torch.float64, device=x.device)
    theta[:, 0, 0] = cos
    theta[:, 0, 1] = -sin * h / w
    theta[:, 1, 0] = sin * w / h
    theta[:, 1, 1] = cos
    grid = F.affine_grid(theta.to(x.device, torch.float32), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode=mode, padding_mode="zeros", align_corners=False)


def place_masks(
    x: Tensor, mask: Tensor, fg: Tensor, angles_deg: Tensor | np.ndarray, aug: AnomalyConfig
) -> tuple[Tensor, Tensor]:
    """A drawn batch after the config's foreground restriction and rotation, as both stage-2
    samplers apply them (the angles are drawn even at 0 degrees, so each random stream stays
    the same whatever the config).

    Args:
        x: (B, C, H, W) inputs.
        mask: (B, 1, H, W) anomaly masks.
        fg: (B, 1, H, W) foreground.
        angles_deg: (B,) rotation angles.
        aug: the anomaly config (``restrict_to_foreground``, ``rotation_deg``,
            ``rotate_mask_with_image``).

    Example:
        >>> x, m = place_masks(torch.ones(1, 1, 4, 4), torch.ones(1, 1, 4, 4),
        ...     torch.zeros(1, 1, 4, 4), np.zeros(1), AnomalyConfig())
        >>> float(m.sum())
        0.0
    """
    if aug.restrict_to_foreground:
        mask = mask * fg
    if aug.rotation_deg > 0:
        x = rotate(x, angles_deg)
        if aug.rotate_mask_with_image:
            mask = rotate(mask, angles_deg, mode="nearest")
    return x, mask


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


def deform_depth(
    x: Tensor, mask: Tensor, amplitudes: Tensor | np.ndarray, *, blur: int = 5
) -> Tensor:
    """Push the depth channel (channel 0) in or out under a softened ``mask``: a dent or a bump.

    The profile is ``mask`` box-blurred twice with a ``blur`` kernel (smooth flanks, as a real
    dent or bump has) and scaled by each sample's amplitude (depth units of ``x``; negative =
    towards the support plane). Other channels are returned unchanged.

    Args:
        x: (B, C, H, W) inputs, depth first.
        mask: (B, 1, H, W) {0, 1} region (already restricted to the foreground).
        amplitudes: (B,) signed amplitude per sample.
        blur: box kernel side (odd).

    Returns:
        A new tensor; ``x`` is not modified.

    Example:
        >>> x = torch.zeros(1, 2, 16, 16); m = torch.zeros(1, 1, 16, 16); m[..., 4:12, 4:12] = 1
        >>> y = deform_depth(x, m, np.array([-0.2]))
        >>> round(float(y[0, 0].min()), 3), float(y[0, 1].abs().max())
        (-0.2, 0.0)
    """
    amp = _per_sample(amplitudes, x.device, torch.float32)
    soft = mask.float()
    for _ in range(2):
        soft = F.avg_pool2d(soft, blur, 1, blur // 2, count_include_pad=False)
    soft = soft * mask  # no change outside the region, so the ground truth stays exact
    out = x.clone()
    out[:, :1] = x[:, :1] + amp.view(-1, 1, 1, 1).to(x.dtype) * soft
    return out


def paint_rgb(
    x: Tensor, mask: Tensor, paint: Tensor, opacity: Tensor | np.ndarray, *, first: int = 0
) -> Tensor:
    """Blend a foreign texture into three colour channels under ``mask``: an image-space colour
    anomaly (a stain, a scratch of another material).

    Args:
        x: (B, C, H, W) inputs.
        mask: (B, 1, H, W) {0, 1} region.
        paint: (B, 3, H, W) foreign texture in [0, 1].
        opacity: (B,) blend factor in [0, 1] per sample.
        first: index of the red channel in ``x`` (1 for [D, R, G, B], 0 for RGB).

    Returns:
        A new tensor; channels outside ``first:first + 3`` and pixels outside ``mask`` unchanged.

    Example:
        >>> x = torch.zeros(1, 4, 8, 8); m = torch.zeros(1, 1, 8, 8); m[..., :4, :] = 1
        >>> y = paint_rgb(x, m, torch.ones(1, 3, 8, 8), np.array([0.5]), first=1)
        >>> float(y[0, 1, 0, 0]), float(y[0, 1, 7, 0]), float(y[0, 0].abs().max())
        (0.5, 0.0, 0.0)
    """
    a = _per_sample(opacity, x.device, torch.float32).view(-1, 1, 1, 1)
    out = x.clone()
    rgb = x[:, first : first + 3]
    out[:, first : first + 3] = rgb + (paint.to(x.dtype) - rgb) * (a * mask.to(x.dtype))
    return out
