"""Stage-1 batches made on the training device in the main process (the ``device`` sampler).

The host sampler (:class:`vqcore.data.StageOneBatches`) runs depthsim's numba/numpy generators in
DataLoader workers; on a GPU that caps rgbd training well below what the model allows. Here each
batch comes from :mod:`vqcore.procedural` on the device, from a ``torch.Generator`` seeded by
``(seed, rank, step)``: resuming at any step sees the batches of an uninterrupted run. Unlike the
host sampler a batch depends on each rank's batch size, so changing the number of DDP ranks
changes the data (not its distribution).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .errors import VqcoreError
from .procedural import procedural_rgb, simulate_depth

__all__ = ["SAMPLERS", "DeviceStageOneBatches", "resolve_sampler"]

#: ``auto``: ``device`` when training on CUDA and the data allow it, else ``host``.
SAMPLERS: tuple[str, ...] = ("auto", "device", "host")


def resolve_sampler(
    sampler: str, device: torch.device, *, rgb_dir: object = None, depth_source: str = "perlin"
) -> str:
    """The concrete sampler (``device`` or ``host``) of a stage-1 run.

    The device sampler makes procedural RGB and simulated depth only; an image folder or the
    grayscale-as-depth ablation needs the host sampler.

    Example:
        >>> resolve_sampler("auto", torch.device("cpu")), resolve_sampler("device", torch.device("cpu"))
        ('host', 'device')
    """
    if sampler not in SAMPLERS:
        raise VqcoreError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    possible = rgb_dir is None and depth_source == "perlin"
    if sampler == "auto":
        return "device" if possible and device.type == "cuda" else "host"
    if sampler == "device" and not possible:
        raise VqcoreError(
            "sampler 'device' makes procedural RGB and Perlin depth only; use sampler 'host' "
            "with rgb_dir or depth_source='grayscale'"
        )
    return sampler


class DeviceStageOneBatches:
    """Stage-1 batches on ``device``; item ``step`` is this rank's ``(B / world, C, S, S)`` batch.

    Channels as :class:`vqcore.data.StageOneBatches`: rgbd [D, R, G, B], depth [D], rgb [R, G, B].

    Example:
        >>> data = DeviceStageOneBatches("rgbd", image_size=16, batch_size=2)
        >>> batch = data[0]
        >>> batch.shape, bool(torch.equal(batch, data[0])), bool(torch.equal(batch, data[1]))
        (torch.Size([2, 4, 16, 16]), True, False)
    """

    def __init__(
        self,
        setup: str,
        *,
        image_size: int,
        batch_size: int,
        seed: int = 0,
        affine: bool = True,
        rank: int = 0,
        world_size: int = 1,
        device: torch.device | str = "cpu",
    ) -> None:
        if batch_size % world_size:
            raise VqcoreError(
                f"batch_size {batch_size} is not divisible by the number of processes {world_size}"
            )
        self.setup = setup
        self.image_size = image_size
        self.local_batch = batch_size // world_size
        self.seed = seed
        self.affine = affine
        self.rank = rank
        self.device = torch.device(device)

    def generator(self, step: int) -> torch.Generator:
        """A generator on the device seeded by ``(seed, rank, step)`` (SeedSequence-mixed, so
        neighbouring steps get unrelated streams)."""
        key = np.random.SeedSequence([self.seed, self.rank, step, 1]).generate_state(1, np.uint64)
        return torch.Generator(device=self.device).manual_seed(int(key[0]))

    def __getitem__(self, step: int) -> Tensor:
        gen = self.generator(step)
        n, shape = self.local_batch, (self.image_size, self.image_size)
        parts = []
        if self.setup in ("rgbd", "depth"):
            depth = simulate_depth(n, shape, generator=gen, device=self.device, affine=self.affine)
            parts.append(depth[:, None])
        if self.setup in ("rgbd", "rgb"):
            parts.append(procedural_rgb(n, shape, generator=gen, device=self.device))
        return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
