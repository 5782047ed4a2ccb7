"""Benchmark admetrics against scikit-learn, anomalib and adeval (wall time, peak memory, values).

Baselines are benchmark-only dependencies, never package dependencies:

    uv run --with adeval --with anomalib python tools/bench/bench_admetrics.py

``--baseline-src DIR`` also times an older admetrics copied into ``DIR/admetrics_old`` (for
instance ``git show <commit>:packages/admetrics/src/admetrics/<file>`` for every file), in the
same process, to measure a change against the code it replaces.

Prints one Markdown table per workload (200 maps of 256^2 and 100 maps of 800^2 with blob masks).
Every method runs in this process on the same arrays; peak memory is the rise of the process's
resident-set high-water mark (VmHWM, reset through /proc/self/clear_refs) above the resident
size before the call (after gc and malloc_trim), so it counts numpy, torch and OpenCV
allocations alike.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import admetrics as am
import numpy as np
from scipy import ndimage

WORKLOADS = {"256": (200, 256), "800": (100, 800)}


# --- data ---------------------------------------------------------------------------------------


def make_workload(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Blob masks (uint8, 1/3 of the images normal, 0.5-6 % anomalous area in the others) and
    float32 maps in [0, 1] that respond to the defects plus smooth and pixel noise."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, size, size), dtype=np.uint8)
    maps = np.empty((n, size, size), dtype=np.float32)
    low = max(size // 8, 8)
    zoom = size / low
    for i in range(n):
        field = ndimage.zoom(rng.standard_normal((low, low)), zoom, order=1)[:size, :size]
        field = ndimage.gaussian_filter(field, sigma=size / 64)
        if i % 3:
            masks[i] = field > np.quantile(field, 1.0 - rng.uniform(0.005, 0.06))
        noise = ndimage.zoom(rng.standard_normal((low, low)), zoom, order=1)[:size, :size]
        response = ndimage.uniform_filter(masks[i].astype(np.float32), size=max(size // 32, 3))
        raw = 0.55 * response + 0.15 * noise + 0.08 * rng.standard_normal((size, size))
        maps[i] = raw
    maps -= maps.min()
    maps /= maps.max()
    return masks, maps


# --- measurement --------------------------------------------------------------------------------


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _trim_heap() -> None:
    """Return freed heap pages to the OS so the next peak is measured from a clean baseline."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


@dataclass
class Result:
    name: str
    metric: str
    seconds: float
    peak_mib: float | None
    value: float | None
    note: str = ""


def measure_once(fn: Callable[[], float]) -> tuple[float, float | None, float]:
    """(seconds, peak MiB or None, value) of one call."""
    gc.collect()
    _trim_heap()
    can_reset = _reset_peak()
    before = _status_kib("VmRSS")
    t0 = time.perf_counter()
    value = fn()
    seconds = time.perf_counter() - t0
    peak = (_status_kib("VmHWM") - before) / 1024 if can_reset else None
    return seconds, peak, float(value)


def measure_rounds(
    methods: list[tuple[str, str, Callable[[], float]]], repeats: int
) -> list[Result]:
    """Best of ``repeats`` rounds, each round calling every method once in turn, so that a
    change of machine load over the run hits every method alike (methods over 5 s run once)."""
    times: dict[str, list[float]] = {name: [] for name, _, _ in methods}
    peaks: dict[str, float | None] = {}
    values: dict[str, float] = {}
    failed: dict[str, str] = {}
    for attempt in range(repeats):
        for name, _, fn in methods:
            if name in failed or (attempt and times[name][0] > 5.0):
                continue
            try:
                seconds, peak, values[name] = measure_once(fn)
            except Exception as exc:
                failed[name] = f"failed: {type(exc).__name__}: {exc}"
                continue
            times[name].append(seconds)
            old = peaks.get(name)
            peaks[name] = peak if old is None or peak is None else max(old, peak)
            print(f"  round {attempt}: {name}: {seconds:.4f} s", flush=True)
    return [
        Result(name, metric, float("nan"), None, None, failed[name])
        if name in failed
        else Result(name, metric, min(times[name]), peaks.get(name), values[name])
        for name, metric, _ in methods
    ]


# --- methods ------------------------------------------------------------------------------------


def admetrics_methods(masks, maps) -> list[tuple[str, str, Callable[[], float]]]:
    def streaming_exact() -> float:
        metrics = am.AnomalyMetrics()
        for i in range(0, len(masks), 25):
            metrics.update(masks[i : i + 25], maps[i : i + 25])
        return metrics.compute()["aupro"]

    def streaming_binned() -> float:
        metrics = am.AnomalyMetrics(bins=4096, score_range=(0.0, 1.0))
        for i in range(0, len(masks), 25):
            metrics.update(masks[i : i + 25], maps[i : i + 25])
        return metrics.compute()["aupro"]

    return [
        ("admetrics.pixel_auroc", "P-AUROC", lambda: am.pixel_auroc(masks, maps)),
        ("admetrics.aupro (exact)", "AUPRO", lambda: am.aupro(masks, maps)),
        (
            "admetrics.aupro (num_thresholds=100)",
            "AUPRO",
            lambda: am.aupro(masks, maps, num_thresholds=100),
        ),
        ("admetrics.AnomalyMetrics exact (all 5 metrics)", "AUPRO", streaming_exact),
        ("admetrics.AnomalyMetrics bins=4096 (all 5)", "AUPRO", streaming_binned),
    ]


def previous_methods(masks, maps):
    """The older admetrics copy given by --baseline-src (imported as ``admetrics_old``)."""
    import admetrics_old as old

    return [
        (
            "admetrics (previous: sort all).pixel_auroc",
            "P-AUROC",
            lambda: old.pixel_auroc(masks, maps),
        ),
        ("admetrics (previous: sort all).aupro", "AUPRO", lambda: old.aupro(masks, maps)),
    ], ""


def sklearn_methods(masks, maps):
    try:
        from sklearn.metrics import roc_auc_score
    except ImportError as exc:
        return [], f"scikit-learn unavailable: {exc}"
    return [
        ("sklearn roc_auc_score", "P-AUROC", lambda: roc_auc_score(masks.ravel() > 0, maps.ravel()))
    ], ""


def anomalib_methods(masks, maps):
    try:
        import torch
        from anomalib.metrics.aupro import _AUPRO
    except Exception as exc:
        return [], f"anomalib unavailable: {type(exc).__name__}: {exc}"

    def run() -> float:
        metric = _AUPRO(fpr_limit=0.3)
        t_maps = torch.from_numpy(maps)
        t_masks = torch.from_numpy(masks)
        for i in range(0, len(masks), 25):
            metric.update(t_maps[i : i + 25], t_masks[i : i + 25])
        return float(metric.compute())

    return [("anomalib _AUPRO (torchmetrics, CPU)", "AUPRO", run)], ""


def adeval_methods(masks, maps):
    try:
        if not hasattr(np, "trapz"):  # adeval 1.1 calls np.trapz, removed in NumPy 2.4
            np.trapz = np.trapezoid  # type: ignore[attr-defined]  # noqa: NPY201
        import adeval
    except Exception as exc:
        return [], f"adeval unavailable: {type(exc).__name__}: {exc}"

    def one_shot() -> float:
        _, _, pro = adeval.auroc_aupr_aupro(maps, masks)
        return pro

    def one_shot_auroc() -> float:
        return adeval.auroc(maps, masks)

    def accumulator() -> float:
        acc = adeval.EvalAccumulator(0.0, 1.0, 0.0, 1.0)
        for i in range(0, len(masks), 25):
            acc.add_anomap_batch(maps[i : i + 25], masks[i : i + 25])
        return acc.summary()["p_aupro"]

    note = "" if adeval.HAS_CUDA else "no CUDA here: EvalAccumulatorCuda cannot run, CPU paths used"
    return [
        ("adeval.auroc (CPU, 1000 bins)", "P-AUROC", one_shot_auroc),
        ("adeval.auroc_aupr_aupro (CPU, 1000 bins)", "AUPRO", one_shot),
        ("adeval.EvalAccumulator (CPU, 1000 bins)", "AUPRO", accumulator),
    ], note


# --- main ---------------------------------------------------------------------------------------


def run_workload(key: str, args: argparse.Namespace) -> str:
    n, size = WORKLOADS[key]
    t0 = time.perf_counter()
    masks, maps = make_workload(n, size, seed=args.seed)
    gen = time.perf_counter() - t0
    exact_aupro = am.aupro(masks, maps)
    exact_auroc = am.pixel_auroc(masks, maps)
    # warm-up on a tiny problem first: numba compilation, torch/OpenCV first-call costs
    small_masks, small_maps = make_workload(3, 64, seed=1)
    notes: list[str] = []
    methods = admetrics_methods(masks, maps)
    for _, _, fn in admetrics_methods(small_masks, small_maps):
        fn()
    factories = [("sklearn", sklearn_methods)]
    if args.baseline_src:
        factories.insert(0, ("previous", previous_methods))
    for enabled, factory in (
        *factories,
        ("anomalib", anomalib_methods),
        ("adeval", adeval_methods),
    ):
        if enabled in args.skip:
            continue
        found, note = factory(masks, maps)
        methods += found
        if note:
            notes.append(note)
        warm, _ = factory(small_masks, small_maps)
        for _, _, fn in warm:
            try:
                fn()
            except Exception:
                continue

    results = measure_rounds(methods, args.repeats)

    best = {}
    for r in results:
        if not r.name.startswith("admetrics") and np.isfinite(r.seconds):
            best[r.metric] = min(best.get(r.metric, np.inf), r.seconds)
    exact = {"AUPRO": exact_aupro, "P-AUROC": exact_auroc}
    anomalous = int((masks > 0).sum())
    lines = [
        f"### {n} maps of {size}x{size} ({n * size * size / 1e6:.1f} M pixels, "
        f"{anomalous / masks.size:.2%} anomalous, {int((masks.reshape(n, -1).any(1)).sum())} anomalous images; "
        f"data generated in {gen:.1f} s)",
        "",
        "| method | metric | wall s | peak MiB | value | value - exact | fastest baseline / this "
        "| each baseline / this |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        ratio = best.get(r.metric, np.nan) / r.seconds if np.isfinite(r.seconds) else np.nan
        value = "—" if r.value is None else f"{r.value:.6f}"
        diff = "—" if r.value is None else f"{r.value - exact[r.metric]:+.2e}"
        peak = "—" if r.peak_mib is None else f"{r.peak_mib:.0f}"
        ratio_s = "—" if not np.isfinite(ratio) else f"{ratio:.2f}x"
        each = "—"
        if r.name.startswith("admetrics") and np.isfinite(r.seconds):
            each = (
                ", ".join(
                    f"{b.name.split(' ')[0]} {b.seconds / r.seconds:.2f}x"
                    for b in results
                    if b.metric == r.metric
                    and not b.name.startswith("admetrics")
                    and np.isfinite(b.seconds)
                )
                or "—"
            )
        lines.append(
            f"| {r.name}{' (' + r.note + ')' if r.note else ''} | {r.metric} | {r.seconds:.3f} "
            f"| {peak} | {value} | {diff} | {ratio_s} | {each} |"
        )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines.append(f"\nLoad average at the end (1/5/15 min): {load} on {os.cpu_count()} cores.")
    for note in notes:
        lines.append(f"\nNote: {note}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--workloads", default="256,800", help="comma list of: " + ",".join(WORKLOADS)
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="rounds (each method once per round), best kept; methods over 5 s run once",
    )
    parser.add_argument(
        "--skip", default="", help="comma list of baselines to skip: sklearn,anomalib,adeval"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--baseline-src", default="", help="folder holding an older copy as admetrics_old/"
    )
    args = parser.parse_args()
    args.skip = {s for s in args.skip.split(",") if s}
    if args.baseline_src:
        sys.path.insert(0, args.baseline_src)
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, numpy {np.__version__}")
    for key in args.workloads.split(","):
        print(run_workload(key, args))
        print()


if __name__ == "__main__":
    main()
