"""Fitting the descriptor memory: describe the good training scans, keep a seeded subset of
their object cells, standardise the descriptors and measure the local scale. No training."""

from __future__ import annotations

import torch
from torch import Tensor
from vqcore import DiscreteAutoencoder

from threedsr.memory.config import MemoryConfig
from threedsr.memory.features import MemoryFeatures, object_cells
from threedsr.memory.local_scale import local_scales
from threedsr.memory.parts import modality_parts
from threedsr.memory.torch_model import FeatureMemory

__all__ = ["fit_memory"]


@torch.no_grad()
def fit_memory(
    x: Tensor,
    setup: str,
    config: MemoryConfig | None = None,
    *,
    backbone: DiscreteAutoencoder | None = None,
    batch_size: int = 8,
    seed: int = 0,
) -> FeatureMemory:
    """Describe good training scans and keep at most ``config.size`` of their cells (a seeded
    random subset when there are more): the object's cells when the input has depth
    (:func:`object_cells`), every cell for RGB alone. Descriptors are standardised per channel
    with the statistics of all kept cells before subsampling, and weighted per group.

    Args:
        x: (N, C, H, W) good training inputs at model resolution.
        setup: ``rgbd`` | ``depth`` | ``rgb``.
        config: what to store (:class:`MemoryConfig`); None = the setup's default.
        backbone: the frozen stage-1 backbone (eval mode); encoder features only.
        batch_size: scans described at once.
        seed: the subset's seed.

    Example:
        >>> x = torch.zeros(2, 1, 64, 64); x[:, :, 16:48, 16:48] = 0.5
        >>> mem = fit_memory(x, "depth", MemoryConfig(local_k=0))
        >>> mem.bank.shape[1], mem(x).shape
        (13, torch.Size([2, 64, 64]))
    """
    config = config or MemoryConfig.for_setup(setup)
    features = MemoryFeatures.from_config(config)
    if x.ndim == 4 and x.shape[0] == 0:
        raise ValueError(
            f"fit_memory: expected at least one scan (B, C, H, W), got {tuple(x.shape)}"
        )
    feats, ids = [], []
    for start in range(0, x.shape[0], batch_size):
        xb = x[start : start + batch_size]
        f = features.extract(setup, xb, backbone=backbone)
        b, c, h, w = f.shape
        rows = f.permute(0, 2, 3, 1).reshape(-1, c)
        scan = torch.arange(start, start + b, device=f.device).repeat_interleave(h * w)
        keep = object_cells(setup, xb, (h, w))
        if keep is not None:
            rows, scan = rows[keep.flatten()], scan[keep.flatten()]
        feats.append(rows.cpu())
        ids.append(scan.cpu())
    bank, image_ids = torch.cat(feats), torch.cat(ids)
    if bank.shape[0] == 0:
        raise ValueError("fit_memory: the training scans have no foreground")
    center = scale = None
    if features.kind == "descriptors":
        center, scale = bank.mean(0), bank.std(0, correction=0).clamp_min(1e-6)
        weights = features.channel_weights(setup)
        if weights is not None:
            # Weighting a standardised channel = dividing its scale: queries get it for free.
            scale = scale / weights
        bank = (bank - center) / scale
    if bank.shape[0] > config.size:
        keep = torch.randperm(bank.shape[0], generator=torch.Generator().manual_seed(seed))
        keep = keep[: config.size].sort().values
        bank, image_ids = bank[keep], image_ids[keep]
    # The checkpoint stores the bank in fp16 (FeatureMemory.state): measure the local scales and
    # the calibration on the bank the written detector will search, not on a finer one.
    bank = bank.half().float()
    if config.modalities != "joint" and features.kind != "descriptors":
        raise ValueError(
            f"fit_memory: modalities={config.modalities!r} needs descriptors, not encoder features"
        )
    parts = modality_parts(setup, len(features.scales), features.groups, config.modalities)
    local = None
    if config.local_k > 0 and x.shape[0] >= config.local_min_scans:
        # An N x N search, every part at once: on the inputs' device (a GPU when one is used).
        local = local_scales(
            bank.to(x.device),
            image_ids.to(x.device),
            config.local_k,
            parts=None if parts is None else parts.to(x.device),
        ).cpu()
    memory = FeatureMemory(
        bank,
        setup,
        image_ids,
        features=features,
        center=center,
        scale=scale,
        local_scale=local,
        backbone=backbone,
        parts=parts,
        part_scale=None if parts is None else torch.ones(parts.shape[0]),
        part_center=None if parts is None else torch.zeros(parts.shape[0]),
        part_fusion=config.modality_fusion,
    )
    if parts is not None:
        center, spread = _part_statistics(memory, x, batch_size)
        memory.part_center, memory.part_scale = (
            center.to(memory.part_scale),
            spread.to(memory.part_scale),
        )
    return memory


#: Training scans left out one at a time to measure each part's spread.
_PART_SCANS = 16


def _part_statistics(memory: FeatureMemory, x: Tensor, batch_size: int) -> tuple[Tensor, Tensor]:
    """(P,) mean and (P,) spread (standard deviation, else mean) of each part's per-scan maximum
    over training scans searched with their own cells left out."""
    picks = torch.linspace(0, x.shape[0] - 1, min(_PART_SCANS, x.shape[0])).round().long()
    maxima = []
    for start in range(0, picks.numel(), batch_size):
        ids = picks[start : start + batch_size]
        xb = x[ids.to(x.device)].cpu()  # the memory is still on the CPU here
        f = memory.features.extract(memory.setup, xb)
        where = object_cells(memory.setup, xb, (f.shape[2], f.shape[3]))
        per_part = memory.part_distances(f, exclude=ids, where=where)
        maxima.append(per_part.flatten(2).amax(2).T)
    m = torch.cat(maxima).cpu()
    mean = m.mean(0)
    spread = m.std(0) if m.shape[0] > 1 else mean
    return mean, torch.where(spread > 1e-6 * mean.clamp_min(1e-12), spread, mean)
