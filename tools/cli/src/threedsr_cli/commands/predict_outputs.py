"""What ``threedsr-cli predict`` writes, and where it may: the checks on ``--out`` before any
work, one scan's overlay, map and record, and the score table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from threedsr_cli.errors import CLIError
from threedsr_cli.inputs import InputItem, printable
from threedsr_cli.map_scale import score_text
from threedsr_cli.outputs import check_output_folder
from threedsr_cli.ownership import STAGING_PREFIX, prediction_files
from threedsr_cli.path_checks import check_outside_data
from threedsr_cli.ui import UI

if TYPE_CHECKING:
    import numpy as np
    from pcprep import Prepared
    from threedsr import Detector, OnnxDetector, SamplePrediction

    from threedsr_cli.map_scale import MapScale

__all__ = [
    "check_predict_out",
    "check_prediction_target",
    "dataset_roots",
    "print_scores",
    "save_prediction",
    "training_data",
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
        what = (
            "holds earlier predictions and files predict did not write (never replaced)"
            if (out / "scores.json").is_file()
            else "folder is not empty and holds no threedsr-cli predictions"
        )
        raise CLIError(f"{out}: {what}; choose another --out")
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


def training_data(detector: Detector | OnnxDetector) -> Path | None:
    """The dataset root the detector was trained on (an absolute path since train records it
    so; older runs recorded it relative to the folder they were trained from)."""
    root = getattr(getattr(detector, "config", None), "data_root", None)
    if root is None:  # an export records it in its sidecar (absent from older sidecars)
        root = (getattr(detector, "meta", None) or {}).get("data_root")
    return None if root is None else Path(root)


def check_predict_out(
    out: Path, run: Path, inputs: list[Path], data: Path | None, detector: Any
) -> None:
    """--out must not lie inside a dataset: --data, the training data or the inputs' dataset."""
    check_output_folder(out)
    train_data = training_data(detector)
    for root in [data, train_data, *dataset_roots(inputs)]:
        if root is not None and (root.is_absolute() or root.exists()):
            check_outside_data(out, root, "--out")


def save_prediction(
    item: InputItem,
    prepared: Prepared,
    pred: SamplePrediction,
    out: Path,
    threshold: float | None,
    scale: MapScale,
    detector: Any = None,
    *,
    raw_maps: bool = False,
    point_clouds: bool = False,
) -> dict[str, Any]:
    """One scan's overlay, map PNG and record, on the detector's fixed ``scale`` (so the files
    do not depend on the other scans of the call); ``threshold`` is marked on the colour bar.
    ``raw_maps`` adds the native map's values as a float32 TIFF (``<name>_map.tiff``),
    ``point_clouds`` the scan's points coloured by the map, with its values, as a PLY
    (``<name>_map.ply``; the scan is read again, at its own resolution)."""
    from threedsr_cli.overlays import overlay_figure, save_map_png

    # pred: threedsr.SamplePrediction (model-resolution map, native-resolution map, score)
    m, native, score = pred.map, pred.native_map, pred.score
    # Which method made the map goes on every picture: a fused detector also runs its memory or
    # 3DSR map alone (--method), and an overlay read without its scores.json is otherwise mute.
    method = str(getattr(detector, "method", "") or "") or None
    overlay = out / f"{item.name}_overlay.png"
    title = printable(f"{item.name}: score {score_text(score)}")
    if threshold is not None:
        title += " ANOMALOUS" if score > threshold else " normal"
    overlay_figure(
        prepared.rgb if getattr(prepared, "colour", True) else None,
        prepared.depth,
        {f"{method} anomaly map" if method else "anomaly map": m},
        overlay,
        scale=scale.range,
        threshold=threshold,
        title=title,
    )
    map_png = save_map_png(
        native, out / f"{item.name}_map.png", *scale.range, threshold, method=method
    )
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
    # Files read without their scores.json still say which method made them.
    description = f"threedsr {method} anomaly map" if method else "threedsr anomaly map"
    if raw_maps:
        record["map_tiff"] = _save_map_tiff(native, out / f"{item.name}_map.tiff", description)
    if point_clouds:
        from threedsr_cli.point_cloud_map import write_map_ply

        # Read again rather than held from prediction: every scan of the call would otherwise
        # stay in memory at full resolution until the writing starts.
        scan = item.load(getattr(detector, "read_options", None))
        ply = write_map_ply(
            out / f"{item.name}_map.ply",
            scan.xyz,
            scan.rgb,
            native,
            *scale.range,
            description=description,
            threshold=threshold,
        )
        record["map_ply"] = ply.name
    if threshold is not None:
        record["anomalous"] = bool(score > threshold)
    return record


def _save_map_tiff(native: np.ndarray, path: Path, description: str) -> str:
    """The map's values as they are (no colour scale), (H, W) float32, with ``description`` (which
    method made them) in the TIFF's; returns the file's name."""
    import numpy as np
    import tifffile

    from threedsr_cli.atomic import atomic_write_with

    values = np.ascontiguousarray(native, dtype=np.float32)
    atomic_write_with(
        path, lambda p: tifffile.imwrite(p, values, description=description, metadata=None)
    )
    return path.name


def print_scores(
    ui: UI, detector: Any, records: list[dict[str, Any]], thr: float | str | None
) -> None:
    from rich.table import Table

    method = getattr(detector, "method", None)
    made = f"{detector.setup} detector, {method} map" if method else f"{detector.setup} detector"
    table = Table(title=f"{made}: {len(records)} samples")
    table.add_column("sample")
    table.add_column("score", justify="right")
    if thr is not None:
        table.add_column(f"> {score_text(float(thr))}")
    for r in records:
        row = [r["name"], score_text(r["score"])]
        if thr is not None:
            row.append("anomalous" if r["anomalous"] else "normal")
        table.add_row(*row)
    ui.out.print(table)
