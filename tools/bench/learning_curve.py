"""Stage-2 learning curve: I-AUROC, P-AUROC and AUPRO against training wall minutes and
iterations, for the fixed synthetic benchmark and for real data (the cable_gland copy). The
detector is the ``--preset``'s (``cpu`` by default; ``gpu`` is the paper's network on a short
schedule), the 3DSR network alone (method ``3dsr``); ``--set method='"fused"'`` adds the
descriptor memory, and every point then scores the fused map and each of its two maps alone.

One training run is continued checkpoint by checkpoint (the learning-rate milestone stays at 80 %
of the last budget), and the detector is evaluated after each budget. Wall minutes count
training only (evaluation excluded).

    # the fixed synthetic benchmark (seed 1000, never tuned on), one class:
    uv run python tools/bench/learning_curve.py --synthetic runs/bench-synth --category puck \\
        --budgets 200 400 800 1600 --out runs/lc-puck
    # real data (THREEDSR_CABLE_GLAND = the folder holding cable_gland/):
    uv run python tools/bench/learning_curve.py --data $THREEDSR_CABLE_GLAND \\
        --category cable_gland --budgets 200 400 800 1600 --out runs/lc-cg
    # on a GPU, the gpu preset fused, points at training minutes (sized by a warm-up's speed):
    python3 tools/bench/learning_curve.py --data cable_gland.pack --category cable_gland \\
        --preset gpu --device cuda --set method='"fused"' --minutes 2 5 10 --out runs/lc-gpu
    # a PNG of one or more finished curves:
    uv run python tools/bench/learning_curve.py --plot runs/lc-*/curve.json --png docs/images/lc.png
    # the descriptor memory (method `memory`) trains nothing, so iterations do not change it:
    # its curve is over the good scans stored (tools/bench/memory_features.py --train-scans, one
    # JSON line per row); a PNG of such rows:
    uv run python tools/bench/learning_curve.py --plot-scans runs/scans-*.jsonl \
        --png docs/images/learning-curve-scans.png

Extra detector options: ``--set key=value`` (JSON values), e.g. ``--set unet_input='"general"'``.
"""

from __future__ import annotations

import os

# Before torch loads: busy-waiting OpenMP workers slow a shared 2-core machine ~10x.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

#: The synthetic benchmark's definition. Fixed before any tuning and never changed: tuning uses
#: other seeds (the scratch runs used seed 7).
SYNTHETIC_BENCHMARK = dict(size=256, n_train=60, n_validation=10, n_test_per_type=20, seed=1000)


def add_data_arguments(
    ap: argparse.ArgumentParser, *, required: bool = True, many: bool = True
) -> None:
    """``--synthetic FOLDER`` (the fixed benchmark) or ``--data ROOT``, ``--category``, ``--setup``:
    the data options every bench script here shares."""
    src = ap.add_mutually_exclusive_group(required=required)
    src.add_argument("--synthetic", type=Path, help="folder of the fixed synthetic benchmark")
    src.add_argument("--data", type=Path, help="a dataset root (MVTec 3D-AD layout)")
    if many:
        ap.add_argument("--category", nargs="+", default=["puck"])
    else:
        ap.add_argument("--category", default="puck")
    ap.add_argument("--setup", default="rgbd", choices=["rgbd", "depth", "rgb"])


def data_root(args: argparse.Namespace) -> Path:
    """The dataset root the options name (the synthetic benchmark generated on first use)."""
    return synthetic_benchmark(args.synthetic) if args.synthetic else args.data


def synthetic_benchmark(root: Path) -> Path:
    """Generate the benchmark under ``root`` once (same arguments, byte-identical files)."""
    import depthsim.scenes

    if not (root / "scenes.json").exists():
        depthsim.scenes.generate_dataset(root, **SYNTHETIC_BENCHMARK)
    return root


def run_curve(args: argparse.Namespace) -> dict[str, Any]:
    import threedsr
    import torch
    import vqcore

    torch.set_num_threads(args.threads)
    data = data_root(args)
    extra = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)}
    budgets = sorted(args.budgets)
    if args.minutes:
        # Sized after a warm-up segment measures the speed (its milestone out of reach; each
        # later call resets it to 80 % of the last budget).
        budgets = [args.warmup]
    cfg = threedsr.DetectorConfig.preset(
        args.preset,
        setup=args.setup,
        data_root=str(data),
        category=args.category,
        backbone=args.dada,
        out_dir=str(args.out / "detector"),
        cache_dir=str(args.out / "cache"),
        seed=args.seed,
        device=args.device,
        precision=args.precision,
        lr_milestones=(10**9,) if args.minutes else vqcore.milestones_at(budgets[-1]),
        **extra,
    )
    # A fused detector's curve also scores each of its two maps alone: does fusing beat both?
    methods = [cfg.method] + (["3dsr", "memory"] if cfg.method == "fused" else [])
    points = []
    train_s = 0.0
    if args.minutes:
        start = time.perf_counter()
        threedsr.train_detector(cfg.replace(iterations=args.warmup))
        train_s += time.perf_counter() - start
        rate = measured_rate(args.out / "detector" / "train_history.json")
        budgets = minute_budgets(args.minutes, rate, args.warmup)
        cfg = cfg.replace(lr_milestones=vqcore.milestones_at(budgets[-1]))
        print(json.dumps({"warmup_it_per_s": round(rate, 2), "budgets": budgets}), flush=True)
    for n in budgets:
        start = time.perf_counter()
        threedsr.train_detector(cfg.replace(iterations=n))
        train_s += time.perf_counter() - start
        by_method = {}
        for method in methods:
            det = threedsr.Detector.load(args.out / "detector", device=args.device, method=method)
            res = threedsr.evaluate(det, data, args.category, native=False, cache_dir=cfg.cache_dir)
            r = res[args.category]
            by_method[method] = {
                key: r[key] for key in ("image_auroc", "pixel_auroc", "aupro", "per_defect_type")
            }
        point = {
            "iterations": n,
            "train_minutes": round(train_s / 60, 3),
            **by_method[cfg.method],
            "by_method": by_method,
        }
        points.append(point)
        print(json.dumps(point), flush=True)
    # The last detector's network map under each inference arithmetic: what tf32 and bf16 do
    # to detection, not only to the maps.
    by_precision = {}
    for precision in args.final_precisions:
        det = threedsr.Detector.load(
            args.out / "detector", device=args.device, method="3dsr", precision=precision
        )
        r = threedsr.evaluate(det, data, args.category, native=False, cache_dir=cfg.cache_dir)
        r = r[args.category]
        by_precision[precision] = {k: r[k] for k in ("image_auroc", "pixel_auroc", "aupro")}
        print(json.dumps({"precision": precision, **by_precision[precision]}), flush=True)
    # The heads take their widths from the backbone: their size says whether a figure is the
    # paper's network (about 55 M on a paper-width backbone) or narrow heads on the shipped one.
    network = threedsr.Detector.load(args.out / "detector", device="cpu", method="3dsr").network
    heads = sum(p.numel() for n, p in network.named_parameters() if not n.startswith("backbone."))
    result = {
        "data": str(data),
        "category": args.category,
        "setup": args.setup,
        "preset": args.preset,
        "method": cfg.method,
        "device": str(vqcore.resolve_device(args.device)),
        "backbone": args.dada or "pretrained",
        "heads_parameters": heads,
        "threads": args.threads,
        "options": extra,
        "points": points,
        "final_by_precision": by_precision,
        "command": "python tools/bench/learning_curve.py " + " ".join(args.argv),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "curve.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def measured_rate(history: Path) -> float:
    """Training iterations per second of a finished call: the median of its logged rates,
    the first (start-up and autotune) left out when there are others."""
    rates = [row["it_per_s"] for row in json.loads(history.read_text())]
    rates = rates[1:] or rates
    return float(sorted(rates)[len(rates) // 2])


def minute_budgets(minutes: list[float], it_per_s: float, done: int) -> list[int]:
    """Iteration budgets that reach ``minutes`` of training at ``it_per_s``, past ``done``: one
    per distinct minute, each past the one before, so a slow warm-up (a loaded machine) still
    gives every point asked for.

    Example:
        >>> minute_budgets([2, 5], 10.0, 100)
        [1200, 3000]
        >>> minute_budgets([0.01], 10.0, 100)
        [101]
        >>> minute_budgets([0.02, 0.04], 0.5, 2)
        [3, 4]
    """
    budgets: list[int] = []
    for m in sorted(set(minutes)):
        budgets.append(max(budgets[-1] + 1 if budgets else done + 1, round(m * 60 * it_per_s)))
    return budgets


METRICS = ("image_auroc", "pixel_auroc", "aupro")


def _draw(
    lines: dict[str, tuple[list[float], list[dict[str, Any]]]],
    png: Path,
    *,
    xlabel: str,
    ylim: tuple[float, float],
    log_x: bool = False,
) -> None:
    """One panel per metric, one line per label: ``lines[label] = (x, points)``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), sharex=True)
    for label, (x, points) in lines.items():
        for ax, key in zip(axes, METRICS, strict=True):
            ax.plot(x, [p[key] for p in points], marker="o", label=label)
            ax.set_title(key.replace("_", " ").replace("auroc", "AUROC").replace("aupro", "AUPRO"))
            ax.set_xlabel(xlabel)
            if log_x:
                ax.set_xscale("log")
                ticks = sorted({v for xs, _ in lines.values() for v in xs})
                ax.set_xticks(ticks, [f"{v:g}" for v in ticks])
                ax.minorticks_off()
            ax.set_ylim(*ylim)
            ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    print(f"wrote {png}")


def plot(curves: list[Path], png: Path) -> None:
    """Finished stage-2 curves (``curve.json``) against training wall minutes."""
    lines = {}
    for path in curves:
        c = json.loads(path.read_text())
        lines[f"{c['category']} ({c['setup']}, {c.get('method', '3dsr')})"] = (
            [p["train_minutes"] for p in c["points"]],
            c["points"],
        )
    _draw(lines, png, xlabel="stage-2 training wall minutes", ylim=(0.4, 1.0))


def plot_scans(rows_files: list[Path], png: Path) -> None:
    """I-AUROC, P-AUROC and AUPRO against the good training scans in the memory, one line per
    (category, setup) in ``memory_features.py`` JSON-lines output."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for path in rows_files:
        for text in path.read_text().splitlines():
            if text.strip().startswith("{"):
                row = json.loads(text)
                k = row.get("local_k") or 0  # rows written before the option: plain distances
                scale = f"local scale k={k}" if k else "plain distances"
                rows.setdefault(f"{row['category']} ({row['setup']}, {scale})", []).append(row)
    lines = {}
    for label, points in rows.items():
        points.sort(key=lambda r: r["train_scans"])
        lines[label] = ([r["train_scans"] for r in points], points)
    _draw(lines, png, xlabel="good training scans in the memory", ylim=(0.5, 1.0), log_x=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_arguments(ap, required=False, many=False)
    ap.add_argument("--dada", default=None, help="stage-1 backbone (default: the pretrained one)")
    ap.add_argument("--budgets", type=int, nargs="+", default=[200, 400, 800, 1600])
    ap.add_argument(
        "--minutes",
        type=float,
        nargs="+",
        default=None,
        help="budgets in training minutes instead of --budgets: iterations sized by the speed "
        "of a --warmup segment",
    )
    ap.add_argument("--warmup", type=int, default=300, help="iterations of the warm-up segment")
    ap.add_argument("--preset", default="cpu", choices=["cpu", "gpu", "paper"])
    ap.add_argument(
        "--final-precisions",
        nargs="*",
        default=[],
        choices=["fp32", "tf32", "bf16"],
        help="also score the last detector's 3DSR map under each inference arithmetic",
    )
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda")
    ap.add_argument("--precision", default=None, help="the preset's when unset")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--set", action="append", default=[], help="detector option key=json")
    ap.add_argument("--out", type=Path, default=Path("runs/learning-curve"))
    ap.add_argument("--plot", type=Path, nargs="+", help="curve.json files to draw")
    ap.add_argument(
        "--plot-scans", type=Path, nargs="+", help="memory_features.py JSON-lines files to draw"
    )
    ap.add_argument("--png", type=Path, default=Path("docs/images/learning-curve.png"))
    args = ap.parse_args()
    args.argv = os.sys.argv[1:]
    if args.plot_scans:
        plot_scans(args.plot_scans, args.png)
        return
    if args.plot:
        plot(args.plot, args.png)
        return
    if not (args.synthetic or args.data):
        ap.error("give --synthetic FOLDER or --data ROOT (or --plot / --plot-scans)")
    run_curve(args)


if __name__ == "__main__":
    main()
