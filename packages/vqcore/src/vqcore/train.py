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
from .checkpoint import read_checkpoint, save_checkpoint
from .data import StageOneBatches
from .device import precision_scope, uses_bf16
from .device_data import DeviceStageOneBatches, resolve_sampler
from .distributed import DistContext, init_distributed
from .errors import VqcoreError
from .loader import host_workers, rgb_source, stage_one_batches
from .loss import reconstruction_loss
from .models import build_backbone
from .ops import code_usage
from .progress import TrainCallback, TrainEvent, as_callbacks
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


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = [s for s in torch.cuda.get_rng_state_all()]
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    if "torch" in state:
        torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        cuda = [s.cpu() for s in state["cuda"]]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


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
        state = self._existing_state()
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
            _set_rng_state(state.get("rng", {}))
        self.net: torch.nn.Module = model
        if ctx.enabled:
            # Buffers (EMA codebooks) stay identical by the quantizers' all-reduce.
            self.net = DistributedDataParallel(
                model,
                device_ids=[self.device.index] if self.cuda else None,
                broadcast_buffers=False,
            )
        self.sampler = self._sampler(state)
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

    def _sampler(self, state: dict[str, Any] | None) -> str:
        """``auto`` resumes with the checkpoint's sampler (``host`` before the option existed),
        so a resumed run sees the batches of an uninterrupted one; an explicit choice wins."""
        cfg = self.config
        if cfg.sampler == "auto" and state is not None:
            return str(state.get("train_config", {}).get("sampler", "host"))
        return resolve_sampler(
            cfg.sampler, self.device, rgb_dir=cfg.rgb_dir, depth_source=cfg.depth_source
        )

    def _existing_state(self) -> dict[str, Any] | None:
        path = self.config.checkpoint_path
        if not path.exists():
            return None
        if not self.config.resume:
            if self.config.overwrite:
                return None
            raise VqcoreError(
                f"{path}: a checkpoint already exists; resume to continue it or overwrite to "
                "replace it"
            )
        state = read_checkpoint(path, map_location="cpu")
        assert self.config.backbone is not None
        # The distance form is arithmetic, like the precision: a run may continue in another
        # (a checkpoint written before the field existed has none).
        expected = self.config.backbone.to_dict()
        stored = {**dict(state["config"]), "vq_distance": expected["vq_distance"]}
        if stored != expected:
            diff = sorted(
                k for k in set(stored) | set(expected) if stored.get(k) != expected.get(k)
            )
            raise VqcoreError(
                f"{path}: cannot resume, the checkpoint's backbone differs in {diff} "
                f"(it is a {stored.get('setup')!r} model)"
            )
        for key in ("optimizer", "scheduler", "step"):
            if key not in state:
                raise VqcoreError(f"{path}: cannot resume, the checkpoint has no {key!r} state")
        return state

    def payload(self) -> dict[str, Any]:
        """Everything needed to rebuild the model and continue training exactly."""
        assert self.config.backbone is not None
        return {
            "config": self.config.backbone.to_dict(),
            "setup": self.config.setup,
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "step": self.step,
            "total": self.config.iterations,
            "complete": self.step >= self.config.iterations,
            "train_config": self.config.to_dict() | {"sampler": self.sampler},
            "rng": _rng_state(),
            "metrics": dict(self.history[-1]) if self.history else {},
            "curve": [dict(p) for p in self.curve],
            "versions": {"vqcore": _version(), "torch": str(torch.__version__)},
        }

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


def _version() -> str:
    from . import __version__

    return __version__


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
