"""One-file, self-describing backbone checkpoints (atomic write, ``weights_only`` load)."""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import torch

from .autoencoder import DiscreteAutoencoder
from .config import SETUPS, BackboneConfig
from .errors import VqcoreError
from .models import build_backbone

__all__ = [
    "CHECKPOINT_KIND",
    "CHECKPOINT_NAME",
    "FORMAT_VERSION",
    "CheckpointInfo",
    "atomic_torch_save",
    "atomic_write",
    "checkpoint_info",
    "describe_load_error",
    "load_backbone",
    "read_checkpoint",
    "resolve_checkpoint_path",
    "safe_torch_load",
    "save_checkpoint",
]

CHECKPOINT_KIND = "threedsr.backbone"
CHECKPOINT_NAME = "backbone.pt"
FORMAT_VERSION = 1


def describe_load_error(exc: BaseException) -> str:
    """Why ``torch.load`` failed, as a short phrase for a one-line message (torch's own texts run
    to hundreds of characters, or are a bare byte value such as ``101``).

    Example:
        >>> describe_load_error(EOFError())
        'empty or truncated file'
    """
    text = " ".join(str(exc).split())
    if isinstance(exc, EOFError) or "unexpected EOF" in text:
        return "empty or truncated file"
    if isinstance(exc, zipfile.BadZipFile) or "central directory" in text or "zip archive" in text:
        return "truncated or corrupt file: not a complete PyTorch archive"
    if "Weights only load failed" in text or "Unsupported global" in text:
        return (
            "holds objects that safe (weights_only) loading refuses; not a threedsr file or "
            "not from a trusted source"
        )
    if isinstance(exc, KeyError | pickle.UnpicklingError | UnicodeDecodeError) or (
        "invalid load key" in text or "magic number" in text
    ):
        return "not a PyTorch checkpoint"
    if isinstance(exc, IsADirectoryError):
        return "is a folder, not a checkpoint file"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, OSError):  # torch's zip reader fails on a cut file with e.g. EINVAL
        return f"truncated or corrupt file ({exc.strerror or text or type(exc).__name__})"
    first = text.split(". ")[0] or type(exc).__name__
    return first if len(first) <= 100 else first[:100].rsplit(" ", 1)[0] + " ..."


def safe_torch_load(path: Path, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(weights_only=True)`` without torch's warnings on stderr (e.g. about an
    unusual pickle protocol in a foreign file)."""
    import warnings

    # vqcore 0.1.0 recorded torch.__version__ (a TorchVersion, a str subclass) in its checkpoints,
    # which weights_only=True refuses: allow exactly that class (the one place that does).
    allowed = [torch.torch_version.TorchVersion]
    with warnings.catch_warnings(), torch.serialization.safe_globals(allowed):
        warnings.simplefilter("ignore")
        return torch.load(path, map_location=map_location, weights_only=True)


def resolve_checkpoint_path(path_or_dir: str | Path) -> Path:
    """``<dir>/backbone.pt`` for a folder, the path itself for a file."""
    path = Path(path_or_dir)
    return path / CHECKPOINT_NAME if path.is_dir() else path


def _file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary name in ``path``'s folder, fsync, then ``os.replace``.

    The one atomic writer of the torch floor (threedsr and the CLI write through it). The temporary
    name keeps ``path``'s suffix (writers such as PIL pick the format from it) and starts with a
    dot; the file gets the umask's mode, like ``open``. A crash or Ctrl-C mid-write leaves the
    previous file intact (never a truncated one) and no temporary file behind.

    Example:
        >>> import tempfile, pathlib
        >>> p = atomic_write(pathlib.Path(tempfile.mkdtemp()) / "a.txt", lambda t: t.write_text("hi"))
        >>> p.read_text()
        'hi'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(
        prefix=f".{path.stem}-", suffix=path.suffix or ".tmp", dir=path.parent
    )
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, _file_mode())  # mkstemp makes 0600; a saved file gets the umask's mode
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> Path:
    """``torch.save`` through :func:`atomic_write` (temporary file, fsync, ``os.replace``)."""
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


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
        data = safe_torch_load(path, map_location)
    except Exception as exc:  # truncated, corrupt, foreign or unsafe: torch raises many types
        why = describe_load_error(exc)
        if why.startswith("holds objects"):
            raise VqcoreError(f"{path}: {why}") from None
        raise VqcoreError(f"{path}: not a readable checkpoint ({why})") from None
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


class CheckpointInfo(NamedTuple):
    """What a backbone checkpoint says about itself (:func:`checkpoint_info`)."""

    path: Path  # the file (a folder resolves to its backbone.pt)
    setup: str | None  # rgbd | depth | rgb
    complete: bool  # False: stage 1 stopped before its last step (resume it)
    step: int | None  # optimizer steps done
    total: int | None  # steps planned
    format_version: int
    config: dict[str, Any]  # the BackboneConfig as stored


def checkpoint_info(path_or_dir: str | Path) -> CheckpointInfo:
    """Read a ``backbone.pt`` (or the folder holding it) and report its setup and progress.

    Raises:
        VqcoreError: as :func:`read_checkpoint` (missing, unreadable, not a backbone, too new).
    """
    path = resolve_checkpoint_path(path_or_dir)
    data = read_checkpoint(path)
    config = dict(data.get("config", {}))
    step, total = data.get("step"), data.get("total")
    return CheckpointInfo(
        path=path,
        setup=config.get("setup"),
        complete=bool(data.get("complete", True)),
        step=None if step is None else int(step),
        total=None if total is None else int(total),
        format_version=int(data["format_version"]),
        config=config,
    )


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
    if setup is not None and setup not in SETUPS:  # else "a 'rgbx' one is required"
        raise VqcoreError(f"setup must be one of {SETUPS}, got {setup!r}")
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
