"""Atomic file writes for the CLI: a file the user asked for is either the old one or the new
one, never half written, and a failed write is reported on that file, not on a temporary name.

The writing itself is :func:`vqcore.atomic_write` (imported lazily: ``--help`` and the light
commands do not load torch); :func:`file_sha256` is how run folders recognise the files this tool
wrote (:data:`threedsr_cli.ownership.MANIFEST`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from threedsr_cli.errors import CLIError

__all__ = [
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "atomic_write_with",
    "file_sha256",
]


def _write_error(path: Path, exc: OSError) -> CLIError:
    """An OSError of a temporary file, reported on the file the user asked for."""
    return CLIError(f"{path}: cannot write ({exc.strerror or type(exc).__name__})")


def atomic_write_with(path: Path, write: Callable[[Path], None]) -> Path:
    """:func:`vqcore.atomic_write` (temporary name in ``path``'s folder, fsync, ``os.replace``,
    the umask's mode) whose ``OSError`` names ``path``, never the temporary file."""
    import vqcore  # lazily: --help and the light commands do not load torch

    try:
        return vqcore.atomic_write(path, write)
    except OSError as exc:
        raise _write_error(path, exc) from None


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    return atomic_write_with(path, lambda p: p.write_bytes(data))


def atomic_write_text(path: Path, text: str) -> Path:
    """Write text atomically.

    Example:
        >>> import tempfile, pathlib
        >>> p = atomic_write_text(pathlib.Path(tempfile.mkdtemp()) / "a.txt", "hi")
        >>> p.read_text()
        'hi'
    """
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> Path:
    return atomic_write_text(
        path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n"
    )


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, hex."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
