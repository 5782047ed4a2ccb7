"""``threedsr-cli eval``: per-class I-AUROC, P-AUROC, AUPRO@0.3 and per-defect-type I-AUROC."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from threedsr_cli.report import fmt_metric
from threedsr_cli.runs import atomic_write_json, atomic_write_text
from threedsr_cli.ui import UI

__all__ = ["eval_command", "metrics_summary", "print_metrics"]

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
    "paper",
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

    table = Table(title=title)
    for col in ("class", "I-AUROC", "P-AUROC", "AUPRO@0.3", "good / defective"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for c, r in results.items():
        table.add_row(
            c,
            fmt_metric(r.get("image_auroc")),
            fmt_metric(r.get("pixel_auroc")),
            fmt_metric(r.get("aupro")),
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


def eval_command(
    *,
    run: Path,
    data: Path,
    category: str | None,
    out: Path | None,
    cache_dir: Path | None,
    device: str,
    precision: str,
    memory_weight: float | None = None,
    seed: int,
    ui: UI,
) -> dict[str, dict[str, Any]]:
    import threedsr

    from threedsr_cli.libs import check_category, load_detector, seed_everything

    seed_everything(seed)
    detector = load_detector(run, device, precision, memory_weight)
    cat = category or detector.category
    if cat is None:
        from threedsr_cli.errors import CLIError

        raise CLIError(f"{run}: the detector names no category; pass --category")
    check_category(data, cat)
    arith = "bf16" if detector.bf16 else "fp32"
    ui.info(f"evaluating the {detector.setup} detector of {run} on {data}/{cat}/test ({arith})")
    with ui.stage(f"evaluate {cat}") as progress:
        results = threedsr.evaluate(
            detector,
            data,
            cat,
            cache_dir=None if cache_dir is None else str(cache_dir),
            progress=progress,
        )
    summary = metrics_summary(results)
    folder = (
        Path(out) if out is not None else (Path(run) if Path(run).is_dir() else Path(run).parent)
    )
    path = atomic_write_json(folder / "metrics.json", summary)
    atomic_write_text(
        folder / "metrics.md", threedsr.format_markdown(summary, setup=detector.setup) + "\n"
    )
    print_metrics(ui, summary, f"{detector.setup} detector on {cat}")
    ui.info(f"wrote {path}")
    return summary
