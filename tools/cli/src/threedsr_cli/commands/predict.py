"""``threedsr-cli predict``: anomaly maps, overlays and scores for new scans.

What it writes, and the checks on ``--out``, are :mod:`threedsr_cli.commands.predict_outputs`;
the inputs it reads are :mod:`threedsr_cli.inputs`.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from threedsr_cli.atomic import atomic_write_json
from threedsr_cli.commands.predict_outputs import (
    check_predict_out,
    check_prediction_target,
    print_scores,
    save_prediction,
    training_data,
)
from threedsr_cli.errors import CLIError, is_bad_input, one_line
from threedsr_cli.input_items import coloured_cloud
from threedsr_cli.inputs import InputItem, printable, resolve_inputs
from threedsr_cli.locks import folder_lock
from threedsr_cli.options import parse_threshold
from threedsr_cli.outputs import commit_outputs, recover_outputs, staging_folder
from threedsr_cli.overwrite import recover_run
from threedsr_cli.ui import UI

if TYPE_CHECKING:
    from pcprep import Prepared
    from threedsr import Detector, OnnxDetector

__all__ = ["auto_threshold", "predict_command"]


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

    root = data if data is not None else training_data(detector)
    cat = category or detector.category
    if root is None or cat is None:
        raise CLIError(f"{run}: --threshold auto needs validation data; pass --data ROOT")
    root = Path(root)
    pack = open_pack(root)
    if pack is not None:
        pack.check(cat, detector.preprocess, detector.read_options)
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
    refs = pcprep.index_dataset(root, cat, "validation", **detector.read_options)
    refs = [r for r in refs if int(r.label) == 0]
    if not refs:
        raise CLIError(f"{root / cat}: no good validation samples for --threshold auto")
    with ui.stage("validation scores", len(refs)) as progress:
        prepared = pcprep.preprocess_refs(refs, None, progress=progress, **detector.preprocess)
        scores = np.asarray(detector.predict(prepared).scores)
    threshold = threedsr.choose_threshold(scores=scores, method="max")
    return threshold, f"max score of {len(refs)} good validation samples of {root / cat}"


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
    raw_maps: bool = False,
    point_clouds: bool = False,
    camera: Path | None = None,
) -> dict[str, Any]:
    from threedsr_cli.libs import load_detector, load_exported, seed_everything

    seed_everything(seed)
    if not inputs:
        raise CLIError(
            "predict: give at least one INPUT (a sample folder, XYZ RGB pair, "
            "Eyecandies sample or directory)"
        )
    thr = parse_threshold(threshold)
    # Every path is checked before the detector loads; whether a scan may come without its
    # colour image is the detector's to say (only a depth detector takes one).
    items = resolve_inputs(inputs, colour=False)
    recover_run(Path(run) if Path(run).is_dir() else Path(run).parent)
    if backend == "onnxruntime":
        detector = load_exported(run, device, precision, method)
    else:
        detector = load_detector(run, device, precision, method, batch_size=batch_size)
    if camera is not None:
        from threedsr_cli.scan_units import cloud_camera

        own = cloud_camera(camera, detector.read_options, run)
        items = [dataclasses.replace(it, cloud_options=own) for it in items]
    if detector.setup != "depth" and any(
        it.rgb is None and it.layout == "pair" and not coloured_cloud(it.geometry) for it in items
    ):
        resolve_inputs(inputs)  # raises the error that names the first scan without its rgb
    out = (
        Path(out)
        if out is not None
        else (Path(run) if Path(run).is_dir() else Path(run).parent) / "predictions"
    )
    # Before any work: an output that cannot be written, lies in a dataset, or holds an earlier
    # prediction (without --overwrite) or other files, is refused while nothing has been computed.
    check_predict_out(out, Path(run), inputs, data, detector)
    # One writer per folder: a second predict into it waits.
    with folder_lock(out):
        recover_outputs(out)
        replaced = check_prediction_target(out, overwrite)
        return _predict(
            detector,
            items,
            run,
            out,
            replaced,
            thr,
            data,
            category,
            batch_size,
            backend,
            ui,
            raw_maps=raw_maps,
            point_clouds=point_clouds,
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
    *,
    raw_maps: bool = False,
    point_clouds: bool = False,
    camera: Path | None = None,
) -> dict[str, Any]:
    import threedsr

    from threedsr_cli.libs import warn, warn_unfinished
    from threedsr_cli.map_scale import display_scale

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
                p = detector.prepare(item.load(detector.read_options))
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
                records.append(
                    save_prediction(
                        it,
                        p,
                        sp,
                        staging,
                        t,
                        scale,
                        detector,
                        raw_maps=raw_maps,
                        point_clouds=point_clouds,
                    )
                )
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
    print_scores(ui, detector, records, thr)
    ui.info(printable(f"wrote {out / 'scores.json'} and {len(records)} overlays to {out}"))
    if skipped:
        raise CLIError(
            f"predict: {len(skipped)} of {len(items)} inputs skipped (unreadable, see the "
            f"warnings above); the other {len(records)} were written to {printable(str(out))}"
        )
    return summary
