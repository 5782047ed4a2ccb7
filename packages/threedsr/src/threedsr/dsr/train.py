"""Stage 2 of 3DSR: train the network's heads for one object class (:func:`train_heads`).

The finished detector (the heads with the memory, calibration and display scale its method
needs) is written by :func:`threedsr.fit.train_detector`, which calls this."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import depthsim
import numpy as np
import torch
import vqcore
from torch import nn

from threedsr.checkpoint import (
    DETECTOR_FILE,
    FORMAT_VERSION,
    TRAIN_STATE_FILE,
    TRAIN_STATE_KIND,
    atomic_save,
    detector_payload,
    read_checkpoint,
)
from threedsr.config import DetectorConfig
from threedsr.data import TrainData
from threedsr.dsr.anomaly_generator import FeatureAnomalyGenerator, GeneratedAnomalies
from threedsr.dsr.augment import anomaly_masks, deform_depth, paint_rgb, rotate
from threedsr.dsr.config import resolve_sampler
from threedsr.dsr.device_batch import generate_anomalies_device, make_batch_device
from threedsr.dsr.device_generator import DeviceAnomalyGenerator
from threedsr.dsr.loss import Stage2Losses, stage2_losses
from threedsr.dsr.torch_model import ThreeDSR
from threedsr.errors import ThreedsrError

__all__ = ["TrainEvent", "TrainResult", "load_backbone", "train_heads"]


#: Progress report (one type for both stages); stage 2 sends ``stage="detector"``.
TrainEvent = vqcore.TrainEvent


class TrainResult(NamedTuple):
    """What ``train_detector`` returns."""

    path: Path  # <out_dir>/detector.pt
    step: int
    metrics: dict[str, float]
    seconds: float
    history: list[dict[str, float]]
    # The sampler the run used (``AnomalyConfig.sampler`` resolved): the finished detector
    # stores it, so that extending the run keeps its random stream.
    sampler: str | None = None


Callback = Callable[[TrainEvent], Any]


def _step_seeds(seed: int, rank: int, step: int) -> tuple[np.random.Generator, int]:
    # Randomness is a pure function of (seed, rank, step): resuming needs no RNG state.
    ss = np.random.SeedSequence([seed, rank, step])
    return np.random.default_rng(ss), int(ss.generate_state(1, np.uint64)[0] >> np.uint64(1))


def load_backbone(config: DetectorConfig) -> vqcore.DiscreteAutoencoder:
    """The frozen stage-1 backbone of ``config``: its file, or the shipped pretrained one."""
    try:
        if config.backbone is None:
            # The shipped, checksum-verified stage-1 backbone of the setup (vqcore.pretrained).
            return vqcore.load_pretrained(config.setup, map_location="cpu")
        return vqcore.load_backbone(config.backbone, map_location="cpu")
    except vqcore.VqcoreError as exc:
        raise ThreedsrError(str(exc)) from None


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
    if aug.restrict_to_foreground:
        mask = mask * fg
    angles = rng.uniform(-aug.rotation_deg, aug.rotation_deg, batch_size)
    if aug.rotation_deg > 0:
        x = rotate(x, angles)
        if aug.rotate_mask_with_image:
            mask = rotate(mask, angles, mode="nearest")
    return x, mask


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


def _save_all(
    out: Path,
    model: ThreeDSR,
    config: DetectorConfig,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    step: int,
    finished: bool,
    metrics: dict[str, float],
) -> Path:
    state = {
        "kind": TRAIN_STATE_KIND,
        "format_version": FORMAT_VERSION,
        "step": int(step),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "detector_config": config.to_dict(),
        # The heads too, so that train_state.pt alone resumes: a kill between its write and
        # detector.pt's leaves a detector.pt one checkpoint older, which resume then ignores.
        "heads_state": {
            name: {k: v.detach().cpu() for k, v in sd.items()}
            for name, sd in model.heads_state_dict().items()
        },
    }
    # train_state first: a crash in between leaves a detector.pt older than or equal to it, which
    # resume detects through the step numbers.
    atomic_save(state, out / TRAIN_STATE_FILE)
    payload = detector_payload(config, network=model, step=step, finished=finished, metrics=metrics)
    return atomic_save(payload, out / DETECTOR_FILE)


#: Fields (dotted for a part's: ``anomaly.rotation_deg``) a run may change when it resumes.
_RESUME_FREE = {
    "iterations",
    "lr_milestones",
    "checkpoint_every",
    "log_every",
    "device",
    "resume",
    "out_dir",
    "cache_dir",
    "compile",
    # Arithmetic, like the device: a run may continue in another precision or distance form.
    "precision",
    "model.vq_distance",
    "data_root",
    # Used only when the finished detector is written; the heads' training does not see them.
    "method",
    "memory",
    "fusion_weight",
    # Inference defaults: training never reads them.
    "smoothing",
    "smoothing_size",
    "gaussian_sigma",
}


def _changed_fields(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted names of the fields that differ between two configs, parts searched field by field."""
    out = []
    for f in dataclasses.fields(new):
        a, b = getattr(old, f.name), getattr(new, f.name)
        if prefix + f.name in _RESUME_FREE:
            continue
        if dataclasses.is_dataclass(b) and type(a) is type(b):
            out += _changed_fields(a, b, f"{prefix}{f.name}.")
        elif a != b:
            out.append(prefix + f.name)
    return out


def _with_sampler(config: DetectorConfig, sampler: str) -> DetectorConfig:
    return config.replace(anomaly=config.anomaly.replace(sampler=sampler))


def _try_resume(
    out: Path,
    model: ThreeDSR,
    config: DetectorConfig,
    optimizer: Any,
    scheduler: Any,
    *,
    adopt_sampler: bool = False,
) -> tuple[int, DetectorConfig]:
    """Load the run in ``out``: returns its step and ``config``, whose sampler is the stored
    one with ``adopt_sampler`` (the user asked for ``auto``: a run keeps its random stream)."""
    det, st = out / DETECTOR_FILE, out / TRAIN_STATE_FILE
    if not det.exists():
        return 0, config
    ckpt = read_checkpoint(det)
    if "heads_state" not in ckpt:
        raise ThreedsrError(
            f"{det}: holds a {ckpt.get('method')} detector without a 3DSR network; use a new --out"
        )
    if not st.exists():
        raise ThreedsrError(f"{st}: missing, cannot resume the run in {out} (use a new --out)")
    state = read_checkpoint(st, kind=TRAIN_STATE_KIND)
    heads = ckpt["heads_state"]
    if state["step"] != ckpt["step"]:
        if "heads_state" not in state or state["step"] < ckpt["step"]:
            raise ThreedsrError(
                f"{st}: step {state['step']} does not match {det} step {ckpt['step']}"
            )
        heads = state["heads_state"]  # detector.pt's write was cut short: the state is newer
    old = DetectorConfig.from_dict(ckpt["detector_config"])
    if adopt_sampler:
        config = _with_sampler(config, old.anomaly.sampler)
    diffs = [name for name in _changed_fields(old, config) if name not in _RESUME_FREE]
    if diffs:
        raise ThreedsrError(
            f"{det}: holds a different run (differs in {', '.join(diffs)}); use a new --out"
        )
    # The backbone's own distance form does not matter here: the stage-2 config sets it.
    current = model.backbone.config.to_dict()
    if {**ckpt["backbone_config"], "vq_distance": None} != {**current, "vq_distance": None}:
        raise ThreedsrError(f"{det}: was trained on a different backbone; use a new --out")
    model.load_heads_state_dict(heads)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scheduler.milestones = type(scheduler.milestones)(config.lr_milestones)
    return int(state["step"]), config


def train_heads(
    config: DetectorConfig,
    data: TrainData,
    backbone: vqcore.DiscreteAutoencoder,
    callbacks: list[Callback],
) -> tuple[ThreeDSR, TrainResult]:
    """Train the four stage-2 modules on one class's good samples (spec §3.3-§3.7).

    Each step: a batch drawn uniformly with replacement, rotated by U(±rotation_deg), a Perlin
    anomaly mask ∩ foreground ∩ valid (zeroed for half the samples), feature-space anomalies from
    :class:`FeatureAnomalyGenerator`, then ``focal + L1(mask) + MSE(SRM, Q) x 2 + 10 MSE(image)``
    and an Adam step on all four modules (MultiStepLR). CUDA: channels_last; bf16 autocast when
    ``config.precision`` asks for it (``bf16``, or ``auto`` on CUDA; ``fp32`` = the reference,
    TF32 off; ``tf32``: TF32 convolutions and matmuls, see :func:`vqcore.precision_scope`).
    Under ``torchrun`` the heads are wrapped in DDP and each rank draws ``batch_size / world``.

    ``<out_dir>/detector.pt`` (the network so far, not finished) and ``train_state.pt`` are
    written every ``checkpoint_every`` steps, at the end and on Ctrl-C (which then re-raises);
    ``resume`` continues from them.

    Returns:
        The trained network (eval mode) and the run's :class:`TrainResult`.
    """
    out = config.run_dir()
    ctx = vqcore.init_distributed(config.device)
    try:
        trainer = _DetectorTrainer(config, ctx, out, backbone=backbone, data=data)
        with vqcore.precision_scope(config.precision):
            path = trainer.run(callbacks)
        result = TrainResult(
            path,
            trainer.step,
            trainer.metrics,
            trainer.elapsed(),
            trainer.history,
            trainer.config.anomaly.sampler,
        )
        # Ranks leave together: gloo can abort a process whose peer destroys the group first.
        ctx.barrier()
        return trainer.model.eval(), result
    finally:
        ctx.close()


class _DetectorTrainer:
    """The state of one stage-2 run; its methods are the explicit steps of :func:`train_detector`
    (the shape of stage 1's ``vqcore.train._Trainer``): :meth:`train_step` (one optimizer step),
    :meth:`log` (metrics, history, callbacks), :meth:`save` (``train_state.pt`` then
    ``detector.pt``) and :meth:`run` (the loop, Ctrl-C, the finished detector and its history).

    Randomness is a pure function of ``(seed, rank, step)`` (:func:`_step_seeds`), so a resumed
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
        config = _with_sampler(config, resolve_sampler(config.anomaly.sampler, device))
        self.step = 0
        if config.resume:
            self.step, config = _try_resume(
                out, model, config, self.optimizer, self.scheduler, adopt_sampler=auto
            )
            config = _with_sampler(config, resolve_sampler(config.anomaly.sampler, device))
        self.config = config
        if not config.resume and (out / DETECTOR_FILE).exists():
            raise ThreedsrError(f"{out / DETECTOR_FILE}: exists and resume is off; use a new --out")

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
        self.history: list[dict[str, float]] = []
        #: The metrics of the last logged step ({} until one is logged in this call).
        self.metrics: dict[str, float] = {}
        self._tick, self._tick_step = time.perf_counter(), self.step

    def elapsed(self) -> float:
        return time.perf_counter() - self.t_start

    def _device_batch(self) -> tuple[torch.Tensor, GeneratedAnomalies, torch.Tensor]:
        """The device sampler's batch and anomalies: no host synchronisation."""
        cfg = self.config
        rng, tseed = _step_seeds(cfg.seed, self.ctx.rank, self.step)
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
        rng, tseed = _step_seeds(cfg.seed, self.ctx.rank, self.step)
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
            raise ThreedsrError(f"stage-2 loss became {losses.total.item()} at step {self.step}")
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
        """Rank 0 writes ``train_state.pt`` then ``detector.pt`` (each atomically, the network
        so far: the finished detector is written by the caller); with ``sync`` every rank waits
        for it."""
        path = self.out / DETECTOR_FILE
        self.check_finite()
        if self.ctx.is_main:
            cfg = self.config
            path = _save_all(
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
        """``<out>/train_history.json``: the logged metrics of this call (rank 0, atomically)."""
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
        path = self.save()
        self.write_history()
        return path
