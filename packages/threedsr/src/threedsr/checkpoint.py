"""The self-describing ``detector.pt`` and the resumable ``train_state.pt`` (atomic writes)."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any, NamedTuple

import torch
import vqcore

from threedsr.calibration import DisplayScale, MapCalibration
from threedsr.config import DetectorConfig
from threedsr.dsr.torch_model import ThreeDSR
from threedsr.errors import ThreedsrError
from threedsr.memory.torch_model import FeatureMemory

__all__ = [
    "DETECTOR_FILE",
    "FORMAT_VERSION",
    "KIND",
    "TRAIN_STATE_FILE",
    "DetectorInfo",
    "LoadedDetector",
    "atomic_save",
    "detector_info",
    "detector_payload",
    "load_detector_parts",
    "package_versions",
    "read_checkpoint",
    "resolve_detector_file",
]

KIND = "threedsr.detector"
TRAIN_STATE_KIND = "threedsr.train_state"
# 3: the file says which method made its map (``method``); the network (backbone and heads) is
# stored only when the method reads it, the memory only when fitted, and the calibrated display
# scale (``display``). Format 2 (one config for both methods, the memory's fields flat, the
# method implied by ``memory_weight``) is migrated on reading.
FORMAT_VERSION = 3
READABLE_FORMAT_VERSIONS: tuple[int, ...] = (2, 3)
DETECTOR_FILE = "detector.pt"
TRAIN_STATE_FILE = "train_state.pt"


def package_versions() -> dict[str, str]:
    """The versions a checkpoint records, from each module's own ``__version__``.

    Not ``importlib.metadata``: a source tree on ``PYTHONPATH`` (tools/portable.sh) has no
    installed metadata, and installed or not the two agree (a test keeps them equal).

    Example:
        >>> package_versions()["threedsr"]
        '0.1.0'
    """
    out = {}
    for name in ("threedsr", "vqcore", "pcprep", "depthsim", "admetrics", "torch", "numpy"):
        try:
            out[name] = str(importlib.import_module(name).__version__)
        except (ImportError, AttributeError):
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
    config: DetectorConfig,
    *,
    network: ThreeDSR | None = None,
    memory: FeatureMemory | None = None,
    calibration: dict[str, MapCalibration] | None = None,
    display: DisplayScale | None = None,
    step: int = 0,
    finished: bool = True,
    metrics: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Everything ``Detector.load`` needs, as primitives and tensors only.

    Args:
        config: the detector's configuration (its ``method`` says which map it makes).
        network: the 3DSR network (backbone and heads), when the method reads it.
        memory: the fitted descriptor memory, when the method reads it.
        calibration: ``{"heads": ..., "memory": ...}`` good-scan statistics of the maps.
        display: the calibrated colour scale and threshold.
        step, finished: how far the network's training got (0 and True for the memory).
        metrics: the last training metrics.
    """
    payload: dict[str, Any] = {
        "kind": KIND,
        "format_version": FORMAT_VERSION,
        "method": config.method,
        "setup": config.setup,
        "category": config.category,
        "step": int(step),
        "total": int(config.iterations) if config.uses_network else 0,
        "finished": bool(finished),
        "detector_config": config.to_dict(),
        "preprocess": dict(config.preprocess_kwargs()),
        "versions": package_versions(),
        "metrics": {k: float(v) for k, v in (metrics or {}).items()},
        "display": None if display is None else display.state(),
    }
    backbone = network.backbone if network is not None else getattr(memory, "backbone", None)
    if backbone is not None:
        payload["backbone_config"] = backbone.config.to_dict()
        payload["backbone_state"] = {k: v.detach().cpu() for k, v in backbone.state_dict().items()}
    if network is not None:
        payload["heads_state"] = {
            name: {k: v.detach().cpu() for k, v in sd.items()}
            for name, sd in network.heads_state_dict().items()
        }
    if memory is not None:
        payload["memory"] = memory.state()
    for name, cal in (calibration or {}).items():
        payload[f"{name}_calibration"] = [float(cal.mean), float(cal.std)]
    return payload


def read_checkpoint(path: str | os.PathLike[str], *, kind: str = KIND) -> dict[str, Any]:
    """Load with ``weights_only=True``, validate the kind and format version, and migrate a
    format-2 detector to format 3."""
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
            f"{READABLE_FORMAT_VERSIONS}; train it again)"
        )
    if kind == KIND and ckpt["format_version"] == 2:
        _migrate_format_2(ckpt)
    _default_later_fields(ckpt)
    return ckpt


#: (config section, field) -> the value every file written before the field existed used:
#: ``AnomalyConfig.sampler`` (numpy/numba batches, so a resumed run continues its own random
#: stream) and ``MemoryConfig.modality_fusion`` (the two modalities' distances were summed).
_LATER_FIELDS = {("anomaly", "sampler"): "host", ("memory", "modality_fusion"): "sum"}


def _default_later_fields(ckpt: dict[str, Any]) -> None:
    """A config written before a field existed gets the value it was trained with, not
    today's default."""
    cfg = ckpt.get("detector_config")
    if not isinstance(cfg, dict):
        return
    for (section, field), value in _LATER_FIELDS.items():
        part = cfg.get(section)
        if isinstance(part, dict) and field not in part:
            cfg = {**cfg, section: {**part, field: value}}
    ckpt["detector_config"] = cfg


def _migrate_format_2(ckpt: dict[str, Any]) -> None:
    """Format 2 -> 3 in place: the memory's flat fields become ``memory``, and the method is
    what ``memory_weight`` made the map (0: the network; 1 with descriptors: the memory alone;
    otherwise both fused). Fields added during format 2 get the value every earlier file was
    written with, not today's default."""
    cfg = ckpt.get("detector_config")
    if not isinstance(cfg, dict):
        return  # load_detector_parts reports the inconsistency
    cfg = dict(cfg)
    stored = ckpt.get("memory")
    weight = float(stored["weight"]) if isinstance(stored, dict) else 0.0
    cfg.pop("memory_weight", None)  # now derived from the method
    cfg["memory"] = {
        "features": cfg.pop("memory_features", "encoder"),
        "size": cfg.pop("memory_size", 40_000),
        "scales": cfg.pop("descriptor_scales", (1.0, 2.0, 4.0)),
        "groups": cfg.pop("descriptor_groups", ("surface", "colour")),
        "weights": cfg.pop("descriptor_weights", None),
        "local_k": cfg.pop("memory_local_k", 0),
        "local_min_scans": cfg.pop("memory_local_min_scans", 40),
        "modalities": "joint",
    }
    feats = (stored.get("features") or {}) if isinstance(stored, dict) else {}
    if weight <= 0:
        method = "3dsr"
    elif weight >= 1 and feats.get("kind") == "descriptors":
        method = "memory"
    else:
        method = "fused"
        cfg["fusion_weight"] = min(max(weight, 1e-3), 1 - 1e-3)
    cfg["method"] = method
    cfg.setdefault("precision", "auto")
    if isinstance(cfg.get("model"), dict):
        cfg["model"] = {"objdec_res_skip": "identity", **cfg["model"]}
    ckpt["detector_config"] = cfg
    ckpt["method"] = method
    ckpt["display"] = None
    if isinstance(stored, dict):
        ckpt["heads_calibration"] = stored.get("heads_calibration")
        ckpt["memory_calibration"] = stored.get("memory_calibration")
    ckpt["format_version"] = FORMAT_VERSION


class DetectorInfo(NamedTuple):
    """What a ``detector.pt`` says about itself (:func:`detector_info`)."""

    path: Path  # the file (a run folder resolves to its detector.pt)
    method: str  # memory | 3dsr | fused: which method makes its map
    setup: str | None  # rgbd | depth | rgb
    category: str | None
    finished: bool  # False: training stopped before its last step (resume it)
    step: int | None  # optimizer steps done (0 for the memory)
    total: int | None  # steps planned
    format_version: int  # as read (format 2 files are migrated)
    config: dict[str, Any]  # the DetectorConfig as a dict (migrated)
    display: DisplayScale | None  # the calibrated colour scale and threshold


def detector_info(path: str | os.PathLike[str]) -> DetectorInfo:
    """Read a ``detector.pt`` (or the run folder holding it) and report its method, setup and
    progress.

    Raises:
        ThreedsrError: as :func:`read_checkpoint` (missing, unreadable, not a detector, other
            format version).
    """
    p = resolve_detector_file(path)
    ckpt = read_checkpoint(p)
    step, total = ckpt.get("step"), ckpt.get("total")
    return DetectorInfo(
        path=p,
        method=str(ckpt.get("method")),
        setup=ckpt.get("setup"),
        category=ckpt.get("category"),
        finished=bool(ckpt.get("finished", True)),
        step=None if step is None else int(step),
        total=None if total is None else int(total),
        format_version=int(ckpt["format_version"]),
        config=dict(ckpt.get("detector_config") or {}),
        display=DisplayScale.from_state(ckpt.get("display")),
    )


class LoadedDetector(NamedTuple):
    """The parts of a ``detector.pt``, rebuilt (:func:`load_detector_parts`)."""

    config: DetectorConfig
    network: ThreeDSR | None
    memory: FeatureMemory | None
    heads_calibration: MapCalibration | None
    memory_calibration: MapCalibration | None
    display: DisplayScale | None
    category: str | None
    preprocess: dict[str, Any]
    training_state: dict[str, Any]


def load_detector_parts(
    path: str | os.PathLike[str], *, device: torch.device | str = "cpu"
) -> LoadedDetector:
    """Read a detector file and rebuild its network and memory (whichever it holds).

    Raises:
        ThreedsrError: as :func:`read_checkpoint`, or a file whose parts do not fit together.
    """
    p = resolve_detector_file(path)
    ckpt = read_checkpoint(p)
    try:
        config = DetectorConfig.from_dict(ckpt["detector_config"])
        backbone = None
        if "backbone_state" in ckpt:
            backbone = vqcore.build_backbone(
                vqcore.BackboneConfig.from_dict(ckpt["backbone_config"])
            )
            backbone.load_state_dict(ckpt["backbone_state"])
            backbone.eval()
        network = None
        if "heads_state" in ckpt:
            if backbone is None:
                raise KeyError("backbone_state")
            network = ThreeDSR(backbone, config.model)
            network.load_heads_state_dict(ckpt["heads_state"])
            network = network.to(device).eval()
        memory = None
        if ckpt.get("memory") is not None:
            memory = FeatureMemory.from_state(ckpt["memory"], config.setup, backbone).to(device)
        cals = {
            name: None
            if ckpt.get(f"{name}_calibration") is None
            else MapCalibration(*ckpt[f"{name}_calibration"])
            for name in ("heads", "memory")
        }
    except (KeyError, RuntimeError, TypeError, ValueError, vqcore.VqcoreError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ThreedsrError(f"{p}: inconsistent detector checkpoint ({msg[:160]})") from None
    return LoadedDetector(
        config=config,
        network=network,
        memory=memory,
        heads_calibration=cals["heads"],
        memory_calibration=cals["memory"],
        display=DisplayScale.from_state(ckpt.get("display")),
        category=ckpt.get("category"),
        preprocess=dict(ckpt.get("preprocess") or config.preprocess_kwargs()),
        training_state={
            "step": int(ckpt.get("step", 0)),
            "total": int(ckpt.get("total", 0)),
            "finished": bool(ckpt.get("finished", True)),
        },
    )
