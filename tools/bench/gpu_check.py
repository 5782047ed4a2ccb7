"""The measurements of ``tools/gpu_check.sh``, written as one markdown report.

Sections (paper widths at 384² on the GPU; ``--dry-run``: tiny widths and sizes on the CPU, every
code path still taken, for the CPU test that keeps this script working):

1. CUDA tests: the pytest summary the shell script hands over (``--pytest-log``, ``--pytest-rc``).
2. Inference img/s of a ``threedsr.Detector`` of the 3DSR network (``method="3dsr"``) for the
   three setups, batch 1 and 8, fp32 and bf16, against the reference loop (``bench_threedsr.reference_forward``: one image at a time, eager
   fp32, no_grad), on the same random weights, with the max map difference to the reference.
3. bf16 vs fp32 anomaly maps and scores of the same Detector weights and inputs.
3b. Precision (issue 25): the ``paper`` preset's Detector in fp32 (TF32 off, the reference
   distance form) against the reference loop in fp32 (must be <= 1e-4), and how far tf32, bf16
   and the fast distance form move the maps from that fp32 Detector (:func:`bench_precision`).
4. Stage-1 (``vqcore.train_dada``, host and device samplers) and stage-2 (``threedsr.train_detector``, method ``3dsr``)
   it/s and peak GPU memory at the ``paper`` presets' widths and batches, fp32 and bf16.

Every speed row also gives the achieved TFLOP/s and the fraction of the device's dense peak
(PyTorch-counted FLOPs, ``tools/bench/flops.py``; counted once per stage and setup).

Weights are random, so map differences say how far the arithmetic moves a map, not how a trained
detector's metrics move.

Stage 2 runs with the ``device`` batch sampler (``AnomalyConfig.sampler``: torch on the GPU, no
host sync in the step); rgbd bf16 runs again with the ``host`` sampler (numpy/numba, the path
before issue 25) and with ``cudnn.benchmark`` off (peak memory without cuDNN's autotune
workspaces). The setup column names the sampler.

    uv run python tools/bench/gpu_check.py --out /tmp/gpu            # on a GPU machine
    uv run python tools/bench/gpu_check.py --out /tmp/gpu --dry-run  # CPU smoke run
"""

from __future__ import annotations

import argparse
import datetime
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from gpu_check_maps import PAPER_TOLERANCE, bench_inference, bench_precision, precision_lines
from gpu_check_setup import DRY, PRECISIONS, REAL, SETUPS, Sizes, fmt_flops
from gpu_check_training import STAGE1_RUNS, bench_stage1, bench_stage2


def _fmt_peak(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def write_report(
    out: Path,
    sz: Sizes,
    pytest_summary: str,
    inference: list[dict[str, Any]],
    bf16: list[dict[str, float]],
    training: list[dict[str, Any]],
    seconds: float,
    precision: list[dict[str, Any]] | None = None,
) -> Path:
    dev = torch.device(sz.device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "CPU"
    lines = [
        "# GPU check"
        + (" (DRY RUN on the CPU: tiny sizes, figures mean nothing)" if sz.tiny else ""),
        "",
        f"- date: {datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')}",
        f"- device: {name}; torch {torch.__version__}, CUDA {torch.version.cuda}",
        f"- widths: {'tiny (dry run)' if sz.tiny else 'paper'}; random weights; method 3dsr "
        "(the 3DSR network's map, no descriptor memory)",
        f"- measurements took {seconds:.0f} s",
        "",
        "## CUDA tests",
        "",
        pytest_summary.strip() or "(no pytest output)",
        "",
        f"## Inference at {sz.size}², {sz.images} images, best of {sz.repeats}",
        "",
        "Reference: the authors' test loop (one image at a time, eager fp32, no_grad). max diff: "
        "largest |map - reference map| over all pixels.",
        "",
        "TFLOP/s: PyTorch-counted matmul and convolution FLOPs (tools/bench/flops.py) times the "
        "rate; % of peak: of the device's dense peak for the precision (fp32: TF32 off).",
        "",
        "| setup | batch | precision | reference img/s | threedsr img/s | speed-up | max diff | "
        "TFLOP/s | % of peak |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in inference:
        lines.append(
            f"| {r['setup']} | {r['batch']} | {r['precision']} | {r['ref_ips']:.1f} | "
            f"{r['ips']:.1f} | {r['ips'] / r['ref_ips']:.2f}x | {r['max_diff']:.1e} | "
            f"{fmt_flops(r)} |"
        )
    lines += [
        "",
        f"## bf16 vs fp32 maps (same weights and inputs, batch {sz.batches[-1]})",
        "",
        "| setup | max smoothed-map diff | mean | max raw-map diff | raw pixels > 1e-2 | "
        "max score diff |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in bf16:
        lines.append(
            f"| {r['setup']} | {r['map_max']:.1e} | {r['map_mean']:.1e} | {r['raw_max']:.1e} | "
            f"{100 * r['frac_over_1e2']:.2f} % | {r['score_max']:.1e} |"
        )
    if precision:
        lines += precision_lines(sz, precision)
    lines += [
        "",
        "## Training it/s and peak memory (paper presets' widths and batches)",
        "",
        "it/s: the last logged window (warm-up excluded); peak: torch.cuda.max_memory_allocated.",
        "",
        "| stage | setup | precision | batch | size | it/s | peak GiB | TFLOP/s | % of peak |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in training:
        lines.append(
            f"| {r['stage']} | {r['setup']} | {r['precision']} | {r['batch']} | {r['size']} | "
            f"{r['its']:.2f} | {_fmt_peak(r['peak'])} | {fmt_flops(r)} |"
        )
    path = out / "gpu-report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _pytest_summary(log: Path | None, rc: int | None) -> str:
    if log is None:
        return "not run"
    text = log.read_text(errors="replace") if log.exists() else ""
    tail = [ln for ln in text.splitlines() if ln.strip()][-1:] or ["(empty log)"]
    return f"exit code {rc}: `{tail[0].strip('= ')}`"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", type=Path, required=True, help="folder for gpu-report.md")
    ap.add_argument("--dry-run", action="store_true", help="tiny CPU run of every code path")
    ap.add_argument("--pytest-log", type=Path, default=None)
    ap.add_argument("--pytest-rc", type=int, default=None)
    args = ap.parse_args()
    sz = DRY if args.dry_run else REAL
    if sz.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: no CUDA device; use --dry-run on a CPU")
    if sz.device == "cuda":
        torch.backends.cudnn.benchmark = True
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    summary = _pytest_summary(args.pytest_log, args.pytest_rc)
    inference: list[dict[str, Any]] = []
    bf16: list[dict[str, float]] = []
    training: list[dict[str, Any]] = []
    precision: list[dict[str, Any]] = []

    def report() -> Path:
        # Rewritten after every measurement: a run cut short by the time limit keeps its figures.
        return write_report(
            args.out, sz, summary, inference, bf16, training, time.perf_counter() - t0, precision
        )

    for setup in SETUPS:
        precision += bench_precision(setup, sz)
        report()
        print(f"precision {setup}: fp32 vs reference {precision[-4]['map_max']:.1e}", flush=True)

    for setup in SETUPS:
        rows, diff = bench_inference(setup, sz)
        inference += rows
        bf16.append(diff)
        report()
        print(f"inference {setup}: done", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for setup, p, sampler in STAGE1_RUNS:
            training.append(bench_stage1(setup, p, sz, Path(tmp), sampler))
            report()
            print(f"stage 1 {setup} {p} {sampler}: {training[-1]['its']:.2f} it/s", flush=True)
        for setup in SETUPS:
            for p in PRECISIONS:
                training.append(bench_stage2(setup, p, sz, Path(tmp)))
                report()
                print(f"stage 2 {setup} {p}: {training[-1]['its']:.2f} it/s", flush=True)
        training.append(bench_stage2("rgbd", "bf16", sz, Path(tmp), "host"))
        report()
        print(f"stage 2 rgbd bf16 host sampler: {training[-1]['its']:.2f} it/s", flush=True)
        before = torch.backends.cudnn.benchmark
        torch.backends.cudnn.benchmark = False
        try:
            off = ", cudnn.benchmark off"
            training.append(bench_stage2("rgbd", "bf16", sz, Path(tmp), "device", off))
        finally:
            torch.backends.cudnn.benchmark = before
        report()
    path = report()
    print(f"wrote {path}")
    failed = [r["setup"] for r in precision if r["bound"] is not None and r["map_max"] > r["bound"]]
    if failed:
        raise SystemExit(
            f"error: paper preset fp32 maps differ from the reference loop by more than "
            f"{PAPER_TOLERANCE:g} ({', '.join(failed)}); see {path}"
        )


if __name__ == "__main__":
    main()
