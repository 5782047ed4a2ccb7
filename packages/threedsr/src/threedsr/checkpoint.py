"""The self-describing ``detector.pt`` and the resumable ``train_state.pt`` (atomic writes)."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import vqcore

from threedsr.calibration import DisplayScale, MapCalibration
from threedsr.checkpoint_migration import default_later_fields, migrate_format_2
from threedsr.config import DetectorConfig
from threedsr.dsr.torch_model import ThreeDSR
from threedsr.errors import ThreedsrError
from threedsr.memory.torch_model import FeatureMemory

__all__ = [
    "DETECTOR_FILE",
    "FORMAT_VERSION",
    "KIND",
    "TRAIN_STATE_FILE",
    "atomic_save",
    "detector_payload",
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


def _refuse_export(p: Path) -> None:
    """An export (``export_detector``'s sidecar lies beside it) given where a checkpoint goes."""
    if p.with_name(p.name + ".json").is_file():
        raise ThreedsrError(
            f"{p}: is an exported model, not a detector checkpoint (run an ONNX export with "
            "OnnxDetector; the run's detector.pt is what Detector.load reads)"
        )


def read_checkpoint(path: str | os.PathLike[str], *, kind: str = KIND) -> dict[str, Any]:
    """Load with ``weights_only=True``, validate the kind and format version, and migrate a
    format-2 detector to format 3."""
    p = Path(path)
    try:
        ckpt = vqcore.checkpoint.safe_torch_load(p)
    except FileNotFoundError:
        raise ThreedsrError(f"{p}: no such file") from None
    except Exception as exc:  # truncated, corrupt or not a torch file at all
        _refuse_export(p)
        why = vqcore.checkpoint.describe_load_error(exc)
        raise ThreedsrError(f"{p}: unreadable checkpoint ({why})") from None
    if not isinstance(ckpt, dict) or ckpt.get("kind") != kind:
        _refuse_export(p)  # torch < 2.6 loads a TorchScript export as a module
        found = ckpt.get("kind") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ThreedsrError(f"{p}: not a {kind} checkpoint (found kind {found!r})")
    if ckpt.get("format_version") not in READABLE_FORMAT_VERSIONS:
        raise ThreedsrError(
            f"{p}: unsupported format version {ckpt.get('format_version')!r} (expected one of "
            f"{READABLE_FORMAT_VERSIONS}; train it again)"
        )
    if kind == KIND and ckpt["format_version"] == 2:
        migrate_format_2(ckpt)
    default_later_fields(ckpt)
    return ckpt
