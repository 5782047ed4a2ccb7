"""Run folders: a ``run.json`` marker that says what a folder holds, and atomic file writes.

A second command never silently overwrites a finished run: the same run (same kind and key
settings) continues only with ``--resume``; a different run, or an unrelated non-empty folder, is
refused; ``--overwrite`` replaces a run this tool wrote (never an unrelated folder).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from threedsr_cli.errors import CLIError

__all__ = [
    "MARKER",
    "RunFolder",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "atomic_write_with",
    "claim_run",
    "distributed_rank",
    "read_marker",
]

MARKER = "run.json"


def atomic_write_with(path: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary name in ``path``'s folder, then ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.stem}-", suffix=path.suffix or ".tmp", dir=path.parent
    )
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


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


def read_marker(folder: Path) -> dict[str, Any] | None:
    """The folder's ``run.json`` or None; a corrupt marker is bad input."""
    path = Path(folder) / MARKER
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CLIError(f"{path}: unreadable run marker ({exc})") from None
    if not isinstance(data, dict) or "kind" not in data:
        raise CLIError(f"{path}: not a threedsr-cli run marker")
    return data


@dataclass
class RunFolder:
    """A claimed output folder; :meth:`finish` marks the run finished."""

    path: Path
    kind: str
    settings: dict[str, Any]
    resumed: bool
    writer: bool = True

    def finish(self, **extra: Any) -> None:
        if not self.writer:
            return
        atomic_write_json(
            self.path / MARKER,
            {"kind": self.kind, "settings": self.settings, "finished": True, **extra},
        )


def distributed_rank() -> int:
    """This process's global rank under torchrun (0 when not distributed)."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def _describe_diff(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return ", ".join(f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in keys)


def claim_run(
    out: Path,
    kind: str,
    settings: dict[str, Any],
    *,
    resume: bool,
    overwrite: bool,
) -> RunFolder:
    """Check that ``out`` may receive this run, then mark it (unfinished).

    Args:
        out: the output folder.
        kind: what writes it (``train``, ``train-dada``, ``demo``).
        settings: the settings that identify the run (JSON-able); a different value is a
            different run.
        resume: continue an unfinished (or finished: no-op) run with the same settings.
        overwrite: replace a run this tool wrote.

    Raises:
        CLIError: the folder is a file, holds unrelated files, a different run, or a finished /
            unfinished run and neither ``resume`` nor ``overwrite`` was given.
    """
    out = Path(out)
    if resume and overwrite:
        raise CLIError("--resume and --overwrite exclude each other")
    if distributed_rank() != 0:
        # Under torchrun every rank runs the command; only rank 0 owns the folder (the libraries
        # write checkpoints from rank 0 too). Checking here would see rank 0's fresh marker.
        return RunFolder(out, kind, settings, resumed=resume, writer=False)
    if out.exists() and not out.is_dir():
        raise CLIError(f"{out}: exists and is not a folder")
    marker = read_marker(out) if out.is_dir() else None
    nonempty = out.is_dir() and any(p.name != MARKER for p in out.iterdir())
    resumed = False
    if marker is None:
        if nonempty:
            raise CLIError(
                f"{out}: folder is not empty and holds no threedsr-cli run; choose another --out"
            )
    elif overwrite:
        shutil.rmtree(out)
    else:
        same = marker.get("kind") == kind and marker.get("settings") == settings
        if not same:
            if marker.get("kind") != kind:
                what = f"a {marker.get('kind')!r} run, not a {kind!r} one"
            else:
                what = f"a different run ({_describe_diff(marker.get('settings', {}), settings)})"
            raise CLIError(f"{out}: already holds {what}; use another --out or --overwrite")
        if not resume:
            state = "finished" if marker.get("finished") else "unfinished"
            raise CLIError(
                f"{out}: already holds a {state} run; pass --resume to continue it or "
                "--overwrite to replace it"
            )
        resumed = True
    out.mkdir(parents=True, exist_ok=True)
    if not (resumed and marker is not None and marker.get("finished")):
        atomic_write_json(out / MARKER, {"kind": kind, "settings": settings, "finished": False})
    return RunFolder(out, kind, settings, resumed)
