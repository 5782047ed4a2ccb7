"""Stage 2: train the 3DSR heads for one object class (``train_detector``, an explicit function)."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import depthsim
import numpy as np
import torch
import vqcore
from torch import nn

from threedsr.augment import anomaly_masks, deform_depth, paint_rgb, rotate
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
from threedsr.data import TrainData, load_split, train_data_from_prepared
from threedsr.errors import ThreedsrError
from threedsr.generator import FeatureAnomalyGenerator, GeneratedAnomalies
from threedsr.losses import stage2_losses
from threedsr.memory import MemoryFeatures, fit_memory, memory_map
from threedsr.model import ThreeDSR

__all__ = [
    "TrainEvent",
    "TrainResult",
    "load_train_data",
    "preprocess_params",
    "train_detector",
]


#: Progress report (one type for both stages); stage 2 sends ``stage="detector"``.
TrainEvent = vqcore.TrainEvent


class TrainResult(NamedTuple):
    """What ``train_detector`` returns."""

    path: Path  # <out>/detector.pt
    step: int
    metrics: dict[str, float]
    seconds: float
    history: list[dict[str, float]]


Callback = Callable[[TrainEvent], Any]


def preprocess_params(config: DetectorConfig) -> dict[str, Any]:
    """pcprep keywords the detector was trained with (stored in the checkpoint)."""
    return {
        "size": config.size,
        "plane": config.plane,
        "fg_threshold": config.fg_threshold,
        "fill_iterations": config.fill_iterations,
    }


def _step_seeds(seed: int, rank: int, step: int) -> tuple[np.random.Generator, int]:
    # Randomness is a pure function of (seed, rank, step): resuming needs no RNG state.
    ss = np.random.SeedSequence([seed, rank, step])
    return np.random.default_rng(ss), int(ss.generate_state(1, np.uint64)[0] >> np.uint64(1))


def _load_backbone(config: DetectorConfig) -> vqcore.DiscreteAutoencoder:
    try:
        if config.backbone is None:
            # The shipped, checksum-verified stage-1 backbone of the setup (vqcore.pretrained).
            return vqcore.load_pretrained(config.setup, map_location="cpu")
        return vqcore.load_backbone(config.backbone, map_location="cpu")
    except vqcore.VqcoreError as exc:
        raise ThreedsrError(str(exc)) from None


def load_train_data(
    config: DetectorConfig, progress: Callable[[int, int], None] | None = None
) -> TrainData:
    """The good samples of ``<data_root>/<category>/train``, preprocessed as ``config`` says.

    ``progress(done, total)`` is called as samples are preprocessed (a plain callable; the CLI
    passes its progress bar). Raises :class:`ThreedsrError` when there is no good sample.
    """
    if config.data_root is None or config.category is None:
        raise ThreedsrError(
            "DetectorConfig.data_root and .category are required to load training data"
        )
    prepared = load_split(
        config.data_root,
        config.category,
        "train",
        preprocess_params(config),
        cache_dir=config.cache_dir,
        progress=progress,
    )
    good = [p for p in prepared if int(getattr(p, "label", 0)) == 0]
    if not good:
        raise ThreedsrError(f"{config.data_root}: no good training samples for {config.category!r}")
    return train_data_from_prepared(good, config.setup)


_load_train_data = load_train_data  # the former private name


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
    perlin = anomaly_masks(
        batch_size,
        (h, w),
        rng=rng,
        threshold=config.mask_threshold,
        zero_prob=config.zero_mask_prob,
    )
    mask = torch.from_numpy(perlin[:, None]).to(device)
    if config.restrict_to_foreground:
        mask = mask * fg
    angles = rng.uniform(-config.rotation_deg, config.rotation_deg, batch_size)
    if config.rotation_deg > 0:
        x = rotate(x, angles)
        if config.rotate_mask_with_image:
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
    """Feature-space anomalies (the reference), and with ``config.image_anomaly_prob`` (or the
    older ``depth_anomaly_prob``) > 0 some samples' anomalies made in image space instead: the
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
    prob = config.image_anomaly_prob
    if prob == 0 and config.setup in ("rgbd", "depth"):
        prob = config.depth_anomaly_prob
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
    if setup == "rgbd" and config.image_anomaly_prob > 0:
        which = rng.integers(0, 3, n)  # 0 depth, 1 RGB, 2 both
    else:
        which = np.full(n, 0 if setup in ("rgbd", "depth") else 1)
    out = x
    d = np.flatnonzero(which != 1)
    if d.size:
        lo, hi = config.depth_anomaly_amplitude
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
        lo, hi = config.paint_opacity
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
    memory: dict[str, Any] | None = None,
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
    payload = detector_payload(
        model,
        config,
        step=step,
        finished=finished,
        preprocess=preprocess_params(config),
        metrics=metrics,
        memory=memory,
    )
    return atomic_save(payload, out / DETECTOR_FILE)


#: Good training scans whose leave-one-scan-out maps calibrate the fused score.
CALIBRATION_SCANS = 16


@torch.no_grad()
def build_memory(
    model: ThreeDSR, data: TrainData, config: DetectorConfig, device: torch.device
) -> dict[str, Any]:
    """The feature memory of the class's good training scans and the good-scan statistics of
    both maps (:mod:`threedsr.memory`), as checkpoint-ready primitives and tensors.

    Calibration uses up to :data:`CALIBRATION_SCANS` training scans, each scored against the
    memory without its own features (leave one scan out), so the statistics are those of an
    unseen good scan rather than of a stored one."""
    was_training = model.training
    model.eval()
    x = data.x
    features = MemoryFeatures(
        config.memory_features,
        config.descriptor_scales,
        groups=config.descriptor_groups,
        weights=config.descriptor_weights,
    )
    memory = fit_memory(
        model.backbone,
        x.to(device),
        features=features,
        max_size=config.memory_size,
        seed=config.seed,
    )
    pick = torch.linspace(0, x.shape[0] - 1, min(CALIBRATION_SCANS, x.shape[0])).round().long()
    heads, mem = [], []
    for chunk in pick.split(4):
        xb = x[chunk].to(device)
        heads.append(model(xb).anomaly_map.float().cpu())
        mem.append(memory_map(memory, model.backbone, xb, exclude=chunk.to(device)).cpu())
    h, m = torch.cat(heads), torch.cat(mem)
    model.train(was_training)
    return {
        **memory.state(),
        "heads_calibration": [float(h.mean()), float(h.std())],
        "memory_calibration": [float(m.mean()), float(m.std())],
        "weight": float(config.memory_weight),
    }


_RESUME_FREE = {
    "iterations",
    "milestones",
    "checkpoint_every",
    "log_every",
    "device",
    "resume",
    "out",
    "cache_dir",
    "compile",
    # Arithmetic, like the device: a run may continue in another precision.
    "precision",
    "data_root",
    # Used only when the finished detector is written; the heads' training does not see them.
    "memory_weight",
    "memory_size",
    "memory_features",
    "descriptor_scales",
    "descriptor_groups",
    "descriptor_weights",
}


def _try_resume(
    out: Path, model: ThreeDSR, config: DetectorConfig, optimizer: Any, scheduler: Any
) -> int:
    det, st = out / DETECTOR_FILE, out / TRAIN_STATE_FILE
    if not det.exists():
        return 0
    ckpt = read_checkpoint(det)
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
    diffs = [
        f.name
        for f in dataclasses.fields(DetectorConfig)
        if f.name not in _RESUME_FREE and getattr(old, f.name) != getattr(config, f.name)
    ]
    if diffs:
        raise ThreedsrError(
            f"{det}: holds a different run (differs in {', '.join(diffs)}); use a new --out"
        )
    if ckpt["backbone_config"] != model.backbone.config.to_dict():
        raise ThreedsrError(f"{det}: was trained on a different backbone; use a new --out")
    model.load_heads_state_dict(heads)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scheduler.milestones = type(scheduler.milestones)(config.milestones)
    return int(state["step"])


def train_detector(
    config: DetectorConfig,
    callbacks: Callback | Iterable[Callback] | None = None,
    *,
    backbone: vqcore.DiscreteAutoencoder | None = None,
    data: TrainData | Sequence[Any] | None = None,
) -> TrainResult:
    """Train the four stage-2 modules on one class's good samples (spec §3.3-§3.7).

    Each step: a batch drawn uniformly with replacement, rotated by U(±rotation_deg), a Perlin
    anomaly mask ∩ foreground ∩ valid (zeroed for half the samples), feature-space anomalies from
    :class:`FeatureAnomalyGenerator`, then ``focal + L1(mask) + MSE(SRM, Q) x 2 + 10 MSE(image)``
    and an Adam step on all four modules (MultiStepLR). CUDA: channels_last; bf16 autocast when
    ``config.precision`` asks for it (``bf16``, or ``auto`` on CUDA; ``fp32`` = the reference).
    Under ``torchrun`` the heads are wrapped in DDP and each rank draws ``batch_size / world``.

    Args:
        config: see :class:`DetectorConfig`; ``out`` is required.
        callbacks: callable(s) receiving :class:`TrainEvent` every ``log_every`` steps and at the end.
        backbone: a stage-1 model to use instead of loading ``config.backbone``.
        data: :class:`TrainData` or `Prepared` records instead of reading ``config.data_root``.

    Returns:
        :class:`TrainResult`; ``<out>/detector.pt`` is written atomically (also every
        ``checkpoint_every`` steps and on Ctrl-C, which then re-raises).
    """
    cbs = vqcore.as_callbacks(callbacks)
    out = config.out_dir()
    info = vqcore.init_distributed(config.device)
    try:
        result = _train(config, cbs, backbone, data, out, info.device, info)
        # Ranks leave together: gloo can abort a process whose peer destroys the group first.
        info.barrier()
        return result
    finally:
        info.close()


def _train(
    config: DetectorConfig,
    cbs: list[Callback],
    backbone: vqcore.DiscreteAutoencoder | None,
    data: TrainData | Sequence[Any] | None,
    out: Path,
    device: torch.device,
    info: vqcore.DistContext,
) -> TrainResult:
    t_start = time.perf_counter()
    if backbone is None:
        backbone = _load_backbone(config)
    setup = backbone.config.setup
    if setup != config.setup:
        raise ThreedsrError(
            f"{config.backbone or 'backbone'}: is a {setup!r} backbone but the detector setup is "
            f"{config.setup!r}"
        )
    if data is None:
        data = load_train_data(config)
    elif not isinstance(data, TrainData):
        data = train_data_from_prepared(list(data), config.setup)
    if data.x.shape[2] != config.size or data.x.shape[3] != config.size:
        raise ThreedsrError(
            f"training data is {tuple(data.x.shape[2:])}, config.size is {config.size}"
        )
    if config.batch_size % info.world_size:
        raise ThreedsrError(
            f"batch_size {config.batch_size} is not divisible by {info.world_size} processes"
        )
    local_batch = config.batch_size // info.world_size

    torch.manual_seed(config.seed)  # identical head init on every rank
    model = ThreeDSR(backbone.to(device), config.model).to(device)
    cuda = device.type == "cuda"
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    heads = [p for m in model.trainable_modules().values() for p in m.parameters()]
    optimizer = torch.optim.Adam(heads, lr=config.lr)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, list(config.milestones), config.gamma
    )
    start = _try_resume(out, model, config, optimizer, scheduler) if config.resume else 0
    if not config.resume and (out / DETECTOR_FILE).exists():
        raise ThreedsrError(f"{out / DETECTOR_FILE}: exists and resume is off; use a new --out")

    runner: nn.Module = model
    if info.enabled:
        runner = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if cuda else None, find_unused_parameters=False
        )
    if config.compile:
        runner = torch.compile(runner)  # type: ignore[assignment]
    generator = FeatureAnomalyGenerator(
        config.strength_range,
        config.exclude_nearest,
        config.shuffle_prob,
        modality_split_prob=config.modality_split_prob,
    )
    autocast = vqcore.training_autocast(config.precision, device)
    fuse = config.memory_weight > 0
    model.train()
    history: list[dict[str, float]] = []
    metrics: dict[str, float] = {}
    step = start
    t_log, step_log = time.perf_counter(), start

    def save(finished: bool, *, sync: bool = True) -> Path:
        path = out / DETECTOR_FILE
        if info.is_main:
            # Only the finished detector carries the memory: its calibration needs the final heads.
            memory = build_memory(model, data, config, device) if finished and fuse else None
            path = _save_all(
                out, model, config, optimizer, scheduler, step, finished, metrics, memory
            )
        # Other ranks wait for rank 0's write: a rank that tears down its gloo group while rank 0
        # is still saving can abort the whole job. Not after Ctrl-C: peers may already be gone.
        if sync:
            info.barrier()
        return path

    try:
        while step < config.iterations:
            rng, tseed = _step_seeds(config.seed, info.rank, step)
            tgen = torch.Generator(device=device).manual_seed(tseed)
            x, mask = make_batch(data, config, local_batch, rng, device)
            if cuda:
                x = x.contiguous(memory_format=torch.channels_last)
            gen, x_in = generate_anomalies(generator, model.backbone, x, mask, config, rng, tgen)
            with autocast:
                o = runner(q_top=gen.q_top_anom, q_bot=gen.q_bot_anom, image=x_in)
            losses = stage2_losses(
                o.logits,
                gen.gt,
                o.srm_top,
                o.srm_bot,
                gen.q_top,
                gen.q_bot,
                o.object_recon,
                x,
                gamma=config.focal_gamma,
                mask_l1=config.mask_l1,
                feature_loss=config.feature_loss,
                image_weight=config.image_loss_weight,
            )
            if not torch.isfinite(losses.total):
                raise ThreedsrError(f"stage-2 loss became {losses.total.item()} at step {step}")
            optimizer.zero_grad(set_to_none=True)
            losses.total.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            if step % config.log_every == 0 or step == config.iterations:
                now = time.perf_counter()
                metrics = {k: float(v.detach()) for k, v in losses._asdict().items()}
                metrics["lr"] = float(optimizer.param_groups[0]["lr"])
                metrics["it_per_s"] = (step - step_log) / max(now - t_log, 1e-9)
                t_log, step_log = now, step
                history.append({"step": float(step), **metrics})
                for cb in cbs:
                    cb(TrainEvent(step, config.iterations, dict(metrics), "detector"))
            if step % config.checkpoint_every == 0 and step < config.iterations:
                save(False)
    except KeyboardInterrupt:
        save(False, sync=False)
        raise
    path = save(True)
    if info.is_main:
        text = json.dumps(history, indent=1)
        vqcore.atomic_write(out / "train_history.json", lambda tmp: tmp.write_text(text))
    return TrainResult(path, step, metrics, time.perf_counter() - t_start, history)
