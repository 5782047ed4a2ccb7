"""Markdown table of per-class results with a mean row."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .errors import AdmetricsError

__all__ = ["format_report"]

_HEADERS = {
    "image_auroc": "I-AUROC",
    "pixel_auroc": "P-AUROC",
    "aupro": "AUPRO",
    "image_ap": "I-AP",
    "pixel_ap": "P-AP",
}


def _cell(value: float | None, digits: int, percent: bool) -> str:
    if value is None:
        return "—"
    return f"{value * 100:.{max(digits - 2, 0)}f}" if percent else f"{value:.{digits}f}"


def format_report(
    per_class: Mapping[str, Mapping[str, float]],
    *,
    reference: Mapping[str, Mapping[str, float]] | None = None,
    metrics: Sequence[str] = ("image_auroc", "pixel_auroc", "aupro"),
    digits: int = 3,
    percent: bool = False,
) -> str:
    """Markdown table: one row per class, one column per metric, and the mean row.

    Args:
        per_class: ``{class: {"image_auroc": ..., "pixel_auroc": ..., "aupro": ...}}`` (e.g. the
            output of :meth:`AnomalyMetrics.compute` per class).
        reference: optional published numbers in the same layout; each metric then gets a
            ``(ref)`` column next to it. Missing entries print as ``—``.
        metrics: metric keys to show, in order.
        digits: decimals for values in [0, 1] (``percent=True`` shows ``digits - 2`` decimals of %).
        percent: print values as percentages.

    Returns:
        The table as a string (no trailing newline). A mean is shown only when every class has
        the value; otherwise ``—``.

    Example:
        >>> print(format_report({"bagel": {"image_auroc": 0.9, "pixel_auroc": 0.95, "aupro": 0.8},
        ...                      "cable_gland": {"image_auroc": 0.7, "pixel_auroc": 0.97, "aupro": 0.9}}))
        | class | I-AUROC | P-AUROC | AUPRO |
        |---|---:|---:|---:|
        | bagel | 0.900 | 0.950 | 0.800 |
        | cable_gland | 0.700 | 0.970 | 0.900 |
        | **mean** | **0.800** | **0.960** | **0.850** |
    """
    if not per_class:
        raise AdmetricsError("format_report: per_class is empty")
    classes = list(per_class)
    columns: list[tuple[str, Mapping[str, Mapping[str, float]]]] = []
    for key in metrics:
        columns.append((key, per_class))
        if reference is not None:
            columns.append((key, reference))
    header = ["class"]
    for key, source in columns:
        name = _HEADERS.get(key, key)
        header.append(f"{name} (ref)" if source is not per_class else name)
    lines = ["| " + " | ".join(header) + " |", "|---" + "|---:" * len(columns) + "|"]
    for cls in classes:
        cells = [cls]
        for key, source in columns:
            value = source.get(cls, {}).get(key)
            cells.append(_cell(None if value is None else float(value), digits, percent))
        lines.append("| " + " | ".join(cells) + " |")
    mean_cells = ["**mean**"]
    for key, source in columns:
        values = [source.get(cls, {}).get(key) for cls in classes]
        if any(v is None for v in values):
            mean_cells.append("—")
        else:
            mean = float(np.mean([float(v) for v in values]))
            mean_cells.append(f"**{_cell(mean, digits, percent)}**")
    lines.append("| " + " | ".join(mean_cells) + " |")
    return "\n".join(lines)
