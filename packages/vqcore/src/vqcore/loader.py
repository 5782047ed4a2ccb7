"""Which batches a stage-1 run sees, and how: the host sampler's DataLoader and its workers, or
the device sampler's batches directly."""

from __future__ import annotations

import os
from collections.abc import Iterable

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from .data import ImageFolderSource, ProceduralRGBSource, RGBSource, StageOneBatches
from .device_data import DeviceStageOneBatches
from .train_config import StageOneConfig

__all__ = ["host_workers", "rgb_source", "stage_one_batches"]


def rgb_source(config: StageOneConfig) -> RGBSource:
    """The run's RGB images: its image folder, else the procedural textures."""
    return (
        ImageFolderSource(config.rgb_dir) if config.rgb_dir is not None else ProceduralRGBSource()
    )


def host_workers(num_workers: int, cuda: bool, ranks_per_node: int = 1) -> int:
    """DataLoader workers of the host sampler: ``num_workers``, or for ``-1`` one per available
    core (shared by this node's ranks) but one for the training process, at most 16, on CUDA,
    and none on the CPU, where the training itself needs the cores.

    Example:
        >>> host_workers(3, cuda=True), host_workers(-1, cuda=False)
        (3, 0)
    """
    if num_workers >= 0:
        return num_workers
    if not cuda:
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(16, (cores or 1) // max(1, ranks_per_node) - 1))


def stage_one_batches(
    dataset: StageOneBatches | DeviceStageOneBatches,
    start: int,
    stop: int,
    config: StageOneConfig,
    workers: int,
    pin: bool,
) -> Iterable[Tensor]:
    if workers == 0 or isinstance(dataset, DeviceStageOneBatches):
        return (dataset[s] for s in range(start, stop))
    return DataLoader(
        dataset,
        batch_size=None,
        sampler=range(start, stop),
        num_workers=workers,
        pin_memory=pin,
        prefetch_factor=4,
        # Its own generator: the loader must not draw from the global torch RNG, which the
        # codebook restart uses (a run with workers equals one without).
        generator=torch.Generator().manual_seed(config.seed),
    )
