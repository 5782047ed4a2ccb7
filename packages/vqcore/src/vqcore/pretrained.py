"""Stage-1 backbones that ship with vqcore: trained by the project itself, checksum-verified.

Stage 1 does not depend on the object class (simulated Perlin depth and procedural RGB, no
dataset), so one long training serves every user, as the paper's ImageNet + Perlin pretraining
does. The files live in ``vqcore/pretrained/`` with a ``manifest.json`` that records, per setup,
the exact command, widths, iterations, data recipe, loss curve and sha256 of the weights.

Example:
    >>> import vqcore
    >>> sorted(vqcore.pretrained_manifest()["backbones"])
    ['depth', 'rgb', 'rgbd']
    >>> vqcore.load_pretrained("depth").config.setup
    'depth'
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from .autoencoder import DiscreteAutoencoder
from .checkpoint import load_backbone, read_checkpoint, save_checkpoint
from .config import SETUPS
from .errors import VqcoreError

__all__ = [
    "PRETRAINED_DIR",
    "load_pretrained",
    "pretrained_manifest",
    "pretrained_path",
    "sha256_of",
    "strip_checkpoint",
]

PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"
MANIFEST_NAME = "manifest.json"

#: Checkpoint keys a shipped backbone keeps: enough to rebuild and describe the model, nothing
#: that only a resumed training needs (optimizer, scheduler and RNG state).
_KEEP = (
    "config",
    "setup",
    "model",
    "step",
    "total",
    "complete",
    "train_config",
    "metrics",
    "curve",
    "versions",
)


def sha256_of(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pretrained_manifest(directory: str | Path | None = None) -> dict[str, Any]:
    """The shipped backbones' manifest (``{"backbones": {setup: {...}}, ...}``).

    Raises:
        VqcoreError: the manifest is missing or not valid JSON (one line naming it).
    """
    path = Path(directory or PRETRAINED_DIR) / MANIFEST_NAME
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise VqcoreError(
            f"{path}: pretrained-backbone manifest not found (reinstall vqcore)"
        ) from None
    except (OSError, ValueError) as exc:
        raise VqcoreError(f"{path}: unreadable pretrained-backbone manifest ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("backbones"), dict):
        raise VqcoreError(f"{path}: pretrained-backbone manifest has no 'backbones' table")
    return data


def pretrained_path(setup: str, directory: str | Path | None = None) -> Path:
    """Path of the shipped backbone of ``setup`` after checking its sha256 against the manifest.

    Raises:
        VqcoreError: unknown setup, a file that is missing, or one whose checksum differs from
            the manifest's (corrupt or replaced), in one line naming the file.
    """
    if setup not in SETUPS:
        raise VqcoreError(f"pretrained backbone: setup must be one of {SETUPS}, got {setup!r}")
    folder = Path(directory or PRETRAINED_DIR)
    entry = pretrained_manifest(folder)["backbones"].get(setup)
    if not isinstance(entry, dict) or "file" not in entry or "sha256" not in entry:
        raise VqcoreError(f"{folder / MANIFEST_NAME}: no pretrained {setup!r} backbone listed")
    path = folder / str(entry["file"])
    if not path.is_file():
        raise VqcoreError(f"{path}: pretrained {setup!r} backbone not found (reinstall vqcore)")
    actual = sha256_of(path)
    if actual != entry["sha256"]:
        raise VqcoreError(
            f"{path}: sha256 {actual[:12]}... differs from the manifest's "
            f"{str(entry['sha256'])[:12]}... (corrupt or replaced file; reinstall vqcore)"
        )
    return path


def load_pretrained(
    setup: str,
    *,
    map_location: str | torch.device = "cpu",
    directory: str | Path | None = None,
) -> DiscreteAutoencoder:
    """The shipped, checksum-verified stage-1 backbone of ``setup`` in eval mode
    (``torch.load(weights_only=True)``).

    Args:
        setup: ``rgbd`` (DADA), ``depth`` or ``rgb``.
        map_location: device for the weights.
        directory: a folder with the same layout (tests); None = the installed one.
    """
    return load_backbone(pretrained_path(setup, directory), map_location=map_location, setup=setup)


def strip_checkpoint(src: str | Path, dst: str | Path) -> Path:
    """Write a training checkpoint without its resume-only state (optimizer, scheduler, RNG):
    the form in which backbones are shipped. Atomic; returns ``dst``."""
    data = read_checkpoint(src)
    return save_checkpoint({k: data[k] for k in _KEEP if k in data}, dst)
