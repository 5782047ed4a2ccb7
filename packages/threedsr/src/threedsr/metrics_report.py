"""``metrics.json`` and ``metrics.md``: an evaluation's results beside the method's anchor."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import vqcore

from threedsr.config import METHOD_SUMMARY
from threedsr.references import reference_results

__all__ = ["format_markdown", "threshold_outcome", "write_metrics"]


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
    flagged = [(c, r["at_threshold"]) for c, r in results.items() if r.get("at_threshold")]
    if flagged:
        lines += ["", "At the detector's calibrated threshold (what predict calls anomalous):", ""]
        lines += [f"- {c}: {threshold_outcome(t)}" for c, t in flagged]
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


def threshold_outcome(at: dict[str, Any]) -> str:
    """One line on an evaluation's ``at_threshold`` (:func:`threedsr.thresholds.flagged_at`).

    Example:
        >>> threshold_outcome({"threshold": 0.9893, "source": "validation", "good_flagged": 0,
        ...                    "n_good": 11, "defective_flagged": 2, "n_defective": 44})
        'score > 0.9893 (the largest good validation score) flags 2 of 44 defective and 0 of 11 good scans'
    """
    source = at.get("source")
    where = f" (the largest good {source} score)" if source else ""
    return (
        f"score > {at['threshold']:.6g}{where} flags {at['defective_flagged']} of "
        f"{at['n_defective']} defective and {at['good_flagged']} of {at['n_good']} good scans"
    )


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
