"""Stage 1 as an explicit function: train a backbone on RGB images and simulated depth.

Single process on CPU or CUDA (bf16 autocast, channels_last), or several processes under
``torchrun`` with DistributedDataParallel; the result does not depend on which.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel

from .autoencoder import DiscreteAutoencoder
from .checkpoint import save_checkpoint
from .data import StageOneBatches
from .device import precision_scope, rng_scope, uses_bf16
from .device_data import DeviceStageOneBatches
from .distributed import DistContext, init_distributed
from .errors import VqcoreError
from .interrupts import deferred_interrupt
from .loader import host_workers, rgb_source, stage_one_batches
from .loss import reconstruction_loss
from .models import build_backbone
from .ops import code_usage
from .progress import TrainCallback, TrainEvent, as_callbacks
from .resume import checkpoint_payload, existing_state, run_sampler, set_rng_state
from .train_config import StageOneConfig

__all__ = ["StageOneResult", "train_dada"]


@dataclass
class StageOneResult:
    """What :func:`train_dada` returns.

    Attributes:
        model: the trained backbone (unwrapped, eval mode, on the training device).
        checkpoint: path of ``backbone.pt``.
        steps: optimizer steps completed in total (including resumed ones).
        history: the metrics of every logged step of this call.
        wall_time_s: seconds spent in this call.
        config: the configuration used.
    """

    model: DiscreteAutoencoder
    checkpoint: Path
    steps: int
    history: list[dict[str, float]] = field(default_factory=list)
    wall_time_s: float = 0.0
    config: StageOneConfig | None = None

    @property
    def metrics(self) -> dict[str, float]:
        """Metrics of the last logged step ({} when nothing was trained in this call)."""
        return self.history[-1] if self.history else {}


#: Metrics kept per logged step in the checkpoint's ``curve`` (the loss curve of the run).
_CURVE_KEYS = ("loss", "recon", "vq_loss", "perplexity_top", "perplexity_bot", "lr")


class _Trainer:
    """The state of one stage-1 run; methods are the explicit steps of :func:`train_dada`."""

    def __init__(self, config: StageOneConfig, ctx: DistContext) -> None:
        self.config = config
        self.ctx = ctx
        self.device = ctx.device
        self.cuda = self.device.type == "cuda"
        self.amp = uses_bf16(config.precision, self.device, auto=config.amp)
        self.channels_last = self.cuda and config.channels_last
        assert config.backbone is not None
        state = existing_state(config)
        torch.manual_seed(config.seed)
        # Built on the CPU so the initial weights do not depend on the device.
        model = build_backbone(config.backbone)
        self.step = 0
        # The loss curve of the whole run, kept in the checkpoint so a resumed run continues it.
        self.curve: list[dict[str, float]] = []
        if state is not None:
            model.load_state_dict(state["model"])
            self.step = int(state["step"])
            self.curve = [dict(p) for p in state.get("curve", [])]
        model.to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        self.model = model
        self.optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(
            self.optimizer, milestones=list(config.lr_milestones), gamma=config.lr_gamma
        )
        if state is not None:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            set_rng_state(state.get("rng", {}))
        self.net: torch.nn.Module = model
        if ctx.enabled:
            # Buffers (EMA codebooks) stay identical by the quantizers' all-reduce.
            self.net = DistributedDataParallel(
                model,
                device_ids=[self.device.index] if self.cuda else None,
                broadcast_buffers=False,
            )
        self.sampler = run_sampler(config, self.device, state)
        self.dataset: StageOneBatches | DeviceStageOneBatches
        common: dict[str, Any] = dict(
            image_size=config.image_size,
            batch_size=config.batch_size,
            seed=config.seed,
            affine=config.affine,
            rank=ctx.rank,
            world_size=ctx.world_size,
        )
        if self.sampler == "device":
            self.dataset = DeviceStageOneBatches(config.setup, device=self.device, **common)
        else:
            self.dataset = StageOneBatches(
                config.setup, rgb_source(config), depth_source=config.depth_source, **common
            )
        self.history: list[dict[str, float]] = []

    def payload(self) -> dict[str, Any]:
        """Everything needed to rebuild the model and continue training exactly."""
        return checkpoint_payload(
            self.config,
            self.model,
            self.optimizer,
            self.scheduler,
            step=self.step,
            sampler=self.sampler,
            history=self.history,
            curve=self.curve,
        )

    def save(self) -> Path:
        """Rank 0 writes the checkpoint atomically; every rank waits for it."""
        if self.ctx.is_main:
            save_checkpoint(self.payload(), self.config.checkpoint_path)
        self.ctx.barrier()
        return self.config.checkpoint_path

    def train_step(self, batch: Tensor) -> dict[str, Tensor]:
        """One optimizer step on this rank's slice; returns detached scalar tensors."""
        cfg = self.config
        x = batch.to(self.device, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        # The forward updates the EMA codebooks (and may restart dead codes), then Adam, the
        # scheduler and the counter move: a Ctrl-C in between saved a state one step ahead of
        # its counter, and the resumed run repeated that step.
        with deferred_interrupt():
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                recon, vq_loss, enc = self.net(x)
            rec, parts = reconstruction_loss(
                recon.float(),
                x,
                kind=cfg.loss,
                lambda_depth=cfg.lambda_depth,
                lambda_rgb=cfg.lambda_rgb,
            )
            loss = rec + vq_loss.float()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            self.step += 1
        k = self.model.config.num_embeddings
        out = {"loss": loss.detach(), "recon": rec.detach(), "vq_loss": vq_loss.detach().float()}
        out.update({name: v.detach() for name, v in parts.items()})
        out["perplexity_top"] = code_usage(enc.idx_top, k)[0]
        out["perplexity_bot"] = code_usage(enc.idx_bot, k)[0]
        return out

    def summarise(self, values: dict[str, Tensor], steps: int, seconds: float) -> dict[str, float]:
        names = sorted(values)
        vec = torch.stack([values[n].float() for n in names])
        if self.ctx.enabled:
            dist.all_reduce(vec)
            vec /= self.ctx.world_size
        metrics = {n: float(v) for n, v in zip(names, vec.tolist(), strict=True)}
        if not math.isfinite(metrics["loss"]):
            raise VqcoreError(
                f"stage-1 training diverged at step {self.step}: loss is {metrics['loss']} "
                "(lower the learning rate)"
            )
        rate = steps / seconds if seconds > 0 else float("nan")
        metrics.update(
            it_s=rate,
            samples_s=rate * self.config.batch_size,
            lr=float(self.optimizer.param_groups[0]["lr"]),
        )
        return metrics

    def run(self, callbacks: list[TrainCallback]) -> None:
        cfg = self.config
        self.model.train()
        ranks_here = int(os.environ.get("LOCAL_WORLD_SIZE", self.ctx.world_size))
        workers = host_workers(cfg.num_workers, self.cuda, ranks_here)
        batches: Iterator[Tensor] = iter(
            stage_one_batches(self.dataset, self.step, cfg.iterations, cfg, workers, pin=self.cuda)
        )
        tick, since = time.perf_counter(), 0
        try:
            while self.step < cfg.iterations:
                values = self.train_step(next(batches))
                since += 1
                if self.step % cfg.log_every == 0 or self.step == cfg.iterations:
                    now = time.perf_counter()
                    metrics = self.summarise(values, since, now - tick)
                    self.history.append(metrics)
                    self.curve.append(
                        {"step": float(self.step)}
                        | {k: v for k, v in metrics.items() if k in _CURVE_KEYS}
                    )
                    if self.ctx.is_main:
                        event = TrainEvent(self.step, cfg.iterations, metrics)
                        for cb in callbacks:
                            cb(event)
                    tick, since = time.perf_counter(), 0
                if self.step % cfg.checkpoint_every == 0 and self.step < cfg.iterations:
                    self.save()
        except KeyboardInterrupt:
            # Completed steps are never lost; no barrier: the other ranks may already be gone.
            if self.ctx.is_main:
                save_checkpoint(self.payload(), self.config.checkpoint_path)
            raise
        self.save()


def train_dada(
    config: StageOneConfig,
    callbacks: TrainCallback | Sequence[TrainCallback] | None = None,
) -> StageOneResult:
    """Stage 1: train a backbone (DADA, DepthVQVAE or RGBVQVAE) and write ``<out>/backbone.pt``.

    Runs on ``config.device``; under ``torchrun`` (``WORLD_SIZE > 1``) every rank trains on its
    slice of the same global batch with DistributedDataParallel, and the EMA codebook statistics
    are all-reduced, so the result equals a single-process run. ``config.resume`` continues
    exactly from an existing checkpoint. Ctrl-C writes a checkpoint, then re-raises.

    Args:
        config: see :class:`StageOneConfig`.
        callbacks: callables receiving a :class:`TrainEvent` every ``log_every`` steps (rank 0).

    Returns:
        :class:`StageOneResult`.

    Example:
        >>> import tempfile
        >>> cfg = StageOneConfig.cpu("depth", iterations=2, batch_size=2, image_size=16,
        ...                          out_dir=tempfile.mkdtemp(), device="cpu")
        >>> result = train_dada(cfg)
        >>> result.steps, result.checkpoint.name
        (2, 'backbone.pt')
    """
    start = time.perf_counter()
    ctx = init_distributed(config.device)
    try:
        with rng_scope(ctx.device):
            trainer = _Trainer(config, ctx)
            if trainer.step < config.iterations:
                with precision_scope(config.precision):
                    trainer.run(as_callbacks(callbacks))
        trainer.model.eval()
        return StageOneResult(
            model=trainer.model,
            checkpoint=config.checkpoint_path,
            steps=trainer.step,
            history=trainer.history,
            wall_time_s=time.perf_counter() - start,
            config=config,
        )
    finally:
        ctx.close()
