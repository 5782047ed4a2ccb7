"""Run folders: a ``run.json`` marker that says what a folder holds.

A second command never silently overwrites a finished run: the same run (same kind and key
settings) continues only with ``--resume``; a different run, or an unrelated non-empty folder, is
refused; ``--overwrite`` replaces a run this tool wrote (never an unrelated folder). Only the
files the tool writes (:data:`~threedsr_cli.ownership.OWNED`) are replaced; they are moved aside
into ``.overwritten/`` and restored if the new run fails before it has written its first
checkpoint. Files that other commands add to a run folder (eval's ``metrics.json`` /
``metrics.md``) are replaced only while their content is the one this tool recorded in the
folder's :data:`~threedsr_cli.ownership.MANIFEST`: a file the user wrote or edited is never moved
or deleted.

Which names a run owns, and the record of what this tool wrote, are
:mod:`threedsr_cli.ownership`; output groups (metrics, predictions, exports) are written by
:mod:`threedsr_cli.outputs`; the write lock of a folder is :mod:`threedsr_cli.locks`; single files
are written atomically by :mod:`threedsr_cli.atomic`; under torchrun only rank 0 claims a folder
(:mod:`threedsr_cli.distributed`).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from threedsr_cli.atomic import atomic_write_json
from threedsr_cli.distributed import distributed_rank
from threedsr_cli.errors import CLIError, Interrupted
from threedsr_cli.locks import folders_locked
from threedsr_cli.ownership import (
    BACKUP,
    MARKER,
    OWNED,
    RECORDED,
    foreign_file,
    leftover_temporaries,
    prediction_files,
    written_by_tool,
)
from threedsr_cli.settings_diff import describe_settings_diff

__all__ = ["RunFolder", "claim_run", "read_marker"]


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
    """A claimed output folder; :meth:`finish` marks the run finished.

    ``backup`` holds the files of a run that ``--overwrite`` replaces; ``created`` is True when
    the claim made the folder. :meth:`guard` keeps or undoes the claim depending on whether the
    new run got as far as a checkpoint.
    """

    path: Path
    kind: str
    settings: dict[str, Any]
    resumed: bool
    writer: bool = True
    backup: Path | None = None
    created: bool = False
    #: names in the folder at the claim that were not moved aside (files the user wrote): a
    #: rollback never removes them
    kept: frozenset[str] = frozenset()
    #: ``--resume`` of a run that was already finished: nothing to do, nothing to write
    finished: bool = False

    def finish(self, **extra: Any) -> None:
        if not self.writer:
            return
        atomic_write_json(
            self.path / MARKER,
            {"kind": self.kind, "settings": self.settings, "finished": True, **extra},
        )
        self.drop_backup()

    def drop_backup(self) -> None:
        """The new run stands: delete the replaced run's files (only files this tool wrote)."""
        if self.backup is not None and self.backup.exists():
            shutil.rmtree(self.backup)
        self.backup = None

    def rollback(self) -> None:
        """Undo the claim: remove what the new run wrote (tool-owned names only), bring the
        replaced run back, and remove the folder again if the claim created it."""
        if not self.writer or self.resumed:
            return
        for name in OWNED.get(self.kind, (MARKER,)):
            if name not in self.kept:
                _remove(self.path / name)
        if self.backup is not None and self.backup.exists():
            for entry in self.backup.iterdir():
                os.replace(entry, self.path / entry.name)
            self.backup.rmdir()
        self.backup = None
        if self.created:
            try:
                self.path.rmdir()  # only when empty: nothing else is ever deleted
            except OSError:
                pass

    @contextmanager
    def guard(self, checkpoint: Path | Iterable[Path]) -> Iterator[None]:
        """Run the command body; on any failure keep the new run if it has written a
        ``checkpoint`` (it can be resumed), else :meth:`rollback` to the state before."""
        files = [checkpoint] if isinstance(checkpoint, Path) else list(checkpoint)
        try:
            yield
        except BaseException as exc:
            if self.writer:
                if any(Path(f).exists() for f in files):
                    self.drop_backup()
                else:
                    self.rollback()
                    if not self.resumed and isinstance(exc, (KeyboardInterrupt, Interrupted)):
                        # nothing to resume: the message must not send the user to --resume
                        raise Interrupted(None, undone=True) from None
            raise


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _restore_backup(out: Path, marker: dict[str, Any] | None) -> dict[str, Any] | None:
    """A ``.overwritten`` left by a killed ``--overwrite``: when the new run never wrote a
    checkpoint, the replaced run comes back; returns the folder's marker afterwards."""
    backup = out / BACKUP
    if not backup.is_dir():
        return marker
    newer = [p for p in out.iterdir() if p.name not in (MARKER, BACKUP)]
    if newer:  # the new run got as far as a checkpoint: it stands
        return marker
    (out / MARKER).unlink(missing_ok=True)
    for entry in backup.iterdir():
        os.replace(entry, out / entry.name)
    backup.rmdir()
    return read_marker(out)


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
        overwrite: replace a run this tool wrote. Only the names in :data:`OWNED` are moved
            aside (into ``.overwritten/``), and only now, after the caller has validated its
            inputs; :meth:`RunFolder.guard` brings them back if the new run fails early.

    A folder that holds only the marker of a run that never wrote anything (it failed on bad
    input, or was killed at once) counts as empty: a retry with corrected settings may use it.

    Raises:
        CLIError: the folder is a file, holds unrelated files, a different run, or a finished /
            unfinished run and neither ``resume`` nor ``overwrite`` was given.
    """
    out = Path(out)
    if resume and overwrite:
        raise CLIError("--resume and --overwrite exclude each other")
    if distributed_rank() != 0:
        # Under torchrun every rank runs the command; only rank 0 owns the folder (the libraries
        # write checkpoints from rank 0 too). Checking here would see rank 0's fresh marker,
        # except a finished one, which rank 0 leaves as it is.
        old = (read_marker(out) if resume and out.is_dir() else None) or {}
        done = (old.get("kind"), old.get("settings"), old.get("finished")) == (kind, settings, True)
        return RunFolder(out, kind, settings, resume, writer=False, finished=done)
    if out.exists() and not out.is_dir():
        raise CLIError(f"{out}: exists and is not a folder")
    marker = read_marker(out) if out.is_dir() else None
    if out.is_dir():
        # A kill mid-write leaves the write's temporary for good; left, it would count as a
        # file of the run (a plain rerun refused, a replaced run not brought back). The lock
        # held here means no command of this tool is writing them. Without a marker the folder
        # is the tool's only if all it holds is the temporary of its first marker.
        leftovers = leftover_temporaries(out, [] if marker is None else [kind, str(marker["kind"])])
        if marker is not None or len(leftovers) == sum(1 for _ in out.iterdir()):
            for p in leftovers:
                p.unlink()
    if marker is not None:
        marker = _restore_backup(out, marker)
    if (
        marker is not None
        and not marker.get("finished")
        and all(p.name == MARKER for p in out.iterdir())
    ):
        marker = None  # a run that failed before writing anything: not worth protecting
    nonempty = out.is_dir() and any(p.name != MARKER for p in out.iterdir())
    resumed = False
    backup: Path | None = None
    if marker is None:
        if nonempty:
            raise CLIError(
                f"{out}: folder is not empty and holds no threedsr-cli run; choose another --out"
            )
    elif overwrite:
        backup = _move_aside(out, marker)
    else:
        same = marker.get("kind") == kind and marker.get("settings") == settings
        if not same:
            if marker.get("kind") != kind:
                what = f"a {marker.get('kind')!r} run, not a {kind!r} one"
            else:
                diff = describe_settings_diff(marker.get("settings", {}), settings)
                what = f"a different run ({diff})"
            raise CLIError(f"{out}: already holds {what}; use another --out or --overwrite")
        if not resume:
            state = "a finished" if marker.get("finished") else "an unfinished"
            raise CLIError(
                f"{out}: already holds {state} run; pass --resume to continue it or "
                "--overwrite to replace it"
            )
        resumed = True
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CLIError(f"{out}: cannot create the folder ({exc.strerror})") from None
    kept = frozenset(p.name for p in out.iterdir() if p.name not in (MARKER, BACKUP))
    done = resumed and marker is not None and bool(marker.get("finished"))
    run = RunFolder(out, kind, settings, resumed, backup=backup, created=created, kept=kept)
    run.finished = done
    if not done:
        atomic_write_json(out / MARKER, {"kind": kind, "settings": settings, "finished": False})
    return run


def _move_aside(out: Path, marker: dict[str, Any]) -> Path:
    """``--overwrite``: move the old run's own files into ``out/.overwritten``; anything else
    (a user's notes, data, a metrics file written or edited by hand) stays where it is."""
    from threedsr_cli.libs import warn

    kind = str(marker.get("kind"))
    owned = set(OWNED.get(kind, (MARKER,)))
    moving = []
    for entry in sorted(out.iterdir()):
        if entry.name not in owned or entry.name == BACKUP:
            continue
        if entry.name == "predictions" and prediction_files(entry) is None:
            continue  # a predictions folder holding other files: not ours to move
        if entry.name in RECORDED.get(kind, ()) and not written_by_tool(out, entry.name):
            warn(f"{entry}: kept (not written by threedsr-cli, or changed since)")
            continue
        # The new run writes into a folder of the same name, so the old one cannot stay: a file
        # of the user's in it stops the command instead of being deleted with the old run.
        if (mine := foreign_file(kind, entry)) is not None:
            raise CLIError(
                f"{mine}: not written by threedsr-cli, and --overwrite would delete it with "
                f"{entry}; move it away or choose another --out"
            )
        moving.append(entry)
    # A command still writing into a folder of the old run (predict's default <run>/predictions)
    # stops this one, instead of its output landing in the new run or being deleted with the old.
    with folders_locked(moving):
        backup = out / BACKUP
        if backup.exists():
            shutil.rmtree(backup)  # an older replaced run, given up by an earlier --overwrite
        backup.mkdir()
        for entry in moving:
            os.replace(entry, backup / entry.name)
    return backup
