"""The self-describing ``detector.pt`` and the resumable ``train_state.pt`` (atomic writes)."""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path
from typing import Any, NamedTuple

import torch
import vqcore

from threedsr.config import DetectorConfig
from threedsr.errors import ThreedsrError
from threedsr.model import ThreeDSR

__all__ = [
    "DETECTOR_FILE",
    "FORMAT_VERSION",
    "KIND",
    "TRAIN_STATE_FILE",
    "DetectorInfo",
    "atomic_save",
    "build_from_checkpoint",
    "detector_info",
    "detector_payload",
    "package_versions",
    "read_checkpoint",
    "resolve_detector_file",
]

KIND = "threedsr.detector"
TRAIN_STATE_KIND = "threedsr.train_state"
# 2: ``detector_config`` is nested (model / preprocess / anomaly / loss parts) and uses stage 1's
# names (out_dir, image_size, lr_milestones, lr_gamma). Format 1 wrote the flat config;
# DetectorConfig.from_dict migrates it, so both are read.
FORMAT_VERSION = 2
READABLE_FORMAT_VERSIONS: tuple[int, ...] = (1, 2)
DETECTOR_FILE = "detector.pt"
TRAIN_STATE_FILE = "train_state.pt"

# Config fields added after format 1 was fixed, with the value every detector written before
# them was trained with. Without this, a missing field would take today's default (the
# reference's choice) and an old detector would silently compute something it was not trained
# for. Both were added in format 1; ``precision`` stays a top-level field in format 2.
LEGACY_MODEL_FIELDS: dict[str, Any] = {"objdec_res_skip": "identity"}
LEGACY_DETECTOR_FIELDS: dict[str, Any] = {"precision": "auto"}


def package_versions() -> dict[str, str]:
    out = {}
    for name in ("threedsr", "vqcore", "pcprep", "depthsim", "admetrics", "torch", "numpy"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "unknown"
    return out


def atomic_save(obj: Any, path: str | os.PathLike[str]) -> Path:
    """``torch.save`` to a temporary file in the same folder, then ``os.replace``."""
    return vqcore.atomic_torch_save(obj, path)


def resolve_detector_file(path: str | os.PathLike[str]) -> Path:
    """A run folder -> its ``detector.pt``; a file is returned as is."""
    p = Path(path)
    if p.is_dir():
        p = p / DETECTOR_FILE
    if not p.is_file():
        raise ThreedsrError(f"{p}: no such detector checkpoint")
    return p


def detector_payload(
    model: ThreeDSR,
    config: DetectorConfig,
    *,
    step: int,
    finished: bool,
    preprocess: dict[str, Any] | None = None,
    metrics: dict[str, float] | None = None,
    memory: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything ``Detector.load`` needs, as primitives and tensors only (``preprocess``: the
    pcprep keywords, None = ``config.preprocess_kwargs()``; ``memory``: the feature memory's
    state and calibration, see :mod:`threedsr.memory`; None = heads only)."""
    bb = model.backbone
    payload: dict[str, Any] = {
        "kind": KIND,
        "format_version": FORMAT_VERSION,
        "setup": model.setup,
        "category": config.category,
        "step": int(step),
        "total": int(config.iterations),
        "finished": bool(finished),
        "backbone_config": bb.config.to_dict(),
        "backbone_state": {k: v.detach().cpu() for k, v in bb.state_dict().items()},
        "detector_config": config.to_dict(),
        "heads_state": {
            name: {k: v.detach().cpu() for k, v in sd.items()}
            for name, sd in model.heads_state_dict().items()
        },
        "preprocess": dict(config.preprocess_kwargs() if preprocess is None else preprocess),
        "versions": package_versions(),
        "metrics": {k: float(v) for k, v in (metrics or {}).items()},
    }
    if memory is not None:
        payload["memory"] = memory
    return payload


def read_checkpoint(path: str | os.PathLike[str], *, kind: str = KIND) -> dict[str, Any]:
    """Load with ``weights_only=True`` and validate the kind and format version."""
    p = Path(path)
    try:
        ckpt = vqcore.checkpoint.safe_torch_load(p)
    except FileNotFoundError:
        raise ThreedsrError(f"{p}: no such file") from None
    except Exception as exc:  # truncated, corrupt or not a torch file at all
        why = vqcore.checkpoint.describe_load_error(exc)
        raise ThreedsrError(f"{p}: unreadable checkpoint ({why})") from None
    if not isinstance(ckpt, dict) or ckpt.get("kind") != kind:
        found = ckpt.get("kind") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ThreedsrError(f"{p}: not a {kind} checkpoint (found kind {found!r})")
    if ckpt.get("format_version") not in READABLE_FORMAT_VERSIONS:
        raise ThreedsrError(
            f"{p}: unsupported format version {ckpt.get('format_version')!r} (expected one of "
            f"{READABLE_FORMAT_VERSIONS})"
        )
    if kind == KIND:
        _fill_legacy_fields(ckpt)
    return ckpt


class DetectorInfo(NamedTuple):
    """What a ``detector.pt`` says about itself (:func:`detector_info`)."""

    path: Path  # the file (a run folder resolves to its detector.pt)
    setup: str | None  # rgbd | depth | rgb
    category: str | None
    finished: bool  # False: training stopped before its last step (resume it)
    step: int | None  # optimizer steps done
    total: int | None  # steps planned
    format_version: int
    config: dict[str, Any]  # the DetectorConfig as stored (legacy fields filled in)


def detector_info(path: str | os.PathLike[str]) -> DetectorInfo:
    """Read a ``detector.pt`` (or the run folder holding it) and report its setup and progress.

    Raises:
        ThreedsrError: as :func:`read_checkpoint` (missing, unreadable, not a detector, other
            format version).
    """
    p = resolve_detector_file(path)
    ckpt = read_checkpoint(p)
    step, total = ckpt.get("step"), ckpt.get("total")
    return DetectorInfo(
        path=p,
        setup=ckpt.get("setup"),
        category=ckpt.get("category"),
        finished=bool(ckpt.get("finished", True)),
        step=None if step is None else int(step),
        total=None if total is None else int(total),
        format_version=int(ckpt["format_version"]),
        config=dict(ckpt.get("detector_config") or {}),
    )


def _fill_legacy_fields(ckpt: dict[str, Any]) -> None:
    """Give a detector checkpoint written before a config field existed that field's old value."""
    cfg = ckpt.get("detector_config")
    if not isinstance(cfg, dict):
        return  # build_from_checkpoint reports the inconsistency
    for key, value in LEGACY_DETECTOR_FIELDS.items():
        cfg.setdefault(key, value)
    model = cfg.get("model")
    if isinstance(model, dict):
        for key, value in LEGACY_MODEL_FIELDS.items():
            model.setdefault(key, value)


def build_from_checkpoint(
    ckpt: dict[str, Any], *, device: torch.device | str = "cpu", source: str = "checkpoint"
) -> tuple[ThreeDSR, DetectorConfig]:
    """Rebuild the frozen backbone and the heads from a validated detector checkpoint."""
    try:
        config = DetectorConfig.from_dict(ckpt["detector_config"])
        bb_cfg = vqcore.BackboneConfig.from_dict(ckpt["backbone_config"])
        backbone = vqcore.build_backbone(bb_cfg)
        backbone.load_state_dict(ckpt["backbone_state"])
        model = ThreeDSR(backbone, config.model)
        model.load_heads_state_dict(ckpt["heads_state"])
    except (KeyError, RuntimeError, TypeError, ValueError, vqcore.VqcoreError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ThreedsrError(f"{source}: inconsistent detector checkpoint ({msg[:160]})") from None
    return model.to(device).eval(), config
