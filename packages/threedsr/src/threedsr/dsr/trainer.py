"""The state and steps of one stage-2 run (:class:`_DetectorTrainer`), which
:func:`threedsr.dsr.train.train_heads` drives."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import vqcore
from torch import nn
from vqcore.interrupts import deferred_interrupt

from threedsr.checkpoint import DETECTOR_FILE, TRAIN_STATE_FILE
from threedsr.config import DetectorConfig
from threedsr.data import TrainData
from threedsr.dsr.anomaly_generator import FeatureAnomalyGenerator, GeneratedAnomalies
from threedsr.dsr.config import resolve_sampler
from threedsr.dsr.device_batch import generate_anomalies_device, make_batch_device
from threedsr.dsr.device_generator import DeviceAnomalyGenerator
from threedsr.dsr.host_batch import generate_anomalies, make_batch, step_seeds
from threedsr.dsr.loss import Stage2Losses, stage2_losses
from threedsr.dsr.resume import earlier_history, save_training_state, try_resume, with_sampler
from threedsr.dsr.torch_model import ThreeDSR
from threedsr.errors import ThreedsrError

__all__ = ["Callback", "TrainEvent"]


#: Progress report (one type for both stages); stage 2 sends ``stage="detector"``.
TrainEvent = vqcore.TrainEvent


Callback = Callable[[TrainEvent], Any]


class _DetectorTrainer:
    """The state of one stage-2 run; its methods are the explicit steps of :func:`~threedsr.dsr.train.train_heads`
    (the shape of stage 1's ``vqcore.train._Trainer``): :meth:`train_step` (one optimizer step),
    :meth:`log` (metrics, history, callbacks), :meth:`save` (``train_state.pt`` then
    ``detector.pt``) and :meth:`run` (the loop, Ctrl-C, the finished detector and its history).

    Randomness is a pure function of ``(seed, rank, step)`` (:func:`step_seeds`), so a resumed
    run needs no RNG state and equals an uninterrupted one.
    """

    def __init__(
        self,
        config: DetectorConfig,
        ctx: vqcore.DistContext,
        out: Path,
        *,
        backbone: vqcore.DiscreteAutoencoder,
        data: TrainData,
    ) -> None:
        self.t_start = time.perf_counter()
        self.config = config
        self.ctx = ctx
        self.out = out
        self.device = device = ctx.device
        self.cuda = device.type == "cuda"
        setup = backbone.config.setup
        if setup != config.setup:
            raise ThreedsrError(
                f"{config.backbone or 'backbone'}: is a {setup!r} backbone but the detector setup "
                f"is {config.setup!r}"
            )
        self.data = data
        if config.batch_size % ctx.world_size:
            raise ThreedsrError(
                f"batch_size {config.batch_size} is not divisible by {ctx.world_size} processes"
            )
        self.local_batch = config.batch_size // ctx.world_size

        torch.manual_seed(config.seed)  # identical head init on every rank
        model = ThreeDSR(backbone.to(device), config.model).to(device)
        if self.cuda:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        heads = [p for m in model.trainable_modules().values() for p in m.parameters()]
        # Fused Adam on CUDA: one kernel for all parameters (same update rule as the CPU's).
        self.optimizer = torch.optim.Adam(heads, lr=config.lr, fused=self.cuda or None)
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(
            self.optimizer, list(config.lr_milestones), config.lr_gamma
        )
        # Stored resolved, so that a run resumed on another device keeps its random stream;
        # "auto" resuming a run adopts the run's sampler.
        auto = config.anomaly.sampler == "auto"
        config = with_sampler(config, resolve_sampler(config.anomaly.sampler, device))
        self.step = 0
        if config.resume:
            self.step, config = try_resume(
                out, model, config, self.optimizer, self.scheduler, adopt_sampler=auto
            )
            config = with_sampler(config, resolve_sampler(config.anomaly.sampler, device))
        self.config = config
        for name in (DETECTOR_FILE, TRAIN_STATE_FILE):
            if not config.resume and (out / name).exists():
                raise ThreedsrError(f"{out / name}: exists and resume is off; use a new --out")

        self.net: nn.Module = model
        if ctx.enabled:
            self.net = nn.parallel.DistributedDataParallel(
                model,
                device_ids=[device.index] if self.cuda else None,
                find_unused_parameters=False,
            )
        if config.compile:
            self.net = torch.compile(self.net)  # type: ignore[assignment]
        self.generator = FeatureAnomalyGenerator(
            config.anomaly.strength_range,
            config.anomaly.exclude_nearest,
            config.anomaly.shuffle_prob,
            modality_split_prob=config.anomaly.modality_split_prob,
        )
        self.autocast = vqcore.training_autocast(config.precision, device)
        self.on_device = config.anomaly.sampler == "device"
        if self.on_device:
            # The class stays on the device for the whole run (on the CPU: the same tensors).
            self.x_all = data.x.to(device)
            self.fg_all = data.foreground.to(device)
            self.device_generator = DeviceAnomalyGenerator(
                config.anomaly.strength_range,
                config.anomaly.exclude_nearest,
                config.anomaly.shuffle_prob,
                modality_split_prob=config.anomaly.modality_split_prob,
            )
            self.tgen = torch.Generator(device=device)
        # Step of the first non-finite loss (-1: none), kept on the device by the device
        # sampler and read only when the run logs or saves.
        self.first_bad = torch.full((), -1, dtype=torch.long, device=device)
        # A resumed run continues the history of the calls before, up to its checkpoint.
        self.history = earlier_history(out, self.step) if self.step else []
        #: The metrics of the last logged step ({} until one is logged in this call).
        self.metrics: dict[str, float] = {}
        self._tick, self._tick_step = time.perf_counter(), self.step

    def elapsed(self) -> float:
        return time.perf_counter() - self.t_start

    def _device_batch(self) -> tuple[torch.Tensor, GeneratedAnomalies, torch.Tensor]:
        """The device sampler's batch and anomalies: no host synchronisation."""
        cfg = self.config
        rng, tseed = step_seeds(cfg.seed, self.ctx.rank, self.step)
        g = self.tgen.manual_seed(tseed)
        x, mask = make_batch_device(self.x_all, self.fg_all, cfg, self.local_batch, g)
        if self.cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        gen, x_in = generate_anomalies_device(
            self.device_generator, self.model.backbone, x, mask, cfg, g, rng, self.autocast
        )
        return x, gen, x_in

    def _host_batch(self) -> tuple[torch.Tensor, GeneratedAnomalies, torch.Tensor]:
        """The host sampler's batch and anomalies (numpy + numba, the data path before issue 25)."""
        cfg = self.config
        rng, tseed = step_seeds(cfg.seed, self.ctx.rank, self.step)
        tgen = torch.Generator(device=self.device).manual_seed(tseed)
        x, mask = make_batch(self.data, cfg, self.local_batch, rng, self.device)
        if self.cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        gen, x_in = generate_anomalies(self.generator, self.model.backbone, x, mask, cfg, rng, tgen)
        return x, gen, x_in

    def check_finite(self) -> None:
        """Raise if a step since the last check had a non-finite loss (reads the device flag)."""
        bad = int(self.first_bad)
        if bad >= 0:
            raise ThreedsrError(f"stage-2 loss became non-finite at step {bad}")

    def train_step(self) -> Stage2Losses:
        """One optimizer step on this rank's share of the batch; returns the step's losses.
        With the device sampler nothing in it waits for the device."""
        cfg = self.config
        x, gen, x_in = self._device_batch() if self.on_device else self._host_batch()
        # From the forward (batch-norm statistics) to the step counter the state changes in
        # several places: a Ctrl-C in between saved weights one step ahead of their counter,
        # and the resumed run repeated that step (drifting from an uninterrupted one).
        with deferred_interrupt():
            with self.autocast:
                out = self.net(q_top=gen.q_top_anom, q_bot=gen.q_bot_anom, image=x_in)
            losses = stage2_losses(
                out,
                gen,
                x,
                gamma=cfg.loss.focal_gamma,
                mask_l1=cfg.loss.mask_l1,
                feature_loss=cfg.loss.feature_loss,
                image_weight=cfg.loss.image_loss_weight,
            )
            if self.on_device:
                bad = ~torch.isfinite(losses.total) & (self.first_bad < 0)
                self.first_bad = torch.where(bad, self.step, self.first_bad)
            elif not torch.isfinite(losses.total):
                raise ThreedsrError(
                    f"stage-2 loss became {losses.total.item()} at step {self.step}"
                )
            self.optimizer.zero_grad(set_to_none=True)
            losses.total.backward()
            self.optimizer.step()
            self.scheduler.step()
            self.step += 1
        return losses

    def log(self, losses: Stage2Losses, callbacks: list[Callback]) -> dict[str, float]:
        """This rank's metrics of the step just taken (losses, lr, it_per_s since the last log),
        appended to the history and sent to every callback (on every rank)."""
        self.check_finite()
        now = time.perf_counter()
        metrics = {k: float(v.detach()) for k, v in losses._asdict().items()}
        metrics["lr"] = float(self.optimizer.param_groups[0]["lr"])
        metrics["it_per_s"] = (self.step - self._tick_step) / max(now - self._tick, 1e-9)
        self._tick, self._tick_step = now, self.step
        self.metrics = metrics
        self.history.append({"step": float(self.step), **metrics})
        for cb in callbacks:
            cb(TrainEvent(self.step, self.config.iterations, dict(metrics), "detector"))
        return metrics

    def save(self, *, sync: bool = True) -> Path:
        """Rank 0 writes ``train_history.json``, ``train_state.pt`` then ``detector.pt`` (each
        atomically, the network so far: the finished detector is written by the caller); with
        ``sync`` every rank waits for it."""
        path = self.out / DETECTOR_FILE
        self.check_finite()
        if self.ctx.is_main:
            # The history first: a resumed run keeps the entries up to its checkpoint (later
            # ones are dropped then), so a kill between the writes loses nothing.
            self.write_history()
            cfg = self.config
            path = save_training_state(
                self.out,
                self.model,
                cfg,
                self.optimizer,
                self.scheduler,
                self.step,
                False,
                self.metrics,
            )
        # Other ranks wait for rank 0's write: a rank that tears down its gloo group while rank 0
        # is still saving can abort the whole job. Not after Ctrl-C: peers may already be gone.
        if sync:
            self.ctx.barrier()
        return path

    def write_history(self) -> None:
        """``<out>/train_history.json``: the logged metrics of the run (rank 0, atomically)."""
        if self.ctx.is_main:
            text = json.dumps(self.history, indent=1)
            vqcore.atomic_write(self.out / "train_history.json", lambda tmp: tmp.write_text(text))

    def run(self, callbacks: list[Callback]) -> Path:
        """Train to ``config.iterations`` (nothing left: only the last save), checkpointing
        every ``checkpoint_every`` steps; Ctrl-C saves the completed steps, then re-raises.
        Returns the path of ``detector.pt``."""
        cfg = self.config
        self.model.train()
        self._tick, self._tick_step = time.perf_counter(), self.step
        try:
            while self.step < cfg.iterations:
                losses = self.train_step()
                if self.step % cfg.log_every == 0 or self.step == cfg.iterations:
                    self.log(losses, callbacks)
                if self.step % cfg.checkpoint_every == 0 and self.step < cfg.iterations:
                    self.save()
        except KeyboardInterrupt:
            self.save(sync=False)
            raise
        return self.save()
