"""``threedsr-cli export``: a run's whole inference map as one ONNX or TorchScript file."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any

from threedsr_cli.errors import CLIError
from threedsr_cli.locks import folder_lock
from threedsr_cli.options import parse_threshold
from threedsr_cli.outputs import (
    check_output_folder,
    commit_outputs,
    recover_outputs,
    staging_folder,
)
from threedsr_cli.overwrite import recover_run
from threedsr_cli.ownership import BACKUP, JOURNAL, MANIFEST, MARKER, OWNED
from threedsr_cli.runs import read_marker
from threedsr_cli.ui import UI

__all__ = ["EXPORTED_FILE", "check_export_target", "export_command"]

#: What ``predict --backend onnxruntime --run FOLDER`` looks for in a run folder.
EXPORTED_FILE = "detector.onnx"


def _run_owned(folder: Path) -> set[str]:
    """The names the run in ``folder`` owns (none when it holds no run)."""
    try:
        marker = read_marker(folder)
    except CLIError:  # an unreadable marker: still the run's
        marker = {"kind": None}
    if marker is None:
        return set()
    owned = set(OWNED.get(str(marker.get("kind")), ()))
    return owned | {MARKER, BACKUP, JOURNAL, MANIFEST, "detector.pt"}


def _is_earlier_export(out: Path) -> bool:
    """``out`` is a file this tool exported, unchanged: its sidecar is an export sidecar whose
    size and SHA-256 are the file's (or, the file gone, the sidecar alone is one)."""
    from threedsr import ThreedsrError
    from threedsr.export_sidecar import EXPORT_KIND, read_sidecar, sidecar_path

    sidecar = sidecar_path(out)
    if out.is_symlink() or sidecar.is_symlink():
        return False
    if out.exists():
        try:
            read_sidecar(out)
        except ThreedsrError:
            return False
        return True
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("kind") == EXPORT_KIND


def _sidecar_edited(sidecar: Path) -> bool:
    from threedsr.export_sidecar import sidecar_edited

    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False  # unreadable or absent: _is_earlier_export decides
    return isinstance(meta, dict) and sidecar_edited(meta)


def check_export_target(out: Path, source: Path, overwrite: bool) -> None:
    """``out`` and its sidecar ``out.json`` may be written: neither is a file the run owns (or
    the detector being exported), and an existing one is an earlier export replaced only with
    ``overwrite``.

    Raises:
        CLIError: one line naming the file (nothing is written).
    """
    from threedsr.export_sidecar import sidecar_path

    sidecar = sidecar_path(out)
    if out.is_dir():
        raise CLIError(f"{out}: is a folder; give the file to write (--out FILE)")
    owned = _run_owned(out.parent)
    for path in (out, sidecar):
        if path.name in owned or (path.exists() and path.resolve() == source.resolve()):
            raise CLIError(
                f"{path}: belongs to the run in {out.parent}; export never replaces a run's own "
                "files: choose another --out"
            )
    existing = [p for p in (out, sidecar) if p.exists() or p.is_symlink()]
    if not existing:
        return
    if not overwrite:
        raise CLIError(
            f"{existing[0]}: exists; pass --overwrite to replace an earlier export, or choose "
            "another --out"
        )
    if _sidecar_edited(sidecar):
        raise CLIError(
            f"{sidecar}: edited since it was exported (a field is not the one recorded); "
            "--overwrite never replaces a file changed by hand: move it away or choose another "
            "--out"
        )
    if not _is_earlier_export(out):
        raise CLIError(
            f"{existing[0]}: not an export written by threedsr-cli (or changed since: its "
            f"sidecar {sidecar.name} does not match); --overwrite replaces only those: choose "
            "another --out"
        )


def export_command(
    *,
    run: Path,
    fmt: str,
    out: Path | None,
    size: int | None,
    dynamic_batch: bool,
    threshold: str | None,
    method: str | None,
    ui: UI,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Load the run on the CPU in fp32 and write ``out`` plus its ``out.json`` sidecar, as one
    step (a kill leaves the earlier export, or a journal the next command completes)."""
    thr = parse_threshold(threshold)
    folder = Path(run) if Path(run).is_dir() else Path(run).parent
    # before the lock below, which may be the run folder's own
    recover_run(folder)
    if out is None:
        out = folder / {"onnx": EXPORTED_FILE, "pt2": "detector.pt2"}.get(
            fmt, "detector.torchscript.pt"
        )
    out = Path(out)
    source = Path(run) / "detector.pt" if Path(run).is_dir() else Path(run)
    if out.is_dir():
        raise CLIError(f"{out}: is a folder; give the file to write (--out FILE)")
    # Made as eval and predict make theirs (by the lock, which removes it again on a failure).
    check_output_folder(out.parent)
    # One writer per folder: a train --overwrite or another export into it waits.
    with folder_lock(out.parent):
        recover_outputs(out.parent)
        check_export_target(out, source, overwrite)
        return _export(run, fmt, out, size, dynamic_batch, thr, method, ui)


def _export(
    run: Path,
    fmt: str,
    out: Path,
    size: int | None,
    dynamic_batch: bool,
    threshold: float | str | None,
    method: str | None,
    ui: UI,
) -> dict[str, Any]:
    import threedsr
    from rich.markup import escape

    from threedsr_cli.commands.predict_outputs import training_data
    from threedsr_cli.libs import load_detector, warn_unfinished
    from threedsr_cli.path_checks import check_outside_data

    detector = load_detector(run, "cpu", "fp32", method, command="export")
    # The dataset is only read, by every command: a model written beside the scans would sit in
    # the user's data (and in the next listing of a flat own-scan folder).
    root = training_data(detector)
    if root is not None and (root.is_absolute() or root.exists()):
        check_outside_data(out.parent, root, "--out")
    warn_unfinished(detector)  # a half-trained model, and no calibrated threshold to record
    if size is not None and size != detector.size:
        raise CLIError(
            f"--size {size}: not the detector's {detector.size} px (its descriptor scales and "
            "codes hold only at the size it was made at); drop --size"
        )
    # 'auto' is the default: the threshold the detector calibrated when it was made
    given = threshold if isinstance(threshold, float) else None
    staging = staging_folder(out.parent)
    try:
        with (
            ui.stage(f"export {fmt}", 1) as progress,
            warnings.catch_warnings(record=True) as caught,
        ):
            warnings.simplefilter("always", FutureWarning)
            meta = threedsr.export_detector(
                detector,
                staging / out.name,
                fmt=fmt,
                size=size,
                dynamic_batch=dynamic_batch,
                threshold=given,
            )
            progress(1, 1)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    # the file, then its sidecar (the .json goes last): a kill leaves both old, or a journal
    commit_outputs(out.parent, staging)
    for w in caught:
        # torch's deprecation of the TorchScript the export used: a note, not a "warning:" line
        # (the file is fine today), hidden by --quiet
        text = str(w.message)
        if text.startswith("threedsr export: "):
            text = text.removeprefix("threedsr export: ").replace("fmt='pt2'", "--format pt2")
            ui.info(escape("note: " + text))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    branches = (
        "heads"
        if meta["memory"] is None
        else (
            f"{meta['memory']['kind']} memory at weight {meta['memory']['weight']:g}"
            + (
                " + heads"
                if meta["memory"]["heads"]
                else " (the heads get weight 0: not in the graph)"
            )
        )
    )
    batch = "any batch" if dynamic_batch else "batch 1"
    ui.out.print(
        escape(
            f"{meta['setup']} detector, input {meta['input']['shape']} {''.join(meta['channels'])}, "
            f"{batch}, map = {branches}"
        )
    )
    ui.info(f"wrote {out} ({meta['bytes']} bytes, method {meta['method']}) and {out.name}.json")
    return meta
