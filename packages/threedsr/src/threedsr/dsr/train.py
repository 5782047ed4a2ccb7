"""Stage 2 of 3DSR: train the network's heads for one object class (:func:`train_heads`).

The finished detector (the heads with the memory, calibration and display scale its method
needs) is written by :func:`threedsr.fit.train_detector`, which calls this."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import vqcore

from threedsr.config import DetectorConfig
from threedsr.data import TrainData
from threedsr.dsr.torch_model import ThreeDSR
from threedsr.dsr.trainer import Callback, _DetectorTrainer
from threedsr.errors import ThreedsrError

__all__ = ["TrainResult", "load_backbone", "train_heads"]


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


def load_backbone(config: DetectorConfig) -> vqcore.DiscreteAutoencoder:
    """The frozen stage-1 backbone of ``config``: its file, or the shipped pretrained one."""
    # Building the modules draws their (overwritten) initial weights from torch's global RNG;
    # loading a file must not move the caller's random stream (train_detector restores it).
    try:
        with vqcore.rng_scope("cpu"):
            if config.backbone is None:
                # The shipped, checksum-verified stage-1 backbone of the setup (vqcore.pretrained).
                return vqcore.load_pretrained(config.setup, map_location="cpu")
            return vqcore.load_backbone(config.backbone, map_location="cpu")
    except vqcore.VqcoreError as exc:
        raise ThreedsrError(str(exc)) from None


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
        with vqcore.rng_scope(ctx.device):
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
