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
:mod:`threedsr_cli.ownership`; the moves into and out of ``.overwritten/`` (journaled: a kill
never leaves the run split) are :mod:`threedsr_cli.overwrite`; output groups (metrics,
predictions, exports) are written by :mod:`threedsr_cli.outputs`; the write lock of a folder is :mod:`threedsr_cli.locks`; single files
are written atomically by :mod:`threedsr_cli.atomic`; under torchrun only rank 0 claims a folder
(:mod:`threedsr_cli.distributed`).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from threedsr_cli.atomic import atomic_write_json
from threedsr_cli.distributed import distributed_rank
from threedsr_cli.errors import CLIError, Interrupted
from threedsr_cli.overwrite import move_aside, recover, remove_entry, restore_backup
from threedsr_cli.ownership import BACKUP, MARKER, OWNED, read_marker
from threedsr_cli.settings_diff import describe_settings_diff

__all__ = ["RunFolder", "claim_run", "read_marker"]


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
                remove_entry(self.path / name)
        if self.backup is not None and self.backup.exists():
            restore_backup(self.path)
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
    marker = recover(out, [kind]) if out.is_dir() else None
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
        backup = move_aside(out, marker)
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
        # What the claim kept, so that a next command undoing a killed --overwrite (recover)
        # removes only what the new run wrote.
        record = {"kept": sorted(kept)} if backup is not None else {}
        atomic_write_json(
            out / MARKER, {"kind": kind, "settings": settings, "finished": False, **record}
        )
    return run
