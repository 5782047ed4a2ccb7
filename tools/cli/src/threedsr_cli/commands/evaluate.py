"""``threedsr-cli eval``: per-class I-AUROC, P-AUROC, AUPRO@0.3 and per-defect-type I-AUROC."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from threedsr_cli.atomic import atomic_write_json, atomic_write_text
from threedsr_cli.commands.metrics_target import check_metrics_target, detector_identity
from threedsr_cli.errors import CLIError
from threedsr_cli.inputs import printable
from threedsr_cli.locks import folder_lock
from threedsr_cli.outputs import (
    check_output_folder,
    commit_outputs,
    recover_outputs,
    staging_folder,
)
from threedsr_cli.overwrite import recover_run
from threedsr_cli.ownership import check_written
from threedsr_cli.report import fmt_metric
from threedsr_cli.ui import UI

if TYPE_CHECKING:
    from pcprep import SampleRef

__all__ = ["check_masks", "eval_command", "metrics_summary", "print_metrics"]

KEEP = (
    "image_auroc",
    "pixel_auroc",
    "aupro",
    "per_defect_type",
    "native",
    "n_good",
    "n_defective",
    "setup",
    "size",
    "method",
    "reference_name",
    "reference",
    "at_threshold",
)


def metrics_summary(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The JSON-able part of ``threedsr.evaluate``'s result (raw score lists dropped).

    Example:
        >>> metrics_summary({"puck": {"image_auroc": 0.9, "scores": {"good": [0.1]}}})
        {'puck': {'image_auroc': 0.9}}
    """
    return {c: {k: v for k, v in r.items() if k in KEEP} for c, r in results.items()}


def print_metrics(ui: UI, results: dict[str, dict[str, Any]], title: str) -> None:
    from rich.table import Table
    from threedsr import threshold_outcome

    # Each method beside its own published anchor: the memory beside BTF (the other kNN over
    # hand-made descriptors), the 3DSR network and the fused map beside the 3DSR paper.
    first = next(iter(results.values()), {})
    anchor = str(first.get("reference_name") or "reference")
    table = Table(title=title)
    cols = ("class", "I-AUROC", anchor, "P-AUROC", "AUPRO@0.3", anchor, "good / defective")
    for col in cols:
        table.add_column(col, justify="left" if col == "class" else "right")
    for c, r in results.items():
        ref = r.get("reference") or {}
        table.add_row(
            c,
            fmt_metric(r.get("image_auroc")),
            fmt_metric(ref.get("image_auroc")),
            fmt_metric(r.get("pixel_auroc")),
            fmt_metric(r.get("aupro")),
            fmt_metric(ref.get("aupro")),
            f"{r.get('n_good', '?')} / {r.get('n_defective', '?')}",
        )
    ui.out.print(table)
    types = Table(title="image AUROC per defect type")
    types.add_column("class")
    types.add_column("defect type")
    types.add_column("I-AUROC", justify="right")
    for c, r in results.items():
        for t, v in (r.get("per_defect_type") or {}).items():
            types.add_row(c, t, fmt_metric(v))
    if types.row_count:
        ui.out.print(types)
    for c, r in results.items():
        if r.get("at_threshold"):
            ui.out.print(printable(f"{c}: {threshold_outcome(r['at_threshold'])}"))


def _mask_path(ref: SampleRef) -> Path:
    """Where the ground-truth mask of a test sample should be."""
    geo = Path(ref.path)
    if ref.layout == "mvtec3d":
        return geo.parent.parent / "gt" / f"{geo.stem}.png"
    if ref.layout == "eyecandies" and geo.name.endswith("_depth.png"):
        return geo.with_name(geo.name[: -len("_depth.png")] + "_mask.png")
    return geo


def check_masks(data: Path, category: str, allow_missing: bool) -> int:
    """Every defective test scan needs its ground-truth mask: a missing one would silently count
    as an all-normal mask and lower P-AUROC and AUPRO. Returns how many are missing.

    Raises:
        CLIError: a mask is missing and ``allow_missing`` is off (names the first missing file).
    """
    import pcprep

    from threedsr_cli.commands.pack import open_pack
    from threedsr_cli.libs import warn

    pack = open_pack(data)
    if pack is not None:
        defective = [r for r in pack.samples.get("test", []) if r.label == 1]
        missing = [r for r in defective if not r.has_native_gt]
    else:
        refs = pcprep.index_dataset(data, category, "test")
        # Own test scans straight in test/ (no good/ and <defect>/ folders) and without masks say
        # nothing about what they are: counted as good, every metric came out empty, exit 0.
        unlabeled = [r for r in refs if r.defect_type == "unlabeled" and r.gt_path is None]
        if unlabeled:
            raise CLIError(
                f"{unlabeled[0].path}: test scan without a label ({len(unlabeled)} of "
                f"{len(refs)}): sort the test scans into good/ and <defect type>/ folders or give "
                "masks (NAME_gt.png, gt/); predict scores unlabeled scans"
            )
        defective = [r for r in refs if r.label == 1]
        missing = [r for r in defective if r.gt_path is None]
    if not missing:
        return 0
    first = data if pack is not None else _mask_path(missing[0])
    what = (
        f"ground-truth mask missing for the defective test scan {missing[0].path} "
        f"({len(missing)} of {len(defective)} defective scans have none)"
    )
    if not allow_missing:
        raise CLIError(
            f"{first}: {what}; add the masks, or pass --allow-missing-masks to count their "
            "pixels as normal"
        )
    warn(f"{first}: {what}; their pixels count as normal (--allow-missing-masks)")
    return len(missing)


#: the files eval writes (replaced only while their content is the one recorded at writing)
METRICS_FILES = ("metrics.json", "metrics.md")


def eval_command(
    *,
    run: Path,
    data: Path,
    category: str | None,
    out: Path | None,
    cache_dir: Path | None,
    device: str,
    precision: str,
    method: str | None = None,
    seed: int,
    ui: UI,
    overwrite: bool = False,
    allow_missing_masks: bool = False,
    batch_size: int | None = None,
) -> dict[str, dict[str, Any]]:
    from threedsr_cli.commands.pack import open_pack
    from threedsr_cli.libs import check_category, load_detector, seed_everything
    from threedsr_cli.path_checks import check_cache_dir, check_outside_data

    seed_everything(seed)
    own = Path(run) if Path(run).is_dir() else Path(run).parent
    recover_run(own)
    folder = Path(out) if out is not None else own
    # Everything that can refuse the command runs before the evaluation: nothing is computed for
    # an output that cannot be written, and nothing is written on bad input.
    detector = load_detector(run, device, precision, method, batch_size=batch_size, command="eval")
    check_output_folder(folder)
    pack = open_pack(data)
    cat = category or (detector.category if pack is None else pack.category)
    if cat is None:
        raise CLIError(f"{run}: the detector names no category; pass --category")
    check_category(data, cat)
    if pack is not None:  # refused before anything is computed
        pack.check(cat, detector.preprocess, detector.read_options)
    check_cache_dir(cache_dir, data)
    check_outside_data(folder, data, "--out" if out is not None else "the run folder (--run)")
    # One writer per folder: a second eval, a train --overwrite or an export into it waits.
    with folder_lock(folder):
        return _evaluate(
            detector, run, data, cat, own, folder, cache_dir, ui, overwrite, allow_missing_masks
        )


def _evaluate(
    detector: Any,
    run: Path,
    data: Path,
    cat: str,
    own: Path,
    folder: Path,
    cache_dir: Path | None,
    ui: UI,
    overwrite: bool,
    allow_missing_masks: bool,
) -> dict[str, dict[str, Any]]:
    import threedsr

    from threedsr_cli.libs import warn_unfinished

    recover_outputs(folder)
    # Only files this tool wrote (their content as recorded) are replaced, --overwrite or not.
    check_written(folder, METRICS_FILES)
    identity = (
        detector_identity(folder, detector.path)
        if detector.path
        else {"detector": str(run), "detector_sha256": ""}
    )
    if not overwrite:
        same_folder = folder.resolve() == own.resolve()
        check_metrics_target(folder, identity, cat, same_folder)
    check_masks(data, cat, allow_missing_masks)
    unfinished = warn_unfinished(detector)
    arith = (
        detector.precision if detector.precision != "auto" else "bf16" if detector.bf16 else "fp32"
    )
    # A pack is one file: "<pack>/<class>/test" would name a path that does not exist.
    split = f"the test split of {data}" if threedsr.is_pack(data) else f"{data}/{cat}/test"
    ui.info(
        printable(
            f"evaluating the {detector.setup} detector of {run} on {split} ({arith}): "
            f"method {detector.method}, {threedsr.METHOD_SUMMARY[detector.method]}"
        )
    )
    with ui.stage(f"evaluate {cat}") as progress:
        results = threedsr.evaluate(
            detector,
            data,
            cat,
            cache_dir=None if cache_dir is None else str(cache_dir),
            chunk=max(32, detector.batch_size),  # scans preprocessed at a time: whole batches
            progress=progress,
        )
    # Names from the file system (defect types) may hold bytes that are not UTF-8: written as
    # \xNN, so the files, the JSON and the terminal take them.
    summary = printable(metrics_summary(results))
    for entry in summary.values():
        entry.update(printable(identity))
        entry["detector_finished"] = not unfinished
    markdown = (
        threedsr.format_markdown(summary, setup=detector.setup, method=detector.method) + "\n"
    )
    staging = staging_folder(folder)
    try:
        atomic_write_text(staging / "metrics.md", markdown)
        atomic_write_json(staging / "metrics.json", summary)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    commit_outputs(folder, staging, record=True)
    print_metrics(ui, summary, f"{detector.method} map, {detector.setup} detector on {cat}")
    ui.info(printable(f"wrote {folder / 'metrics.json'}"))
    return summary
