"""``threedsr-cli predict``: anomaly maps, overlays and scores for new scans."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from threedsr_cli.atomic import atomic_write_json
from threedsr_cli.errors import CLIError, is_bad_input, one_line
from threedsr_cli.inputs import InputItem, printable, resolve_inputs
from threedsr_cli.locks import folder_lock
from threedsr_cli.options import check_outside_data, parse_threshold
from threedsr_cli.outputs import (
    check_output_folder,
    commit_outputs,
    recover_outputs,
    staging_folder,
)
from threedsr_cli.ownership import STAGING_PREFIX, prediction_files
from threedsr_cli.ui import UI

if TYPE_CHECKING:
    from pcprep import Prepared
    from threedsr import Detector, OnnxDetector, SamplePrediction

    from threedsr_cli.overlays import MapScale

__all__ = [
    "auto_threshold",
    "check_prediction_target",
    "dataset_roots",
    "parse_threshold",
    "predict_command",
]

#: split folder names of the dataset layouts (MVTec 3D-AD, Eyecandies): <root>/<class>/<split>
_SPLITS = ("train", "validation", "val", "test", "test_public", "test_private")


def check_prediction_target(out: Path, overwrite: bool) -> set[str]:
    """What ``out`` holds before predict writes there: the names of an earlier prediction to
    replace (``--overwrite``), or nothing.

    Raises:
        CLIError: ``out`` holds an earlier prediction and ``overwrite`` is off, or files this tool
            did not write (never replaced, not even with ``--overwrite``).
    """
    out = Path(out)
    if not out.is_dir():
        return set()
    entries = [p for p in out.iterdir() if not p.name.startswith(STAGING_PREFIX)]
    if not entries:
        return set()
    names = prediction_files(out)
    if names is None:
        raise CLIError(
            f"{out}: folder is not empty and holds no threedsr-cli predictions; choose another "
            "--out"
        )
    if not overwrite:
        try:
            old = json.loads((out / "scores.json").read_text(encoding="utf-8")).get("run")
        except (OSError, ValueError, AttributeError):
            old = None
        whose = f" of {old}" if old else ""
        raise CLIError(
            f"{out}: already holds predictions{whose}; pass --overwrite to replace them or "
            "choose another --out"
        )
    return names


def _dataset_root(split: Path) -> Path | None:
    """``<root>`` when ``split`` is ``<root>/<class>/<split>`` of an MVTec 3D-AD or Eyecandies
    dataset (pcprep's layouts), else None."""
    import pcprep

    root = split.parent.parent
    try:
        if pcprep.detect_layout(root) == "generic":
            return None
        return root if split.parent.name in pcprep.list_categories(root) else None
    except Exception:  # an unreadable folder is no dataset to protect
        return None


def dataset_roots(paths: list[Path]) -> list[Path]:
    """The MVTec 3D-AD / Eyecandies dataset roots that predict's inputs lie in (the inputs'
    ``<root>/<class>/<split>/...``).

    Example:
        >>> dataset_roots([Path("/nonexistent/bagel/test/crack/xyz/000.tiff")])
        []
    """
    roots: list[Path] = []
    for p in paths:
        for a in Path(p).absolute().parents:
            if a.name in _SPLITS and a.parent != a.parent.parent:
                root = _dataset_root(a)
                if root is not None:
                    roots.append(root)
                    break
    return roots


def auto_threshold(
    ui: UI,
    detector: Detector | OnnxDetector,
    run: Path,
    data: Path | None,
    category: str | None,
) -> tuple[float, str]:
    """The largest image score over the good validation samples (none of them flagged)."""
    import pcprep
    import threedsr

    from threedsr_cli.commands.pack import open_pack

    root = data if data is not None else _training_data(detector)
    cat = category or detector.category
    if root is None or cat is None:
        raise CLIError(f"{run}: --threshold auto needs validation data; pass --data ROOT")
    root = Path(root)
    pack = open_pack(root)
    if pack is not None:
        pack.check(cat, detector.preprocess)
        with ui.stage("validation scores") as progress:
            good = [p for p in pack.prepared("validation", progress) if p.label == 0]
            if not good:
                raise CLIError(f"{root}: the pack holds no good validation samples")
            scores = np.asarray(detector.predict(good).scores)
        threshold = threedsr.choose_threshold(scores=scores, method="max")
        return threshold, f"max score of {len(good)} good validation samples of {root}"
    if not (root / cat).is_dir():
        recorded = (
            ""
            if data is not None or root.is_absolute()
            else (f" (recorded relative to the folder {run} was trained from)")
        )
        raise CLIError(
            f"{root / cat}: validation data for --threshold auto not found{recorded}; pass "
            "--data ROOT"
        )
    refs = [r for r in pcprep.index_dataset(root, cat, "validation") if int(r.label) == 0]
    if not refs:
        raise CLIError(f"{root / cat}: no good validation samples for --threshold auto")
    with ui.stage("validation scores", len(refs)) as progress:
        prepared = pcprep.preprocess_refs(refs, None, progress=progress, **detector.preprocess)
        scores = np.asarray(detector.predict(prepared).scores)
    threshold = threedsr.choose_threshold(scores=scores, method="max")
    return threshold, f"max score of {len(refs)} good validation samples of {root / cat}"


def _training_data(detector: Detector | OnnxDetector) -> Path | None:
    """The dataset root the detector was trained on (an absolute path since train records it
    so; older runs recorded it relative to the folder they were trained from)."""
    root = getattr(getattr(detector, "config", None), "data_root", None)
    return None if root is None else Path(root)


def _output_checks(
    out: Path, run: Path, inputs: list[Path], data: Path | None, detector: Any
) -> None:
    """--out must not lie inside a dataset: --data, the training data or the inputs' dataset."""
    check_output_folder(out)
    train_data = _training_data(detector)
    for root in [data, train_data, *dataset_roots(inputs)]:
        if root is not None and (root.is_absolute() or root.exists()):
            check_outside_data(out, root, "--out")


def _save(
    item: InputItem,
    prepared: Prepared,
    pred: SamplePrediction,
    out: Path,
    threshold: float | None,
    scale: MapScale,
) -> dict[str, Any]:
    """One scan's overlay, map PNG and record, on the detector's fixed ``scale`` (so the files
    do not depend on the other scans of the call); ``threshold`` is marked on the colour bar."""
    from threedsr_cli.overlays import overlay_figure, save_map_png

    # pred: threedsr.SamplePrediction (model-resolution map, native-resolution map, score)
    m, native, score = pred.map, pred.native_map, pred.score
    overlay = out / f"{item.name}_overlay.png"
    title = printable(f"{item.name}: score {score:.4f}")
    if threshold is not None:
        title += " ANOMALOUS" if score > threshold else " normal"
    overlay_figure(
        prepared.rgb,
        prepared.depth,
        {"anomaly map": m},
        overlay,
        scale=scale.range,
        threshold=threshold,
        title=title,
    )
    map_png = save_map_png(native, out / f"{item.name}_map.png", *scale.range, threshold)
    record: dict[str, Any] = {
        "name": item.name,
        "xyz": printable(str(item.geometry)),
        "rgb": printable(str(item.rgb)) if item.rgb is not None else None,
        "layout": item.layout,
        "score": float(score),
        "overlay": overlay.name,
        "map": map_png.name,
        "native_shape": list(prepared.native_shape),
    }
    if threshold is not None:
        record["anomalous"] = bool(score > threshold)
    return record


def predict_command(
    *,
    run: Path,
    inputs: list[Path],
    out: Path | None,
    threshold: str | None,
    data: Path | None,
    category: str | None,
    batch_size: int | None,
    backend: str = "torch",
    device: str,
    precision: str,
    method: str | None = None,
    seed: int,
    ui: UI,
    overwrite: bool = False,
) -> dict[str, Any]:
    from threedsr_cli.libs import load_detector, load_exported, seed_everything

    seed_everything(seed)
    if not inputs:
        raise CLIError(
            "predict: give at least one INPUT (a sample folder, XYZ RGB pair, "
            "Eyecandies sample or directory)"
        )
    thr = parse_threshold(threshold)
    items = resolve_inputs(inputs)
    if backend == "onnxruntime":
        detector = load_exported(run, device, precision, method)
    else:
        detector = load_detector(run, device, precision, method, batch_size=batch_size)
    out = (
        Path(out)
        if out is not None
        else (Path(run) if Path(run).is_dir() else Path(run).parent) / "predictions"
    )
    # Before any work: an output that cannot be written, lies in a dataset, or holds an earlier
    # prediction (without --overwrite) or other files, is refused while nothing has been computed.
    _output_checks(out, Path(run), inputs, data, detector)
    # One writer per folder: a second predict into it waits.
    with folder_lock(out):
        recover_outputs(out)
        replaced = check_prediction_target(out, overwrite)
        return _predict(
            detector, items, run, out, replaced, thr, data, category, batch_size, backend, ui
        )


def _predict(
    detector: Any,
    items: list[InputItem],
    run: Path,
    out: Path,
    replaced: set[str],
    thr: float | str | None,
    data: Path | None,
    category: str | None,
    batch_size: int | None,
    backend: str,
    ui: UI,
) -> dict[str, Any]:
    import threedsr

    from threedsr_cli.libs import warn, warn_unfinished
    from threedsr_cli.overlays import display_scale

    warn_unfinished(detector)
    source = None
    if thr == "auto":
        thr, source = auto_threshold(ui, detector, Path(run), data, category)
    elif thr is not None:
        source = "given"
    elif getattr(detector, "threshold", None) is not None:
        thr, source = float(detector.threshold), f"recorded at export in {detector.path.name}.json"
    # One colour scale per detector, whatever else is in this call (see display_scale); its
    # calibrated threshold decides when no other was given.
    scale = display_scale(detector)
    if thr is None and scale.threshold is not None:
        thr = scale.threshold
        source = (
            f"calibrated by the detector on {scale.calibration or 'good'} scans (display scale)"
        )
    records: list[dict[str, Any]] = []
    prepared: list[Prepared] = []
    used: list[InputItem] = []
    skipped: list[InputItem] = []

    def load() -> Iterator[Prepared]:
        for item in items:
            try:
                p = detector.prepare(item.load())
            except Exception as exc:
                # One unreadable input among several is skipped (named on a warning line); alone
                # it is the command's error.
                if len(items) == 1 or not is_bad_input(exc):
                    raise
                text = printable(one_line(exc))
                names = [printable(str(f)) for f in (item.geometry, item.rgb) if f is not None]
                warn(text if any(n in text for n in names) else f"{names[0]}: {text}")
                skipped.append(item)
                continue
            used.append(item)
            prepared.append(p)
            yield p

    bs = batch_size or getattr(detector, "batch_size", None) or 8
    with ui.stage("predict", len(items)) as progress:
        preds = threedsr.predict_samples(detector, load(), batch_size=bs, progress=progress)
    if not used:
        raise CLIError(
            f"predict: none of the {len(items)} inputs could be read (see the warnings above); "
            "nothing written"
        )
    results = list(zip(used, prepared, preds, strict=True))
    # Every file goes to a hidden .incomplete-* folder first (it marks the folder as partial),
    # then commit_outputs moves the group into place with scores.json last, removing the replaced
    # prediction's files: a kill leaves the old prediction, or a journal the next run completes.
    staging = staging_folder(out)
    try:
        with ui.stage("write overlays", len(results)) as progress:
            for k, (it, p, sp) in enumerate(results, 1):
                t = thr if thr is None else float(thr)
                records.append(_save(it, p, sp, staging, t, scale))
                progress(k, len(results))
        summary = {
            "run": printable(str(run)),
            "method": str(getattr(detector, "method", "")),
            "setup": detector.setup,
            "category": detector.category,
            "backend": backend,
            "threshold": None if thr is None else float(thr),
            "threshold_source": printable(source),
            "map_scale": list(scale.range),
            "scale_source": scale.source,
            "samples": records,
            "skipped": [printable(str(it.geometry)) for it in skipped],
        }
        atomic_write_json(staging / "scores.json", summary)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    commit_outputs(out, staging, remove=replaced)
    _print_scores(ui, detector, records, thr)
    ui.info(printable(f"wrote {out / 'scores.json'} and {len(records)} overlays to {out}"))
    if skipped:
        raise CLIError(
            f"predict: {len(skipped)} of {len(items)} inputs skipped (unreadable, see the "
            f"warnings above); the other {len(records)} were written to {printable(str(out))}"
        )
    return summary


def _print_scores(
    ui: UI, detector: Any, records: list[dict[str, Any]], thr: float | str | None
) -> None:
    from rich.table import Table

    table = Table(title=f"{detector.setup} detector: {len(records)} samples")
    table.add_column("sample")
    table.add_column("score", justify="right")
    if thr is not None:
        table.add_column(f"> {float(thr):.4f}")
    for r in records:
        row = [r["name"], f"{r['score']:.4f}"]
        if thr is not None:
            row.append("anomalous" if r["anomalous"] else "normal")
        table.add_row(*row)
    ui.out.print(table)
