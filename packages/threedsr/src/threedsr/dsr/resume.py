"""Checkpoints of a stage-2 run: ``train_state.pt`` then ``detector.pt``, each atomic, and
resuming from them only when the stored run is the same run."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch

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
from threedsr.dsr.torch_model import ThreeDSR
from threedsr.errors import ThreedsrError

__all__ = ["earlier_history", "save_training_state", "try_resume", "with_sampler"]


def save_training_state(
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
        # ...and the backbone's config, which resume checks when detector.pt is not there yet.
        "backbone_config": model.backbone.config.to_dict(),
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


def with_sampler(config: DetectorConfig, sampler: str) -> DetectorConfig:
    return config.replace(anomaly=config.anomaly.replace(sampler=sampler))


def try_resume(
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
    if not det.exists() and not st.exists():
        return 0, config
    ckpt = read_checkpoint(det) if det.exists() else None
    if ckpt is not None and "heads_state" not in ckpt:
        raise ThreedsrError(
            f"{det}: holds a {ckpt.get('method')} detector without a 3DSR network; use a new --out"
        )
    if not st.exists():
        raise ThreedsrError(f"{st}: missing, cannot resume the run in {out} (use a new --out)")
    state = read_checkpoint(st, kind=TRAIN_STATE_KIND)
    if ckpt is None:
        # Killed between the first train_state.pt and the first detector.pt: the state holds
        # the heads and what they were trained with, so the run goes on from it.
        fields = ("step", "detector_config", "backbone_config", "heads_state")
        if any(key not in state for key in fields):
            raise ThreedsrError(
                f"{st}: written without its heads or backbone, and {det} is missing; "
                "cannot resume (use a new --out)"
            )
        det, ckpt = st, {key: state[key] for key in fields}
    heads = ckpt["heads_state"]
    if state["step"] != ckpt["step"]:
        if "heads_state" not in state or state["step"] < ckpt["step"]:
            raise ThreedsrError(
                f"{st}: step {state['step']} does not match {det} step {ckpt['step']}"
            )
        heads = state["heads_state"]  # detector.pt's write was cut short: the state is newer
    old = DetectorConfig.from_dict(ckpt["detector_config"])
    if adopt_sampler:
        config = with_sampler(config, old.anomaly.sampler)
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


def earlier_history(out: Path, step: int) -> list[dict[str, float]]:
    """The entries of ``<out>/train_history.json`` up to ``step``, the checkpoint a run resumes
    from: later ones were logged after it and are trained again. A missing or unreadable file
    (it is a log, not state) gives none."""
    try:
        entries = json.loads((Path(out) / "train_history.json").read_text())
        return [dict(e) for e in entries if float(e["step"]) <= step]
    except (OSError, ValueError, TypeError, KeyError):
        return []
