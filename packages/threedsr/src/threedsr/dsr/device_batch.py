"""The ``device`` sampler's stage-2 batch: draws, Perlin masks, rotation and image-space
anomalies in torch on the training device, with no host synchronisation.

Every random value comes from one ``torch.Generator`` on the device seeded by
``(seed, rank, step)``; decisions are masks applied with ``torch.where`` / multiplications, so
the step's work does not depend on a value the host would have to read. The host path
(:func:`threedsr.dsr.host_batch.make_batch`, numpy + numba) draws the same distributions from a
different stream (noise and textures: :mod:`vqcore.procedural`, torch ports of depthsim's).
"""

from __future__ import annotations

import numpy as np
import torch
import vqcore
from torch import Tensor
from vqcore.procedural import (
    perlin_from_gradients,
    procedural_rgb,
    rotate_bilinear,
    sample_depth_params,
)

from threedsr.config import DetectorConfig
from threedsr.dsr.anomaly_generator import GeneratedAnomalies
from threedsr.dsr.augment import deform_depth, paint_rgb, place_masks
from threedsr.dsr.device_generator import DeviceAnomalyGenerator

__all__ = [
    "device_anomaly_masks",
    "generate_anomalies_device",
    "image_space_anomalies_device",
    "make_batch_device",
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
    rotated Perlin noise with depthsim's recipe (lattice ``2**a x 2**b``, a, b ~ U{0..5},
    rotation U(-90, 90) degrees; :mod:`vqcore.procedural`), t ~ U(threshold), each mask zeroed
    with probability ``zero_prob``.

    Returns:
        (n, 1, H, W) float32 in {0, 1}.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> m = device_anomaly_masks(4, (32, 32), generator=g, zero_prob=1.0)
        >>> m.shape, float(m.sum())
        (torch.Size([4, 1, 32, 32]), 0.0)
    """
    p = sample_depth_params(n, generator=generator, device=generator.device)
    noise = rotate_bilinear(perlin_from_gradients(p.gcos, p.gsin, shape, (p.ry, p.rx)), p.angle)
    t = _uniform(n, *threshold, generator)
    keep = torch.rand(n, generator=generator, device=generator.device) >= zero_prob
    mask = (noise.abs() > t[:, None, None]) & keep[:, None, None]
    return mask[:, None].float()


def make_batch_device(
    x_all: Tensor, fg_all: Tensor, config: DetectorConfig, batch_size: int, g: torch.Generator
) -> tuple[Tensor, Tensor]:
    """:func:`threedsr.dsr.host_batch.make_batch` from class data already on ``g``'s device."""
    idx = torch.randint(x_all.shape[0], (batch_size,), generator=g, device=g.device)
    x, fg = x_all[idx], fg_all[idx]
    h, w = x.shape[2:]
    aug = config.anomaly
    mask = device_anomaly_masks(
        batch_size, (h, w), generator=g, threshold=aug.mask_threshold, zero_prob=aug.zero_mask_prob
    )
    angles = _uniform(batch_size, -aug.rotation_deg, aug.rotation_deg, g)
    return place_masks(x, mask, fg, angles, aug)


def image_space_anomalies_device(
    x: Tensor, mask: Tensor, config: DetectorConfig, g: torch.Generator
) -> Tensor:
    """:func:`threedsr.dsr.host_batch.image_space_anomalies` for the whole batch with per-sample
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
        paint = procedural_rgb(n, tuple(x.shape[2:]), generator=g, device=g.device)
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
    """:func:`threedsr.dsr.host_batch.generate_anomalies` without host synchronisation: the
    image-space samples are chosen by a device mask, and every sample is made both ways, the
    mask picking each one's result."""
    prob = config.anomaly.image_anomaly_prob
    if prob == 0 and config.setup in ("rgbd", "depth"):
        prob = config.anomaly.depth_anomaly_prob
    if prob == 0:
        return generator(backbone, x, mask, generator=g, rng=rng, autocast=autocast), x
    ctx = autocast if autocast is not None else torch.autocast(x.device.type, enabled=False)
    if prob >= 1:
        # Every sample with a mask is drawn in image space (the cpu preset): no code to replace.
        # A sample without one is unchanged (both defects act under the mask only), so its
        # "anomalous" codes are its clean codes and its ground truth its empty mask.
        x_anom = image_space_anomalies_device(x, mask, config, g)
        with torch.no_grad(), ctx:
            clean, anom = backbone.encode(x), backbone.encode(x_anom)
        none = torch.full((x.shape[0],), -1, dtype=torch.long, device=x.device)
        gen = GeneratedAnomalies(
            clean.q_top.float(),
            clean.q_bot.float(),
            anom.q_top.float(),
            anom.q_bot.float(),
            mask.float(),
            none,  # mode and modality: -1, no feature-space anomaly
            none,
        )
        return gen, x_anom
    has = mask.flatten(1).amax(dim=1) > 0
    sel = has & (torch.rand(x.shape[0], generator=g, device=g.device) < prob)
    s4 = sel[:, None, None, None]
    gen = generator(backbone, x, mask * ~s4, generator=g, rng=rng, autocast=autocast)
    x_anom = torch.where(s4, image_space_anomalies_device(x, mask, config, g), x)
    with torch.no_grad(), ctx:
        enc = backbone.encode(x_anom)
    gen = gen._replace(
        q_top_anom=torch.where(s4, enc.q_top.float(), gen.q_top_anom),
        q_bot_anom=torch.where(s4, enc.q_bot.float(), gen.q_bot_anom),
        gt=torch.where(s4, mask.to(gen.gt.dtype), gen.gt),
    )
    return gen, x_anom
