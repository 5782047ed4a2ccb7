"""One-file, self-describing backbone checkpoints (atomic write, ``weights_only`` load)."""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from .config import BackboneConfig
from .errors import VqcoreError
from .models import DiscreteAutoencoder, build_backbone

__all__ = [
    "CHECKPOINT_KIND",
    "CHECKPOINT_NAME",
    "FORMAT_VERSION",
    "load_backbone",
    "read_checkpoint",
    "resolve_checkpoint_path",
    "save_checkpoint",
]

CHECKPOINT_KIND = "threedsr.backbone"
CHECKPOINT_NAME = "backbone.pt"
FORMAT_VERSION = 1


def resolve_checkpoint_path(path_or_dir: str | Path) -> Path:
    """``<dir>/backbone.pt`` for a folder, the path itself for a file."""
    path = Path(path_or_dir)
    return path / CHECKPOINT_NAME if path.is_dir() else path


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> Path:
    """``torch.save`` to a temporary file in the same folder, fsync, then ``os.replace``.

    A crash or Ctrl-C mid-write leaves the previous file intact (never a truncated one).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_checkpoint(payload: dict[str, Any], path: str | Path) -> Path:
    """Write ``payload`` atomically (see `atomic_torch_save`), adding ``kind`` and ``format_version``."""
    data = {"kind": CHECKPOINT_KIND, "format_version": FORMAT_VERSION, **payload}
    return atomic_torch_save(data, path)


def read_checkpoint(
    path_or_dir: str | Path, *, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Load and validate a backbone checkpoint with ``torch.load(weights_only=True)``.

    Raises:
        VqcoreError: missing, unreadable/truncated, wrong kind or newer format (one line, naming
            the file).
    """
    path = resolve_checkpoint_path(path_or_dir)
    if not path.is_file():
        raise VqcoreError(f"{path}: checkpoint not found")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise VqcoreError(
            f"{path}: holds objects that safe (weights_only) loading refuses; not a vqcore "
            "checkpoint or not from a trusted source"
        ) from exc
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise VqcoreError(
            f"{path}: not a readable checkpoint (truncated or corrupt: {first})"
        ) from exc
    if not isinstance(data, dict) or data.get("kind") != CHECKPOINT_KIND:
        kind = data.get("kind") if isinstance(data, dict) else type(data).__name__
        raise VqcoreError(
            f"{path}: checkpoint kind {kind!r} is not a vqcore backbone (expected {CHECKPOINT_KIND!r})"
        )
    version = data.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise VqcoreError(
            f"{path}: checkpoint format version {version!r} is not supported (this vqcore reads "
            f"<= {FORMAT_VERSION}); upgrade vqcore"
        )
    for key in ("config", "model"):
        if key not in data:
            raise VqcoreError(f"{path}: checkpoint lacks {key!r} (incomplete file)")
    return data


def load_backbone(
    path_or_dir: str | Path,
    *,
    map_location: str | torch.device = "cpu",
    setup: str | None = None,
) -> DiscreteAutoencoder:
    """Rebuild a trained backbone from ``backbone.pt`` (or a folder holding it), in eval mode.

    Args:
        path_or_dir: checkpoint file or the ``out_dir`` of :func:`vqcore.train_dada`.
        map_location: device for the weights.
        setup: when given, the checkpoint's setup must match (``rgbd``, ``depth`` or ``rgb``).

    Returns:
        The backbone (``DADA``, ``DepthVQVAE`` or ``RGBVQVAE``) with weights and codebooks.

    Raises:
        VqcoreError: see :func:`read_checkpoint`; also a setup mismatch or weights that do not fit.
    """
    path = resolve_checkpoint_path(path_or_dir)
    data = read_checkpoint(path, map_location=map_location)
    try:
        config = BackboneConfig.from_dict(dict(data["config"]))
    except (VqcoreError, TypeError) as exc:
        raise VqcoreError(f"{path}: invalid backbone config in checkpoint ({exc})") from exc
    if setup is not None and config.setup != setup:
        raise VqcoreError(
            f"{path}: checkpoint is a {config.setup!r} backbone, but a {setup!r} one is required"
        )
    model = build_backbone(config)
    try:
        model.load_state_dict(data["model"])
    except RuntimeError as exc:
        raise VqcoreError(
            f"{path}: weights do not match the stored config ({str(exc).splitlines()[0]})"
        ) from exc
    return model.to(map_location).eval()
