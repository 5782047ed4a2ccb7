"""Per-class evaluation: I-AUROC, P-AUROC, AUPRO@0.3 at model and native resolution (admetrics)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import admetrics
import numpy as np
import pcprep
import vqcore

from threedsr.config import METHOD_SUMMARY
from threedsr.errors import ThreedsrError
from threedsr.inference import Detector
from threedsr.packed import Pack, is_pack
from threedsr.sample_predictions import upsample_map

__all__ = [
    "BTF_RESULTS",
    "PAPER_RESULTS",
    "EvaluatedSamples",
    "evaluate",
    "format_markdown",
    "reference_results",
    "write_metrics",
]

_MVTEC = (
    "bagel",
    "cable_gland",
    "carrot",
    "cookie",
    "dowel",
    "foam",
    "peach",
    "potato",
    "rope",
    "tire",
)
_EYECANDIES = (
    "CandyCane",
    "ChocolateCookie",
    "ChocolatePraline",
    "Confetto",
    "GummyBear",
    "HazelnutTruffle",
    "LicoriceSandwich",
    "Lollipop",
    "Marshmallow",
    "PeppermintCandy",
)


def _table(classes: Sequence[str], **columns: Sequence[float]) -> dict[str, dict[str, float]]:
    return {c: {k: v[i] / 100.0 for k, v in columns.items()} for i, c in enumerate(classes)}


#: The paper's per-class numbers (spec §0), as fractions, by setup then class. The paper gives no
#: per-class P-AUROC, and its "RGB" rows are DSR's numbers, so ``rgb`` is empty.
PAPER_RESULTS: dict[str, dict[str, dict[str, float]]] = {
    "depth": _table(
        _MVTEC,
        image_auroc=(94.5, 83.5, 96.9, 85.7, 95.5, 88.0, 96.3, 93.4, 99.8, 88.8),
        aupro=(92.2, 87.2, 98.4, 85.9, 94.0, 71.4, 97.0, 97.8, 97.7, 85.8),
    ),
    "rgbd": {
        **_table(
            _MVTEC,
            image_auroc=(98.1, 86.7, 99.6, 98.1, 100.0, 99.4, 98.6, 97.8, 100.0, 99.5),
            aupro=(96.4, 96.6, 98.1, 94.2, 98.0, 97.3, 98.1, 97.7, 97.9, 97.9),
        ),
        **_table(
            _EYECANDIES, image_auroc=(65.1, 99.8, 90.4, 97.8, 87.5, 86.1, 96.5, 89.9, 99.0, 97.1)
        ),
    },
    "rgb": {},
}

#: Back to the Feature (Horwitz & Hoshen, CVPR workshops 2023), the classic CPU baseline of
#: hand-made descriptors in a kNN memory: FPFH + RGB (``rgbd``) and FPFH alone (``depth``), on
#: MVTec 3D-AD, as fractions. The descriptor memory is compared with it, not with 3DSR's paper.
BTF_RESULTS: dict[str, dict[str, dict[str, float]]] = {
    "rgbd": _table(
        _MVTEC,
        image_auroc=(91.8, 74.8, 96.7, 88.3, 93.2, 58.2, 89.6, 91.2, 92.1, 88.6),
        aupro=(97.6, 96.9, 97.9, 97.3, 93.3, 88.8, 97.5, 98.1, 95.0, 97.1),
    ),
    "depth": _table(
        _MVTEC,
        image_auroc=(82.5, 55.1, 95.2, 79.7, 88.3, 58.2, 75.8, 88.9, 92.9, 65.3),
        aupro=(97.3, 87.9, 98.2, 90.6, 89.2, 73.5, 97.7, 98.2, 95.6, 96.1),
    ),
    "rgb": {},
}


def reference_results(method: str, setup: str) -> tuple[str, dict[str, dict[str, float]]]:
    """The published figures a method is compared with: the descriptor memory with BTF (the
    other hand-made-descriptor kNN), the 3DSR network and the fused map with the 3DSR paper.

    Example:
        >>> name, table = reference_results("memory", "rgbd")
        >>> name, table["cable_gland"]["image_auroc"]
        ('BTF', 0.748)
    """
    if method == "memory":
        return "BTF", BTF_RESULTS.get(setup, {})
    return "3DSR paper", PAPER_RESULTS.get(setup, {})


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
        "n_good", "n_defective", "setup", "size", "paper": {...}}}``, plus ``"samples"`` with
        ``keep_samples``; undefined metrics are None.
    """
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
        pack.check(category, detector.preprocess)
        refs: list[Any] = pack.samples.get("test", [])
    else:
        refs = list(pcprep.index_dataset(root, category, "test"))
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
    if keep_samples:
        res["samples"] = EvaluatedSamples(refs, lab, types, sc, map_stack, gt_stack)
    return res


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def format_markdown(
    results: dict[str, dict[str, Any]], *, setup: str, method: str = "memory"
) -> str:
    """Markdown: which method made the maps, per-class metrics next to that method's published
    anchor ('-' where it has none: BTF for the memory, the 3DSR paper for 3dsr and fused), then
    native-resolution metrics and per-defect-type image AUROC (all in %).

    Example:
        >>> r = {"bagel": {"image_auroc": 0.97, "pixel_auroc": 0.99, "aupro": 0.95,
        ...                "per_defect_type": {"crack": 0.97}}}
        >>> print(format_markdown(r, setup="rgbd", method="3dsr").splitlines()[4])
        | bagel | 97.0 | 98.1 | 99.0 | - | 95.0 | 96.4 |
    """
    name, paper = reference_results(method, setup)
    lines = [
        f"Method: **{method}** ({METHOD_SUMMARY[method]}); setup {setup}; anchor: {name}.",
        "",
        f"| class | I-AUROC | {name} | P-AUROC | {name} | AUPRO@0.3 | {name} |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for c, r in results.items():
        p = paper.get(c, {})
        lines.append(
            f"| {c} | {_fmt(r.get('image_auroc'))} | {_fmt(p.get('image_auroc'))} | "
            f"{_fmt(r.get('pixel_auroc'))} | {_fmt(p.get('pixel_auroc'))} | "
            f"{_fmt(r.get('aupro'))} | {_fmt(p.get('aupro'))} |"
        )
    if any("native" in r for r in results.values()):
        lines += [
            "",
            "Native resolution:",
            "",
            "| class | P-AUROC | AUPRO@0.3 |",
            "|---|---:|---:|",
        ]
        for c, r in results.items():
            n = r.get("native", {})
            lines.append(f"| {c} | {_fmt(n.get('pixel_auroc'))} | {_fmt(n.get('aupro'))} |")
    lines += [
        "",
        "Image AUROC per defect type (vs the good samples):",
        "",
        "| class | defect type | I-AUROC |",
        "|---|---|---:|",
    ]
    for c, r in results.items():
        for t, v in r.get("per_defect_type", {}).items():
            lines.append(f"| {c} | {t} | {_fmt(v)} |")
    return "\n".join(lines)


def _atomic_text(path: Path, text: str) -> None:
    vqcore.atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_metrics(
    results: dict[str, dict[str, Any]],
    out: str | os.PathLike[str],
    *,
    setup: str,
    method: str = "memory",
) -> Path:
    """Write ``<out>/metrics.json`` and ``<out>/metrics.md`` atomically; returns the JSON path."""
    out = Path(out)
    plain = {c: {k: v for k, v in r.items() if k != "samples"} for c, r in results.items()}
    _atomic_text(out / "metrics.json", json.dumps(plain, indent=2, sort_keys=True))
    _atomic_text(out / "metrics.md", format_markdown(results, setup=setup, method=method) + "\n")
    return out / "metrics.json"
