"""Content-addressed, atomically written cache of `Prepared` results (``.npz`` files)."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from pcprep.errors import PcprepError
from pcprep.records import Prepared

__all__ = ["cache_key", "load_prepared", "save_prepared"]

_CHUNK = 1 << 20


def cache_key(files: Iterable[Path], params: Mapping[str, object], version: str) -> str:
    """Hash of the files' contents, the parameters and the package version (hex, 32 chars).

    Examples:
        >>> cache_key([], {"size": 384}, "0.1.0") != cache_key([], {"size": 256}, "0.1.0")
        True
    """
    h = hashlib.blake2b(digest_size=16)
    h.update(
        json.dumps(
            {"params": dict(params), "version": version}, sort_keys=True, default=str
        ).encode()
    )
    for path in files:
        h.update(Path(path).name.encode() + b"\0")
        try:
            with open(path, "rb") as fh:
                while chunk := fh.read(_CHUNK):
                    h.update(chunk)
        except OSError as exc:
            raise PcprepError.at(path, f"cannot read for hashing ({exc.strerror or exc})") from None
        h.update(b"\1")
    return h.hexdigest()


def save_prepared(path: Path, prep: Prepared) -> None:
    """Write ``prep`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {
        "depth": prep.depth,
        "rgb": prep.rgb,
        "valid": prep.valid,
        "foreground": prep.foreground,
        "native_shape": np.asarray(prep.native_shape, dtype=np.int64),
        "label": np.asarray(prep.label, dtype=np.int64),
        "plane": np.asarray(prep.plane, dtype=np.float64),
        "defect_type": np.asarray(prep.defect_type),
        "path": np.asarray("" if prep.path is None else str(prep.path)),
        "colour": np.asarray(bool(prep.colour)),
    }
    if prep.gt is not None:
        arrays["gt"] = prep.gt
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())  # durable before the rename (as vqcore.atomic_write)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; like open(): the umask's mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_prepared(path: Path) -> Prepared | None:
    """Read a cached result; ``None`` when missing or unreadable (the caller recomputes)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return Prepared(
                depth=z["depth"],
                rgb=z["rgb"],
                valid=z["valid"],
                foreground=z["foreground"],
                gt=z["gt"] if "gt" in z.files else None,
                native_shape=tuple(int(v) for v in z["native_shape"]),  # type: ignore[arg-type]
                path=Path(str(z["path"])) if str(z["path"]) else None,
                label=int(z["label"]),
                defect_type=str(z["defect_type"]),
                plane=z["plane"],
                # Entries written before the field all came from scans with colour.
                colour=bool(z["colour"]) if "colour" in z.files else True,
            )
    except (OSError, KeyError, ValueError, EOFError):
        return None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
