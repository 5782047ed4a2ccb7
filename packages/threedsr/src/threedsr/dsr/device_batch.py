"""The ``device`` sampler's stage-2 batch: draws, Perlin masks, rotation and image-space
anomalies in torch on the training device, with no host synchronisation.

Every random value comes from one ``torch.Generator`` on the device seeded by
``(seed, rank, step)``; decisions are masks applied with ``torch.where`` / multiplications, so
the step's work does not depend on a value the host would have to read. The host path
(:func:`threedsr.dsr.train.make_batch`, numpy + numba) draws the same distributions from a
different stream; the one difference in law is the painted texture (:func:`procedural_paint`
instead of ``depthsim.procedural_rgb``).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import vqcore
from torch import Tensor
from vqcore.noise_torch import perlin_noise, random_perlin

from threedsr.config import DetectorConfig
from threedsr.dsr.anomaly_generator import GeneratedAnomalies
from threedsr.dsr.augment import deform_depth, paint_rgb, rotate
from threedsr.dsr.device_generator import DeviceAnomalyGenerator

__all__ = [
    "device_anomaly_masks",
    "generate_anomalies_device",
    "image_space_anomalies_device",
    "make_batch_device",
    "procedural_paint",
]


def _uniform(n: int, lo: float, hi: float, g: torch.Generator) -> Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g, device=g.device)


def device_anomaly_masks(
    n: int,
    shape: tuple[int, int],
    *,
    generator: torch.Generator,
    threshold: tuple[float, float] = (0.4, 0.8),
    zero_prob: float = 0.5,
) -> Tensor:
    """:func:`threedsr.dsr.augment.anomaly_masks` on the generator's device: ``|noise| > t``,
    noise by :func:`vqcore.noise_torch.random_perlin` (depthsim's recipe), t ~ U(threshold),
    each mask zeroed with probability ``zero_prob``.

    Returns:
        (n, 1, H, W) float32 in {0, 1}.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> m = device_anomaly_masks(4, (32, 32), generator=g, zero_prob=1.0)
        >>> m.shape, float(m.sum())
        (torch.Size([4, 1, 32, 32]), 0.0)
    """
    noise = random_perlin(n, shape, generator=generator)
    t = _uniform(n, *threshold, generator)
    keep = torch.rand(n, generator=generator, device=generator.device) >= zero_prob
    mask = (noise.abs() > t[:, None, None]) & keep[:, None, None]
    return mask[:, None].float()


def make_batch_device(
    x_all: Tensor, fg_all: Tensor, config: DetectorConfig, batch_size: int, g: torch.Generator
) -> tuple[Tensor, Tensor]:
    """:func:`threedsr.dsr.train.make_batch` from class data already on ``g``'s device."""
    idx = torch.randint(x_all.shape[0], (batch_size,), generator=g, device=g.device)
    x, fg = x_all[idx], fg_all[idx]
    h, w = x.shape[2:]
    aug = config.anomaly
    mask = device_anomaly_masks(
        batch_size, (h, w), generator=g, threshold=aug.mask_threshold, zero_prob=aug.zero_mask_prob
    )
    if aug.restrict_to_foreground:
        mask = mask * fg
    angles = _uniform(batch_size, -aug.rotation_deg, aug.rotation_deg, g)
    if aug.rotation_deg > 0:
        x = rotate(x, angles)
        if aug.rotate_mask_with_image:
            mask = rotate(mask, angles, mode="nearest")
    return x, mask


def procedural_paint(n: int, shape: tuple[int, int], generator: torch.Generator) -> Tensor:
    """``n`` colour textures in [0, 1] for painted anomalies, on the generator's device: a
    three-octave Perlin field (base lattice 1-8 cells per axis), min-max normalised, mapped
    through a random three-colour palette, lit by a random ramp, with sensor grain. A simpler
    family than ``depthsim.procedural_rgb`` (no stripes, checkers or discs).

    Returns:
        (n, 3, H, W) float32.

    Example:
        >>> p = procedural_paint(2, (16, 16), torch.Generator().manual_seed(0))
        >>> p.shape, bool(p.min() >= 0 and p.max() <= 1)
        (torch.Size([2, 3, 16, 16]), True)
    """
    g, dev = generator, generator.device
    h, w = shape
    base = torch.randint(1, 9, (2, n), generator=g, device=dev)
    field = torch.zeros(n, h, w, device=dev)
    for o in range(3):
        ry, rx = base[0] * 2**o, base[1] * 2**o
        side = 8 * 2**o + 1
        th = torch.rand(n, side, side, generator=g, device=dev) * (2 * math.pi)
        field += 0.5**o * perlin_noise(th.cos(), th.sin(), ry, rx, shape)
    lo = field.flatten(1).amin(1)[:, None, None]
    hi = field.flatten(1).amax(1)[:, None, None]
    f = (field - lo) / (hi - lo).clamp_min(1e-6)
    palette = torch.rand(n, 3, 3, generator=g, device=dev)  # (item, colour, rgb)
    pos = f * 2.0
    i0 = pos.floor().clamp(0, 1).long()
    frac = (pos - i0)[:, None]
    c0 = palette.gather(1, i0.view(n, -1, 1).expand(-1, -1, 3)).view(n, h, w, 3).permute(0, 3, 1, 2)
    c1 = (
        palette.gather(1, (i0 + 1).view(n, -1, 1).expand(-1, -1, 3))
        .view(n, h, w, 3)
        .permute(0, 3, 1, 2)
    )
    img = c0 + (c1 - c0) * frac
    ang = torch.rand(n, generator=g, device=dev) * math.pi
    yy = torch.arange(h, device=dev, dtype=torch.float32)[None, :, None] / max(h, w)
    xx = torch.arange(w, device=dev, dtype=torch.float32)[None, None, :] / max(h, w)
    ramp = xx * ang.cos()[:, None, None] + yy * ang.sin()[:, None, None]
    light = _uniform(n, 0.6, 1.0, g)[:, None, None] + _uniform(n, 0.0, 0.5, g)[:, None, None] * ramp
    img = img * light[:, None]
    grain = _uniform(n, 0.0, 0.03, g)[:, None, None, None]
    img = img + grain * torch.randn(img.shape, generator=g, device=dev)
    return img.clamp(0.0, 1.0)


def image_space_anomalies_device(
    x: Tensor, mask: Tensor, config: DetectorConfig, g: torch.Generator
) -> Tensor:
    """:func:`threedsr.dsr.train.image_space_anomalies` for the whole batch with per-sample
    kinds as masks: a sample not deformed gets amplitude 0, one not painted opacity 0."""
    n, setup = x.shape[0], config.setup
    lo, hi = config.anomaly.depth_anomaly_amplitude
    if setup == "rgbd" and config.anomaly.image_anomaly_prob > 0:
        which = torch.randint(0, 3, (n,), generator=g, device=g.device)  # 0 depth, 1 RGB, 2 both
    else:
        which = torch.full((n,), 0 if setup in ("rgbd", "depth") else 1, device=g.device)
    out = x
    if setup in ("rgbd", "depth"):
        sign = torch.where(torch.rand(n, generator=g, device=g.device) < 0.5, -1.0, 1.0)
        amp = _uniform(n, lo, hi, g) * sign * (which != 1)
        out = deform_depth(out, mask, amp)
    if setup in ("rgbd", "rgb"):
        paint = procedural_paint(n, tuple(x.shape[2:]), g)
        plo, phi = config.anomaly.paint_opacity
        opacity = _uniform(n, plo, phi, g) * (which != 0)
        out = paint_rgb(out, mask, paint, opacity, first=1 if setup == "rgbd" else 0)
    return out


def generate_anomalies_device(
    generator: DeviceAnomalyGenerator,
    backbone: vqcore.DiscreteAutoencoder,
    x: Tensor,
    mask: Tensor,
    config: DetectorConfig,
    g: torch.Generator,
    rng: np.random.Generator,
    autocast: torch.autocast | None = None,
) -> tuple[GeneratedAnomalies, Tensor]:
    """:func:`threedsr.dsr.train.generate_anomalies` without host synchronisation: the
    image-space samples are chosen by a device mask, and every sample is made both ways, the
    mask picking each one's result."""
    prob = config.anomaly.image_anomaly_prob
    if prob == 0 and config.setup in ("rgbd", "depth"):
        prob = config.anomaly.depth_anomaly_prob
    if prob == 0:
        return generator(backbone, x, mask, generator=g, rng=rng, autocast=autocast), x
    has = mask.flatten(1).amax(dim=1) > 0
    sel = has & (torch.rand(x.shape[0], generator=g, device=g.device) < prob)
    s4 = sel[:, None, None, None]
    gen = generator(backbone, x, mask * ~s4, generator=g, rng=rng, autocast=autocast)
    x_anom = torch.where(s4, image_space_anomalies_device(x, mask, config, g), x)
    ctx = autocast if autocast is not None else torch.autocast(x.device.type, enabled=False)
    with torch.no_grad(), ctx:
        enc = backbone.encode(x_anom)
    gen = gen._replace(
        q_top_anom=torch.where(s4, enc.q_top.float(), gen.q_top_anom),
        q_bot_anom=torch.where(s4, enc.q_bot.float(), gen.q_bot_anom),
        gt=torch.where(s4, mask.to(gen.gt.dtype), gen.gt),
    )
    return gen, x_anom
