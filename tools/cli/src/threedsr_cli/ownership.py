"""What this tool wrote in a folder: the names each kind of run owns, and the record
(:data:`MANIFEST`) that tells a file this tool wrote from one the user wrote or edited.

``--overwrite`` (:mod:`threedsr_cli.runs`) replaces only the names in :data:`OWNED`; of those,
files that other commands add to a run folder (eval's ``metrics.json`` / ``metrics.md``,
:data:`RECORDED`) only while their content is the one recorded in :data:`MANIFEST`, which
:mod:`threedsr_cli.outputs` writes.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from threedsr_cli.atomic import file_sha256
from threedsr_cli.errors import CLIError

__all__ = [
    "BACKUP",
    "CHECKPOINTS",
    "JOURNAL",
    "MANIFEST",
    "MARKER",
    "OWNED",
    "RECORDED",
    "STAGING_PREFIX",
    "check_written",
    "foreign_file",
    "has_checkpoint",
    "leftover_temporaries",
    "prediction_files",
    "read_manifest",
    "read_marker",
    "temporaries_of",
    "written_by_tool",
]

MARKER = "run.json"
#: where ``--overwrite`` keeps the replaced run's files until the new run has a checkpoint
BACKUP = ".overwritten"
#: the rename list of an output group being committed (see :func:`commit_outputs`)
JOURNAL = ".threedsr-commit.json"
#: prefix of the hidden folder an output group is staged in (it marks the folder incomplete)
STAGING_PREFIX = ".incomplete-"
#: the record of the files this tool wrote into a folder: name -> SHA-256 (see outputs.py)
MANIFEST = ".threedsr-written.json"

#: top-level names each kind of run writes: the only ones ``--overwrite`` replaces
OWNED: dict[str, tuple[str, ...]] = {
    "train": (
        MARKER,
        "detector.pt",
        "train_state.pt",
        "train_history.json",
        "metrics.json",
        "metrics.md",
        "predictions",
        MANIFEST,
    ),
    "train-dada": (MARKER, "backbone.pt"),
    "demo": (
        MARKER,
        "data",
        "dada-rgbd",
        "backbone-rgb",
        "detector-rgbd",
        "detector-rgb",
        "metrics.json",
        "report.md",
        "report.html",
        "roc.png",
        "pro.png",
        "per_defect_type.png",
        "overlays",
    ),
}


#: names of :data:`OWNED` that another command (eval) writes into the run folder: ``--overwrite``
#: moves them only while :func:`written_by_tool` says their content is the recorded one
RECORDED: dict[str, frozenset[str]] = {"train": frozenset({"metrics.json", "metrics.md"})}


#: what a run of each kind writes as a checkpoint (any one resumes it): the sign that a run
#: replaced by ``--overwrite`` is gone for good
CHECKPOINTS: dict[str, tuple[str, ...]] = {
    "train": ("detector.pt", "train_state.pt"),
    "train-dada": ("backbone.pt",),
}


def has_checkpoint(folder: Path, kind: str) -> bool:
    """True when the ``kind`` run in ``folder`` has written a checkpoint (a demo: one of its runs
    has)."""
    if kind == "demo":
        names = [f"{sub}/{n}" for sub, k in _SUBRUNS.items() for n in CHECKPOINTS[k]]
    else:
        names = list(CHECKPOINTS.get(kind, ()))
    return any((Path(folder) / n).is_file() for n in names)


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


def read_manifest(folder: Path) -> dict[str, str]:
    """The files this tool recorded in ``folder`` (name -> SHA-256); {} when there is no record
    or it cannot be read (then nothing counts as the tool's: nothing is replaced)."""
    try:
        data = json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))
        files = data["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    if not isinstance(files, dict):
        return {}
    return {str(k): str(v) for k, v in files.items()}


def written_by_tool(folder: Path, name: str) -> bool:
    """True when ``folder/name`` is a plain file whose content is the one this tool recorded."""
    path = Path(folder) / name
    recorded = read_manifest(folder).get(name)
    if recorded is None or path.is_symlink() or not path.is_file():
        return False
    try:
        return file_sha256(path) == recorded
    except OSError:
        return False


def check_written(folder: Path, names: Iterable[str]) -> None:
    """Each of ``names`` that exists in ``folder`` must be a file this tool wrote, unchanged.

    Raises:
        CLIError: one was written by hand, or edited since (names the file; nothing replaced).
    """
    for name in names:
        path = Path(folder) / name
        if (path.exists() or path.is_symlink()) and not written_by_tool(folder, name):
            raise CLIError(
                f"{path}: not written by threedsr-cli, or changed since (its content is not the "
                f"one recorded in {MANIFEST}); it is never replaced: move it away or choose "
                "another --out"
            )


def prediction_files(folder: Path) -> set[str] | None:
    """The names ``predict`` wrote into ``folder`` (its ``scores.json`` lists them), or None
    when the folder holds anything else."""
    names = {"scores.json", JOURNAL}
    scores = folder / "scores.json"
    if scores.is_file():
        try:
            data = json.loads(scores.read_text(encoding="utf-8"))
            for s in data.get("samples", []):
                names.update(
                    str(s.get(k)) for k in ("overlay", "map", "map_tiff", "map_ply") if s.get(k)
                )
        except (OSError, ValueError, AttributeError):
            return None
    present = {p.name for p in folder.iterdir() if not p.name.startswith(STAGING_PREFIX)}
    return present if present <= names else None


#: the demo's folders that hold runs of another kind (their files: that kind's :data:`OWNED`)
_SUBRUNS = {
    "dada-rgbd": "train-dada",
    "backbone-rgb": "train-dada",
    "detector-rgbd": "train",
    "detector-rgb": "train",
}


@functools.cache
def _demo_trees() -> dict[str, tuple[re.Pattern[str], re.Pattern[str]]]:
    """What the demo writes into its other folders: (files, folders) as paths relative to the
    folder; an empty folder elsewhere is the user's too."""
    from depthsim.scenes import CLASSES  # lazily: only an --overwrite of a demo needs it

    c = "(" + "|".join(re.escape(name) for name in CLASSES) + ")"
    return {
        # depthsim.scenes.generate_dataset's layout
        "data": (
            re.compile(
                rf"scenes\.json|{c}/class_ids\.json"
                rf"|{c}/(train|validation|test)/[^/]+/(xyz|rgb|gt)/\d+\.(tiff|png)"
            ),
            re.compile(rf"{c}(/(train|validation|test)(/[^/]+(/(xyz|rgb|gt))?)?)?"),
        ),
        # <defect type>_<index>.png, no folders
        "overlays": (re.compile(r"[^/]+_\d+\.png"), re.compile(r"(?!)")),
    }


#: the temporary name of an atomic write that a kill cut short: ``.<stem>-<8 chars><suffix>``
_TEMPORARY = re.compile(r"\.(?P<stem>.+)-[a-z0-9_]{8}(?P<suffix>\.[^.]+)")


def _untemporary(name: str) -> str:
    """The file an atomic write's temporary name stands for (``.detector-ab12cd34.pt`` ->
    ``detector.pt``), else ``name``."""
    m = _TEMPORARY.fullmatch(name)
    return m["stem"] + m["suffix"] if m else name


def leftover_temporaries(folder: Path, kinds: Iterable[str]) -> list[Path]:
    """The temporaries of atomic writes that a kill cut short (``.detector-ab12cd34.pt``) in a
    run folder that ``kinds`` of run write (none: only ``run.json``'s and the journal's), and in
    a demo's run folders.

    Only plain files named as the temporary of a file one of ``kinds`` owns: never the user's
    files, nor other commands' outputs.
    """
    folder = Path(folder)
    kinds = list(kinds)
    # the journal of a move or an output commit is the tool's in any folder it writes
    places = [(folder, {MARKER, JOURNAL, *(n for k in kinds for n in OWNED.get(k, ()))})]
    if "demo" in kinds:
        places += [(folder / sub, set(OWNED[k])) for sub, k in _SUBRUNS.items()]
    return [p for place, names in places for p in temporaries_of(place, names)]


def temporaries_of(folder: Path, names: Iterable[str]) -> list[Path]:
    """The plain files in ``folder`` named as the temporary of an atomic write of one of
    ``names`` (``.detector-ab12cd34.pt`` for ``detector.pt``)."""
    folder, names = Path(folder), set(names)
    if folder.is_symlink() or not folder.is_dir():
        return []
    found = []
    for p in sorted(folder.iterdir()):
        name = _untemporary(p.name)
        if name != p.name and name in names and p.is_file() and not p.is_symlink():
            found.append(p)
    return found


def foreign_file(kind: str, folder: Path) -> Path | None:
    """A file inside ``folder``, a folder that a ``kind`` run writes, that this tool did not write
    (the user's), or None. ``--overwrite`` moves such a folder away and deletes it, so it must not
    hold anything of the user's."""
    folder = Path(folder)
    if kind != "demo" or folder.is_symlink() or not folder.is_dir():
        return None
    sub = _SUBRUNS.get(folder.name)
    if sub is not None:
        for p in sorted(folder.iterdir()):
            name = _untemporary(p.name)
            if name == JOURNAL or name.startswith(STAGING_PREFIX):
                continue  # an output group that a kill cut short
            if name not in OWNED[sub]:
                return p
            if name == "predictions" and p.is_dir() and prediction_files(p) is None:
                return p
            if (
                name == p.name
                and name in RECORDED.get(sub, ())
                and not written_by_tool(folder, name)
            ):
                return p
        return None
    if folder.name not in ("data", "overlays"):
        return None
    files, folders = _demo_trees()[folder.name]
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if p.is_dir() and not p.is_symlink():
            if not folders.fullmatch(rel.as_posix()):
                return p  # a folder of the user's, files in it or not
        elif p.is_symlink() or not files.fullmatch((rel.parent / _untemporary(p.name)).as_posix()):
            return p
    return None
