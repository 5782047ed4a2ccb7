"""``--overwrite``'s two moves of a run folder: the replaced run's files into ``.overwritten/``
(:data:`~threedsr_cli.ownership.BACKUP`), and back when the new run is undone or killed before its
first checkpoint.

Both moves are output commits of :mod:`threedsr_cli.outputs` (journal first, then the renames), so
a kill in the middle never leaves the run split between the folder and ``.overwritten/``: the
next command on the folder completes the move (:func:`recover_run`) and then brings the replaced
run back, as after any killed ``--overwrite``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from threedsr_cli.errors import CLIError
from threedsr_cli.locks import folder_lock, folders_locked, lock_holder
from threedsr_cli.outputs import commit_outputs, move_into, recover_outputs
from threedsr_cli.ownership import (
    BACKUP,
    JOURNAL,
    MARKER,
    OWNED,
    RECORDED,
    foreign_file,
    has_checkpoint,
    leftover_temporaries,
    prediction_files,
    read_marker,
    written_by_tool,
)

__all__ = ["move_aside", "recover_run", "remove_entry", "restore_backup"]


def move_aside(out: Path, marker: dict[str, Any]) -> Path:
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
        move_into(out, [p.name for p in moving], BACKUP)
    return backup


def restore_backup(out: Path) -> None:
    """Bring the replaced run in ``.overwritten`` back into ``out`` (its marker replaces the new
    run's, last); ``.overwritten`` is removed."""
    commit_outputs(out, out / BACKUP)


def recover(out: Path, kinds: list[str]) -> dict[str, Any] | None:
    """Put right what a killed command left in ``out`` (under its lock); returns the folder's
    marker afterwards.

    An interrupted move (journal) is completed; the temporaries of atomic writes that a kill cut
    short are removed; a run that ``--overwrite`` moved aside comes back when the new run never
    wrote a checkpoint, and is deleted when it did. ``kinds``: the run kinds whose temporaries
    count besides the folder's own.
    """
    if (out / JOURNAL).is_file():
        recover_outputs(out)
    marker = read_marker(out)
    # Killed after the move aside, before the new marker: the run is all in .overwritten.
    aside = read_marker(out / BACKUP) if marker is None and (out / BACKUP).is_dir() else None
    ours = [str(m["kind"]) for m in (marker, aside) if m is not None]
    # A kill mid-write leaves the write's temporary for good; left, it would count as a file of
    # the run (a plain rerun refused, a replaced run not brought back). The lock held here means
    # no command of this tool is writing them. Without a marker the folder is the tool's only if
    # all it holds is the temporary of its first marker.
    leftovers = leftover_temporaries(out, [*kinds, *ours] if ours else [])
    if ours or len(leftovers) == sum(1 for _ in out.iterdir()):
        for p in leftovers:
            p.unlink()
    if not ours or not (out / BACKUP).is_dir():
        return marker
    if marker is not None:
        kind = str(marker["kind"])
        if has_checkpoint(out, kind):
            # The new run got as far as a checkpoint: it stands, and the replaced run is given
            # up as finish() would have (killed before or while it dropped it). A resumed run
            # holds no backup to drop, so left here it would stay for good.
            remove_entry(out / BACKUP)
            return marker
        # What the new run wrote before it goes (a folder of the same name would block the
        # replaced one's return); the names the claim kept, the user's, stay. A marker without
        # the record (an older claim): only the names that came from the replaced run go.
        moved = {p.name for p in (out / BACKUP).iterdir()}
        kept = marker.get("kept") if isinstance(marker.get("kept"), list) else None
        for name in OWNED.get(kind, (MARKER,)):
            if name != MARKER and (name in moved if kept is None else name not in kept):
                remove_entry(out / name)
    restore_backup(out)
    return read_marker(out)


def remove_entry(path: Path) -> None:
    """Delete a file or a folder of this tool's (a link: the link only)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def recover_run(folder: Path) -> None:
    """Before eval, predict or export read the run in ``folder``: what a killed ``--overwrite``
    left is put right as the next ``train`` would (:func:`recover`), so they read the replaced
    run, whole. A folder another command is writing is left alone."""
    folder = Path(folder)
    if not ((folder / JOURNAL).is_file() or (folder / BACKUP).is_dir()):
        return
    if lock_holder(folder) is not None:
        return
    with folder_lock(folder):
        recover(folder, [])
