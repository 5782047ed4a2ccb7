"""Per-class evaluation: I-AUROC, P-AUROC, AUPRO@0.3 at model and native resolution (admetrics)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import admetrics
import numpy as np
import pcprep

from threedsr.errors import ThreedsrError, require_detector
from threedsr.inference import Detector
from threedsr.metrics_report import write_metrics
from threedsr.packed import Pack, is_pack
from threedsr.references import reference_results
from threedsr.sample_predictions import upsample_map
from threedsr.thresholds import flagged_at

__all__ = ["EvaluatedSamples", "evaluate"]


@dataclass(frozen=True)
class EvaluatedSamples:
    """The per-sample results ``evaluate(..., keep_samples=True)`` computed for one class.

    Arrays follow the order of ``refs`` (pcprep's test index). ``maps`` are the smoothed anomaly
    maps at model resolution (N, H, W); ``gts`` the ground truth the pixel metrics used (pcprep's
    resized mask ``>= 1``, all False for good samples).
    """

    refs: list[Any]
    labels: np.ndarray  # (N,) int, 0 = good
    defect_types: list[str]
    scores: np.ndarray  # (N,) float64 image scores
    maps: np.ndarray  # (N, H, W) float32
    gts: np.ndarray  # (N, H, W) bool


def _safe(fn: Callable[..., float], *args: Any, **kwargs: Any) -> float | None:
    # Undefined metrics (no defective image / pixel in the class) are reported as None.
    try:
        return float(fn(*args, **kwargs))
    except admetrics.AdmetricsError:
        return None


def _native_gt(ref: Any, shape: tuple[int, int]) -> np.ndarray:
    if getattr(ref, "gt_path", None) is not None:
        gt = np.asarray(pcprep.read_mask(ref.gt_path)) > 0
        if gt.shape != tuple(shape):
            raise ThreedsrError(f"{ref.gt_path}: mask is {gt.shape}, the scan is {tuple(shape)}")
        return gt
    return np.zeros(shape, dtype=bool)


def evaluate(
    detector: Detector,
    data_root: str | os.PathLike[str],
    category: str | Sequence[str] | None = None,
    *,
    out: str | os.PathLike[str] | None = None,
    native: bool = True,
    aupro_thresholds: int | None = None,
    fpr_limit: float = 0.3,
    cache_dir: str | None = None,
    chunk: int = 32,
    progress: Callable[[int, int], None] | None = None,
    keep_samples: bool = False,
) -> dict[str, dict[str, Any]]:
    """Evaluate on ``<root>/<category>/test``; metrics per class.

    Image label: 0 for ``good``, 1 otherwise. Pixel metrics use the smoothed maps (as the
    reference). "Model resolution" compares the maps with pcprep's resized gt (paper parity);
    "native" upsamples each map bilinearly to the scan's size and uses the original mask.

    Args:
        detector: a loaded :class:`Detector`.
        data_root: dataset root (any pcprep layout), or a pack of one class
            (:mod:`threedsr.packed`) made with the detector's preprocessing.
        category: a class, several, or None for the detector's own class.
        out: folder for ``metrics.json`` and ``metrics.md`` (atomic writes); None = no files.
        native: also compute native-resolution pixel metrics.
        aupro_thresholds: None = exact AUPRO; 100 = the reference's quantile approximation.
        fpr_limit: AUPRO integration limit (0.3).
        cache_dir: pcprep preprocessing cache.
        chunk: samples preprocessed and predicted at a time (bounds memory).
        progress: ``progress(done, total)`` over the test samples.
        keep_samples: also return the per-sample labels, scores, maps and ground truth under
            ``"samples"`` (an :class:`EvaluatedSamples`; not written to ``metrics.json``).

    Returns:
        ``{category: {"image_auroc", "pixel_auroc", "aupro", "per_defect_type": {type:
        image_auroc of that type vs the good samples}, "native": {"pixel_auroc", "aupro"},
        "n_good", "n_defective", "setup", "size", "paper": {...}}}``; ``"at_threshold"``
        (:func:`~threedsr.thresholds.flagged_at`: the good and defective scans above the
        detector's calibrated threshold) when it has one; ``"samples"`` with ``keep_samples``;
        undefined metrics are None.
    """
    require_detector(detector, "evaluate")
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        # Checked first: the metrics are written after the whole evaluation.
        raise ThreedsrError(f"{out}: is a file; out= is the folder for metrics.json and metrics.md")
    if category is None:
        if detector.category is None:
            raise ThreedsrError("evaluate: the detector has no category; pass one")
        cats = [detector.category]
    else:
        cats = [category] if isinstance(category, str) else list(category)
    results = {
        c: _evaluate_one(
            detector,
            data_root,
            c,
            native,
            aupro_thresholds,
            fpr_limit,
            cache_dir,
            chunk,
            progress,
            keep_samples,
        )
        for c in cats
    }
    if out is not None:
        write_metrics(results, out, setup=detector.setup, method=detector.method)
    return results


def _evaluate_one(
    detector: Detector,
    root: Any,
    category: str,
    native: bool,
    thresholds: int | None,
    fpr_limit: float,
    cache_dir: str | None,
    chunk: int,
    progress: Callable[[int, int], None] | None,
    keep_samples: bool = False,
) -> dict[str, Any]:
    pack = Pack(root) if is_pack(root) else None
    if pack is not None:
        pack.check(category, detector.preprocess, detector.read_options)
        refs: list[Any] = pack.samples.get("test", [])
    else:
        refs = list(pcprep.index_dataset(root, category, "test", **detector.read_options))
    if not refs:
        raise ThreedsrError(f"{root}: no test samples for category {category!r}")
    labels, types, scores, maps, gts, nmaps, ngts = [], [], [], [], [], [], []
    for start in range(0, len(refs), chunk):
        part = refs[start : start + chunk]
        if pack is not None:
            prepared = pack.decode(part)
        else:
            prepared = pcprep.preprocess_refs(part, cache_dir, **detector.preprocess)
        pred = detector.predict(prepared)
        for ref, p, m, s in zip(
            part, prepared, pred.maps.numpy(), pred.scores.numpy(), strict=True
        ):
            labels.append(int(ref.label))
            types.append(str(ref.defect_type))
            scores.append(float(s))
            maps.append(m)
            gts.append(np.zeros(m.shape, bool) if p.gt is None else np.asarray(p.gt) >= 1.0)
            if native:
                shape = tuple(p.native_shape)
                nmaps.append(upsample_map(m, shape))
                ngts.append(pack.native_gt(ref) if pack is not None else _native_gt(ref, shape))
        if progress is not None:
            progress(min(start + chunk, len(refs)), len(refs))
    lab = np.asarray(labels)
    sc = np.asarray(scores)
    gt_stack, map_stack = np.stack(gts), np.stack(maps)
    res: dict[str, Any] = {
        "image_auroc": _safe(admetrics.image_auroc, lab, sc),
        "pixel_auroc": _safe(admetrics.pixel_auroc, gt_stack, map_stack),
        "aupro": _safe(
            admetrics.aupro,
            gt_stack,
            map_stack,
            fpr_limit=fpr_limit,
            num_thresholds=thresholds,
        ),
    }
    per_type: dict[str, float | None] = {}
    good = np.asarray([t == "good" for t in types]) & (lab == 0)
    for t in sorted({t for t, lb in zip(types, labels, strict=True) if lb == 1}):
        sel = good | np.asarray([tt == t for tt in types])
        per_type[t] = _safe(admetrics.image_auroc, lab[sel], sc[sel])
    res["per_defect_type"] = per_type
    if native:
        res["native"] = {
            "pixel_auroc": _safe(admetrics.pixel_auroc, ngts, nmaps),
            "aupro": _safe(
                admetrics.aupro, ngts, nmaps, fpr_limit=fpr_limit, num_thresholds=thresholds
            ),
        }
    res.update(
        n_good=int((lab == 0).sum()),
        n_defective=int((lab == 1).sum()),
        method=detector.method,
        setup=detector.setup,
        size=detector.size,
        scores={"good": sc[lab == 0].tolist(), "defective": sc[lab == 1].tolist()},
        reference_name=reference_results(detector.method, detector.setup)[0],
        reference=reference_results(detector.method, detector.setup)[1].get(category, {}),
    )
    display = getattr(detector, "display", None)
    if display is not None:
        res["at_threshold"] = flagged_at(lab, sc, display.threshold, display.source)
    if keep_samples:
        res["samples"] = EvaluatedSamples(refs, lab, types, sc, map_stack, gt_stack)
    return res
