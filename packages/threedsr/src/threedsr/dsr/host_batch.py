"""The host sampler of stage 2 (``AnomalyConfig.sampler="host"``, numpy + numba): one
augmented batch and its anomalies per step, drawn from ``(seed, rank, step)``.
:mod:`threedsr.dsr.device_batch` draws the same distributions on the device."""

from __future__ import annotations

import depthsim
import numpy as np
import torch
import vqcore

from threedsr.config import DetectorConfig
from threedsr.data import TrainData
from threedsr.dsr.anomaly_generator import FeatureAnomalyGenerator, GeneratedAnomalies
from threedsr.dsr.augment import anomaly_masks, deform_depth, paint_rgb, place_masks

__all__ = ["generate_anomalies", "image_space_anomalies", "make_batch", "step_seeds"]


def step_seeds(seed: int, rank: int, step: int) -> tuple[np.random.Generator, int]:
    # Randomness is a pure function of (seed, rank, step): resuming needs no RNG state.
    ss = np.random.SeedSequence([seed, rank, step])
    return np.random.default_rng(ss), int(ss.generate_state(1, np.uint64)[0] >> np.uint64(1))


def make_batch(
    data: TrainData,
    config: DetectorConfig,
    batch_size: int,
    rng: np.random.Generator,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One augmented batch: rotated inputs and the anomaly mask (foreground-restricted)."""
    idx = torch.as_tensor(rng.integers(len(data), size=batch_size))
    x = data.x[idx].to(device, non_blocking=True)
    fg = data.foreground[idx].to(device, non_blocking=True)
    h, w = x.shape[2:]
    aug = config.anomaly
    perlin = anomaly_masks(
        batch_size,
        (h, w),
        rng=rng,
        threshold=aug.mask_threshold,
        zero_prob=aug.zero_mask_prob,
    )
    mask = torch.from_numpy(perlin[:, None]).to(device)
    angles = rng.uniform(-aug.rotation_deg, aug.rotation_deg, batch_size)
    return place_masks(x, mask, fg, angles, aug)


def generate_anomalies(
    generator: FeatureAnomalyGenerator,
    backbone: vqcore.DiscreteAutoencoder,
    x: torch.Tensor,
    mask: torch.Tensor,
    config: DetectorConfig,
    rng: np.random.Generator,
    tgen: torch.Generator | None = None,
) -> tuple[GeneratedAnomalies, torch.Tensor]:
    """Feature-space anomalies (the reference), and with ``config.anomaly.image_anomaly_prob`` (or
    the older ``depth_anomaly_prob``) > 0 some samples' anomalies made in image space instead: the
    input is changed under the mask (depth pushed in or out, a foreign texture painted into the
    colour) and encoded by the frozen backbone, so the detector also trains on what a real defect
    does to the codes. The feature-loss targets stay the clean codes and the ground truth is the
    pixel mask.

    Returns:
        The anomalies and the image the anomalous codes came from: the changed input for
        image-space samples, ``x`` for the others (the anomaly UNet's image input when
        ``ModelConfig.unet_input == "input"``).
    """
    sel = np.zeros(x.shape[0], dtype=bool)
    has = (mask.flatten(1).amax(dim=1) > 0).cpu().numpy()
    prob = config.anomaly.image_anomaly_prob
    if prob == 0 and config.setup in ("rgbd", "depth"):
        prob = config.anomaly.depth_anomaly_prob
    if prob > 0:
        sel = has & (rng.random(x.shape[0]) < prob)
    if not sel.any():
        return generator(backbone, x, mask, rng=rng, generator=tgen), x
    t = torch.as_tensor(np.flatnonzero(sel), device=x.device)
    feature_mask = mask.clone()
    feature_mask[t] = 0
    gen = generator(backbone, x, feature_mask, rng=rng, generator=tgen)
    x_anom = x.clone()
    x_anom[t] = image_space_anomalies(x[t], mask[t], config, rng)
    with torch.no_grad():
        enc = backbone.encode(x_anom[t])
    q_top_a, q_bot_a, gt = gen.q_top_anom.clone(), gen.q_bot_anom.clone(), gen.gt.clone()
    q_top_a[t], q_bot_a[t], gt[t] = enc.q_top, enc.q_bot, mask[t].to(gt.dtype)
    return gen._replace(q_top_anom=q_top_a, q_bot_anom=q_bot_a, gt=gt), x_anom


def image_space_anomalies(
    x: torch.Tensor, mask: torch.Tensor, config: DetectorConfig, rng: np.random.Generator
) -> torch.Tensor:
    """Defects drawn in the input itself under ``mask``: a dent or bump in depth
    (:func:`deform_depth`, signed amplitude from ``depth_anomaly_amplitude``) and/or a procedural
    texture blended into RGB (:func:`paint_rgb`, opacity from ``paint_opacity``). rgbd samples get
    depth only, RGB only or both with equal odds; with ``image_anomaly_prob`` == 0 (the older
    ``depth_anomaly_prob`` option) only depth is changed."""
    n = x.shape[0]
    setup = config.setup
    if setup == "rgbd" and config.anomaly.image_anomaly_prob > 0:
        which = rng.integers(0, 3, n)  # 0 depth, 1 RGB, 2 both
    else:
        which = np.full(n, 0 if setup in ("rgbd", "depth") else 1)
    out = x
    d = np.flatnonzero(which != 1)
    if d.size:
        lo, hi = config.anomaly.depth_anomaly_amplitude
        amp = np.zeros(n)
        amp[d] = rng.uniform(lo, hi, d.size) * rng.choice((-1.0, 1.0), d.size)
        out = deform_depth(out, mask, amp)
    c = np.flatnonzero(which != 0)
    if c.size:
        h, w = x.shape[2:]
        paint = torch.zeros(n, 3, h, w, dtype=x.dtype, device=x.device)
        tex = depthsim.procedural_rgb(c.size, (h, w), rng=rng)
        paint[torch.as_tensor(c, device=x.device)] = (
            torch.from_numpy(tex).permute(0, 3, 1, 2).to(x.device, x.dtype)
        )
        lo, hi = config.anomaly.paint_opacity
        opacity = np.zeros(n)
        opacity[c] = rng.uniform(lo, hi, c.size)
        out = paint_rgb(out, mask, paint, opacity, first=1 if setup == "rgbd" else 0)
    return out
