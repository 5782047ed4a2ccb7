"""What the demo shows: figures, report.md / report.html and the terminal table.

Kept apart from the pipeline in ``demo.py`` because it only reads what the pipeline produced
(metrics, the evaluated test split, display scales) and is where the presentation changes; the
comparison it draws is always the rgbd detector against the rgb one (``SETUPS``), since the point
of the demo is the depth-only defects an RGB detector cannot see.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from threedsr_cli.commands.demo_profile import SETUPS

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from threedsr import EvaluatedSamples

    from threedsr_cli.commands.demo_profile import DemoProfile
    from threedsr_cli.map_scale import MapScale
    from threedsr_cli.overlays import OverlayRow
    from threedsr_cli.ui import UI

__all__ = [
    "demo_method",
    "depth_only_verdict",
    "gather_test_results",
    "print_summary",
    "report_text",
    "write_figures",
]


def _overlay_samples(types: list[str]) -> list[tuple[str, int]]:
    """(defect type, test index) of the samples drawn as overlays: the first two of each type (the
    first good one is also every defective overlay's reference row)."""
    order = ["good", *sorted(t for t in set(types) if t != "good")]
    return [(t, i) for t in order for i in [j for j, tt in enumerate(types) if tt == t][:2]]


def demo_method(metrics: dict[str, dict[str, Any]], cat: str) -> str:
    """The method that made the demo's maps (both detectors have it), which every figure, table
    and heading of the report names."""
    return str(metrics[SETUPS[0]][cat].get("method", "memory"))


def gather_test_results(
    ui: UI, samples: dict[str, EvaluatedSamples], preprocess: dict[str, Any]
) -> dict[str, Any]:
    """The test split as ``threedsr.evaluate`` saw it (``samples``: setup -> EvaluatedSamples),
    plus the few samples drawn as overlays, preprocessed again for their RGB and depth."""
    import pcprep

    first = next(iter(samples.values()))
    picks = sorted({i for _, i in _overlay_samples(first.defect_types)})
    with ui.stage("preprocess overlay samples", len(picks)) as progress:
        prepared = pcprep.preprocess_refs(
            [first.refs[i] for i in picks], None, progress=progress, **preprocess
        )
    return {
        "prepared": dict(zip(picks, prepared, strict=True)),
        "labels": first.labels,
        "types": first.defect_types,
        "gts": first.gts,
        "maps": {s: r.maps for s, r in samples.items()},
        "scores": {s: r.scores for s, r in samples.items()},
    }


def write_figures(
    ui: UI,
    out: Path,
    profile: DemoProfile,
    meta: dict[str, Any],
    metrics: dict[str, dict[str, Any]],
    test: dict[str, Any],
    scales: dict[str, MapScale],
) -> list[tuple[str, Path]]:
    from threedsr_cli import report as rp

    cat = profile.category
    method = demo_method(metrics, cat)
    modality: dict[str, str] = dict(meta.get("defect_types", {}))
    files: dict[str, Path] = {}
    with ui.stage("write figures", 3 + len(set(test["types"]))) as progress:
        files["roc"] = rp.plot_roc(
            {s: (test["labels"], test["scores"][s]) for s in SETUPS},
            out / "roc.png",
            title=f"Image ROC ({cat}, {method} maps)",
        )
        progress(1)
        files["pro"] = rp.plot_pro(
            {s: (test["gts"], test["maps"][s]) for s in SETUPS},
            out / "pro.png",
            title=f"PRO curve ({cat}, {method} maps)",
        )
        progress(2)
        per_type = {s: metrics[s][cat]["per_defect_type"] for s in SETUPS}
        files["per_type"] = rp.plot_per_defect_type(
            per_type,
            modality,
            out / "per_defect_type.png",
            title=f"Image AUROC per defect type ({method} maps)",
        )
        progress(3)
        overlays = _overlays(out, test, modality, scales, method, lambda k: progress(3 + k))
    return overlays


def _overlays(
    out: Path,
    test: dict[str, Any],
    modality: dict[str, str],
    scales: dict[str, MapScale],
    method: str,
    progress: Callable[[int], None],
) -> list[tuple[str, Path]]:
    """The overlay figures, each map on its detector's fixed scale (``scales``, from
    ``map_scale.display_scale``). A defective scan gets the first good test scan as a reference row
    on the same scale: the defect is read against what the detector paints on a good scan."""
    from threedsr_cli.overlays import overlay_figure

    ref = next((j for j, t in enumerate(test["types"]) if t == "good"), None)
    good = None if ref is None else _overlay_row(test, ref)
    overlays: list[tuple[str, Path]] = []
    picks = _overlay_samples(test["types"])
    types = ["good", *sorted(t for t in set(test["types"]) if t != "good")]
    for k, t in enumerate(types, 1):
        for i in [j for tt, j in picks if tt == t]:
            row = _overlay_row(test, i)
            path = overlay_figure(
                row.rgb,
                row.depth,
                row.maps,
                out / "overlays" / f"{t}_{i:03d}.png",
                scale={s: scales[s].range for s in SETUPS},
                threshold={s: scales[s].threshold for s in SETUPS},
                gt=row.gt,
                title=f"{t} ({modality.get(t, 'normal')}): {method} maps",
                scores=row.scores,
                good=None if t == "good" else good,
            )
            overlays.append((t, path))
        progress(k)
    return overlays


def _overlay_row(test: dict[str, Any], i: int) -> OverlayRow:
    """Test scan ``i`` (one of the preprocessed overlay samples) as a row of an overlay figure."""
    from threedsr_cli.overlays import OverlayRow

    p = test["prepared"][i]
    return OverlayRow(
        p.rgb,
        p.depth,
        {s: test["maps"][s][i] for s in SETUPS},
        test["gts"][i],
        {s: float(test["scores"][s][i]) for s in SETUPS},
    )


def depth_only_verdict(
    metrics: dict[str, dict[str, Any]], modality: dict[str, str], cat: str
) -> str:
    """rgbd against rgb image AUROC on each depth-only defect type, in one line (metrics.json's
    ``depth_only_verdict``; empty when no depth-only type has a score from both)."""
    depth_only = sorted(t for t, m in modality.items() if m == "depth")
    parts = []
    for t in depth_only:
        a = metrics["rgbd"][cat]["per_defect_type"].get(t)
        b = metrics["rgb"][cat]["per_defect_type"].get(t)
        if a is not None and b is not None:
            parts.append(f"{t}: rgbd {100 * a:.1f} vs rgb {100 * b:.1f}")
    return "; ".join(parts)


def report_text(
    profile: DemoProfile,
    meta: dict[str, Any],
    metrics: dict[str, dict[str, Any]],
    overlays: list[tuple[str, Path]],
    timing: dict[str, float],
    out: Path,
) -> tuple[str, str]:
    from threedsr_cli import report as rp

    cat = profile.category
    modality = dict(meta.get("defect_types", {}))
    overall = rp.metrics_table({s: metrics[s][cat] for s in SETUPS})
    per_type = rp.defect_type_table(
        {s: metrics[s][cat]["per_defect_type"] for s in SETUPS}, modality
    )
    method = demo_method(metrics, cat)
    verdict = depth_only_verdict(metrics, modality, cat)
    intro = (
        f"Synthetic `depthsim.scenes` class `{cat}` ({profile.image_size} px; {profile.n_train} "
        f"good training scans, {profile.n_test_per_type} test scans per type). Stage 1: "
        + (
            f"DADA (rgbd) and an RGB-only VQ-VAE, {profile.dada_iterations} iterations each"
            if "stage 1 (rgbd + rgb)" in timing
            else "the pretrained DADA (rgbd) and RGB-only VQ-VAE that ship with threedsr"
        )
        + "; detectors: "
        + (
            "the descriptor memory (nothing trained; a kNN over hand-made descriptors of the "
            f"good scans) at {profile.detector_size} px"
            if method == "memory"
            else f"{method} (3DSR network, {profile.detector_iterations} iterations each) at "
            f"{profile.detector_size} px"
        )
        + ". All numbers in %. Dents and bumps change only the geometry "
        "(invisible in RGB), stains only the colour, cracks both."
    )
    timing_rows = [["stage", "seconds"]] + [[k, f"{v:.1f}"] for k, v in timing.items()]
    # every heading of a table or figure names the method that made its maps
    sections = {
        "metrics": f"Metrics (test split, {method} maps)",
        "types": f"Image AUROC per defect type ({method} maps)",
        "curves": f"Curves ({method} maps)",
        "maps": f"Anomaly maps ({method}; rgbd and rgb detectors, on RGB and on depth)",
    }
    rel = [(t, p.relative_to(out).as_posix()) for t, p in overlays]
    md = (
        "\n\n".join(
            [
                "# threedsr demo report",
                intro,
                f"## {sections['metrics']}",
                rp.markdown_table(overall),
                f"## {sections['types']}",
                rp.markdown_table(per_type),
                f"Depth-only defects: {verdict}.",
                "![per defect type](per_defect_type.png)",
                f"## {sections['curves']}",
                "![ROC](roc.png) ![PRO](pro.png)",
                f"## {sections['maps']}",
                "\n\n".join(f"### {t}\n\n![{t}]({r})" for t, r in rel),
                "## Timing",
                rp.markdown_table(timing_rows),
            ]
        )
        + "\n"
    )
    import html
    import re

    # the intro's Markdown code spans as <code>, not as literal backticks
    intro_html = re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(intro))
    page = rp.render_html(
        "threedsr demo report",
        [
            ("Setup", f"<p>{intro_html}</p>"),
            (sections["metrics"], rp.html_table(overall)),
            (
                sections["types"],
                rp.html_table(per_type)
                + f"<p>Depth-only defects: {html.escape(verdict)}.</p>"
                + "<img src='per_defect_type.png' alt='per defect type'>",
            ),
            (sections["curves"], "<img src='roc.png' alt='ROC'> <img src='pro.png' alt='PRO'>"),
            (
                sections["maps"],
                "\n".join(
                    f"<h3>{html.escape(t)}</h3><img src='{html.escape(r)}' alt='{html.escape(t)}'>"
                    for t, r in rel
                ),
            ),
            ("Timing", rp.html_table(timing_rows)),
        ],
    )
    return md, page


def print_summary(
    ui: UI,
    metrics: dict[str, dict[str, Any]],
    modality: dict[str, str],
    cat: str,
    out: Path,
    total_s: float,
) -> None:
    from rich.table import Table

    from threedsr_cli.report import fmt_metric

    first = metrics[SETUPS[0]][cat]
    table = Table(
        title=f"threedsr demo: {cat} (synthetic), method {first.get('method')}, "
        f"{total_s / 60:.1f} min",
        # A handful of test scans per type: one scan moves an AUROC by tens of points.
        caption=(
            f"{first.get('n_good')} good / {first.get('n_defective')} defective test scans"
            + ("; --fast: these AUROCs are noise" if first.get("n_good", 0) < 10 else "")
        ),
    )
    table.add_column("")
    table.add_column("visible in")
    for s in SETUPS:
        table.add_column(f"{s} I-AUROC", justify="right")
    for key, label in (("image_auroc", "all defects"),):
        table.add_row(label, "", *(fmt_metric(metrics[s][cat].get(key)) for s in SETUPS))
    types = sorted(metrics["rgbd"][cat]["per_defect_type"])
    for t in types:
        table.add_row(
            t,
            modality.get(t, "?"),
            *(fmt_metric(metrics[s][cat]["per_defect_type"].get(t)) for s in SETUPS),
        )
    table.add_row("P-AUROC", "", *(fmt_metric(metrics[s][cat].get("pixel_auroc")) for s in SETUPS))
    table.add_row("AUPRO@0.3", "", *(fmt_metric(metrics[s][cat].get("aupro")) for s in SETUPS))
    ui.out.print(table)
    ui.out.print(f"report: {out / 'report.html'}  (also report.md, metrics.json)")
