"""Output groups (eval's metrics, predict's overlays and ``scores.json``, export's file and
sidecar), written as one step, and the record of what this tool wrote.

Every file goes to a hidden staging folder first, a journal lists the renames, then they are
renamed into place (:func:`commit_outputs`); a kill at any moment leaves the old files, or a
journal that :func:`recover_outputs` completes (the next command on the folder does it). The same
journal moves files the other way, into a sub-folder (:func:`move_into`: ``--overwrite`` moving a
run aside).

A commit can also record its files, name and SHA-256, in the folder's ``.threedsr-written.json``
(:data:`~threedsr_cli.ownership.MANIFEST`): a later command replaces a file only while its content is
the recorded one, so a file the user wrote, or edited since, is never replaced.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from threedsr_cli.atomic import atomic_write_json, file_sha256
from threedsr_cli.errors import CLIError
from threedsr_cli.ownership import JOURNAL, MANIFEST, STAGING_PREFIX, read_manifest

__all__ = [
    "check_output_folder",
    "commit_outputs",
    "move_into",
    "recover_outputs",
    "staging_folder",
]


def check_output_folder(out: Path) -> Path:
    """Before any work: ``out`` must be a folder or creatable, and writable.

    Nothing is created: a probe file is made in ``out`` (or its nearest existing parent) and
    removed again.

    Raises:
        CLIError: ``out`` is a file, lies under a file, or cannot be written.
    """
    out = Path(out)
    if out.is_symlink() and not out.exists():
        raise CLIError(f"{out}: is a broken symbolic link")
    if out.exists() and not out.is_dir():
        raise CLIError(f"{out}: exists and is not a folder")
    probe_dir = out
    while not probe_dir.exists():
        if probe_dir.is_symlink():
            raise CLIError(f"{out}: cannot create the folder ({probe_dir} is a broken link)")
        probe_dir = probe_dir.parent
    if not probe_dir.is_dir():
        raise CLIError(f"{out}: cannot create the folder ({probe_dir} is a file)")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".threedsr-probe-", dir=probe_dir)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        what = "folder" if probe_dir == out else f"folder (in {probe_dir})"
        raise CLIError(f"{out}: cannot write to the {what}: {exc.strerror}") from None
    return out


def staging_folder(out: Path) -> Path:
    """A fresh hidden folder in ``out`` that marks it incomplete while an output group is
    written (see :func:`commit_outputs`)."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out))
    except OSError as exc:
        raise CLIError(f"{out}: cannot write ({exc.strerror})") from None


def commit_outputs(
    out: Path, staging: Path, remove: Iterable[str] = (), *, record: bool = False
) -> None:
    """Move every file of ``staging`` into ``out`` and delete ``remove`` (names this tool wrote
    before) as one step: the journal is written first, so a kill during the renames is completed
    by :func:`recover_outputs`. ``.json`` files (the summary: ``scores.json``,
    ``metrics.json``, and the record) are renamed last.

    ``record``: also record the new files' SHA-256 in ``out``'s manifest (staged with them, so the
    record changes in the same step as the files).
    """
    out = Path(out)
    remove = set(remove)
    if record:
        files = read_manifest(out)
        for p in staging.iterdir():
            files[p.name] = file_sha256(p)
        for name in remove - {p.name for p in staging.iterdir()}:
            files.pop(name, None)
        atomic_write_json(staging / MANIFEST, {"kind": "threedsr.written", "files": files})
    names = sorted(p.name for p in staging.iterdir())
    names.sort(key=lambda n: n.endswith(".json"))  # the summary last
    journal = {
        "staging": staging.name,
        "files": names,
        "remove": sorted(set(remove) - set(names)),
    }
    atomic_write_json(out / JOURNAL, journal)
    recover_outputs(out)


def move_into(out: Path, names: Iterable[str], into: str) -> None:
    """Move ``names`` of ``out`` into its sub-folder ``into`` (made if missing) as one step,
    journaled as :func:`commit_outputs` is: a kill during the renames is completed by
    :func:`recover_outputs`, so the files never stay split between the two folders."""
    journal = {"staging": ".", "into": into, "files": sorted(names), "remove": []}
    atomic_write_json(Path(out) / JOURNAL, journal)
    recover_outputs(out)


def _journal_folder(out: Path, name: object) -> Path:
    """``out`` itself (``.``) or one of its sub-folders; any other path makes the journal bad."""
    name = str(name)
    if name != "." and (name in ("", "..") or "/" in name or "\\" in name):
        raise ValueError(f"not a folder of {out}: {name!r}")
    return out / name


def recover_outputs(out: Path) -> bool:
    """Finish an output commit that a kill interrupted (idempotent); remove staging folders
    without a journal (an output group that never got as far as its commit). True when a
    journal was completed."""
    out = Path(out)
    if not out.is_dir():
        return False
    journal_path = out / JOURNAL
    done = False
    if journal_path.is_file():
        try:
            journal = json.loads(journal_path.read_text(encoding="utf-8"))
            staging = _journal_folder(out, journal["staging"])
            into = _journal_folder(out, journal.get("into", "."))
            files, remove = list(journal["files"]), list(journal["remove"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CLIError(f"{journal_path}: unreadable output journal ({exc})") from None
        into.mkdir(exist_ok=True)
        for name in files:
            if (staging / name).exists() or (staging / name).is_symlink():
                os.replace(staging / name, into / name)
        for name in remove:
            (out / Path(name).name).unlink(missing_ok=True)
        if staging != out and staging.is_dir():  # a staging folder, never ``out`` itself
            shutil.rmtree(staging)
        journal_path.unlink()
        done = True
    for p in out.iterdir():
        if p.name.startswith(STAGING_PREFIX) and p.is_dir():
            shutil.rmtree(p)
    return done
