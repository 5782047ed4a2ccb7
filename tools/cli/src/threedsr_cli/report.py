"""Evaluation results as a reader sees them: metrics tables (Markdown / HTML), ROC and PRO curves
and per-defect-type bars.

The figures here and the anomaly-map overlays (:mod:`threedsr_cli.overlays`) share one lazy
matplotlib (:func:`pyplot`, Agg backend: no display needed) and one atomic PNG writer
(:func:`save_figure`), so ``--help`` and the commands that draw nothing never import matplotlib.
"""

from __future__ import annotations

import html
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from threedsr_cli.atomic import atomic_write_bytes, atomic_write_text

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from numpy.typing import ArrayLike

__all__ = [
    "defect_type_table",
    "fmt_metric",
    "metrics_table",
    "plot_per_defect_type",
    "plot_pro",
    "plot_roc",
    "pyplot",
    "render_html",
    "save_figure",
]

METRICS = (("image_auroc", "I-AUROC"), ("pixel_auroc", "P-AUROC"), ("aupro", "AUPRO@0.3"))


def pyplot() -> ModuleType:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Figure, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    pyplot().close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def fmt_metric(value: float | None) -> str:
    """A metric in percent with one decimal, '-' when undefined.

    Example:
        >>> fmt_metric(0.98765), fmt_metric(None)
        ('98.8', '-')
    """
    return "-" if value is None else f"{100.0 * float(value):.1f}"


def metrics_table(results: Mapping[str, Mapping[str, Any]]) -> list[list[str]]:
    """Rows ``[name, I-AUROC, P-AUROC, AUPRO]`` (percent) from ``{name: metrics}``; header first.

    Example:
        >>> metrics_table({"rgbd": {"image_auroc": 0.9, "pixel_auroc": 0.95, "aupro": None}})
        [['', 'I-AUROC', 'P-AUROC', 'AUPRO@0.3'], ['rgbd', '90.0', '95.0', '-']]
    """
    rows = [["", *(label for _, label in METRICS)]]
    for name, r in results.items():
        rows.append([name, *(fmt_metric(r.get(key)) for key, _ in METRICS)])
    return rows


def defect_type_table(
    per_setup: Mapping[str, Mapping[str, float | None]], modality: Mapping[str, str] | None = None
) -> list[list[str]]:
    """Rows ``[defect type, modality, <setup>...]`` of per-defect-type image AUROC (percent).

    Example:
        >>> defect_type_table({"rgbd": {"dent": 0.95}, "rgb": {"dent": 0.5}}, {"dent": "depth"})
        [['defect type', 'visible in', 'rgbd', 'rgb'], ['dent', 'depth', '95.0', '50.0']]
    """
    modality = modality or {}
    setups = list(per_setup)
    types = sorted({t for v in per_setup.values() for t in v})
    rows = [["defect type", "visible in", *setups]]
    for t in types:
        rows.append([t, modality.get(t, "?"), *(fmt_metric(per_setup[s].get(t)) for s in setups)])
    return rows


def markdown_table(rows: Sequence[Sequence[str]]) -> str:
    """Markdown for a header + rows table (numbers right-aligned).

    Example:
        >>> print(markdown_table([["a", "b"], ["x", "1"]]))
        | a | b |
        |---|---:|
        | x | 1 |
    """
    head, *body = rows
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines)


def html_table(rows: Sequence[Sequence[str]]) -> str:
    head, *body = rows
    out = ["<table>", "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    out += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in body]
    return "\n".join([*out, "</table>"])


def plot_roc(
    curves: Mapping[str, tuple[ArrayLike, ArrayLike]], path: Path, title: str = "Image ROC"
) -> Path:
    """Image-level ROC curves, one per name, from ``{name: (labels, scores)}`` (admetrics)."""
    import admetrics

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 4.0))
    for name, (labels, scores) in curves.items():
        fpr, tpr, _ = admetrics.roc_curve(np.asarray(labels), np.asarray(scores, np.float64))
        auc = admetrics.image_auroc(np.asarray(labels), np.asarray(scores, np.float64))
        ax.step(fpr, tpr, where="post", label=f"{name} (AUROC {100 * auc:.1f})")
    ax.plot([0, 1], [0, 1], color="0.7", lw=0.8, ls="--")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower right", fontsize=8)
    return save_figure(fig, path)


def plot_pro(
    curves: Mapping[str, tuple[ArrayLike, ArrayLike]],
    path: Path,
    *,
    fpr_limit: float = 0.3,
    title: str = "PRO curve",
) -> Path:
    """PRO curves up to ``fpr_limit`` from ``{name: (masks, maps)}`` (exact, admetrics)."""
    import admetrics

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 4.0))
    for name, (masks, maps) in curves.items():
        fpr, pro = admetrics.pro_curve(np.asarray(masks), np.asarray(maps), fpr_limit=fpr_limit)
        score = admetrics.aupro(np.asarray(masks), np.asarray(maps), fpr_limit=fpr_limit)
        ax.plot(fpr, pro, label=f"{name} (AUPRO {100 * score:.1f})")
    ax.set(xlabel="false positive rate (pixels)", ylabel="per-region overlap", title=title)
    ax.set_xlim(0, fpr_limit)
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower right", fontsize=8)
    return save_figure(fig, path)


def plot_per_defect_type(
    per_setup: Mapping[str, Mapping[str, float | None]],
    modality: Mapping[str, str],
    path: Path,
    title: str = "Image AUROC per defect type",
) -> Path:
    """Grouped bars: image AUROC of each setup for each defect type (labelled with its modality)."""
    plt = pyplot()
    setups = list(per_setup)
    types = sorted({t for v in per_setup.values() for t in v})
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(types), 3.2))
    width = 0.8 / max(len(setups), 1)
    x = np.arange(len(types))
    for k, s in enumerate(setups):
        values = [per_setup[s].get(t) for t in types]
        heights = [np.nan if v is None else 100 * v for v in values]
        bars = ax.bar(x + (k - (len(setups) - 1) / 2) * width, heights, width, label=s)
        ax.bar_label(bars, fmt="%.0f", fontsize=7)
    ax.set_xticks(x, [f"{t}\n({modality.get(t, '?')})" for t in types], fontsize=8)
    ax.axhline(50, color="0.6", lw=0.8, ls="--")
    ax.set_ylim(0, 108)
    ax.set_ylabel("image AUROC (%)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    return save_figure(fig, path)


def render_html(title: str, sections: Sequence[tuple[str, str]]) -> str:
    """A self-contained HTML page; each section is (heading, HTML body)."""
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #bbb;padding:3px 8px;"
        "text-align:right}td:first-child,th:first-child{text-align:left}img{max-width:100%}"
    )
    body = "\n".join(f"<h2>{html.escape(h)}</h2>\n{b}" for h, b in sections)
    return (
        f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body>\n<h1>{html.escape(title)}</h1>\n{body}\n"
        "</body></html>\n"
    )


def write_text_files(out: Path, markdown: str, html_text: str) -> tuple[Path, Path]:
    return atomic_write_text(out / "report.md", markdown), atomic_write_text(
        out / "report.html", html_text
    )
