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
import copy
import datetime
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import vqcore
from bench_threedsr import CH, alternate_best, reference_forward
from flops import count_flops, fraction_of_peak
from threedsr import Detector, DetectorConfig, ThreeDSR, TrainData, train_detector

SETUPS = ("rgbd", "depth", "rgb")
PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class Sizes:
    """Everything the dry run shrinks."""

    device: str
    size: int  # inference side
    images: int  # images per timed pass
    batches: tuple[int, ...]
    repeats: int
    stage1_steps: int
    stage2_steps: int
    stage1_size: int
    stage1_batch: int
    stage2_size: int
    stage2_batch: int
    tiny: bool


REAL = Sizes("cuda", 384, 16, (1, 8), 3, 30, 30, 256, 64, 384, 16, tiny=False)
DRY = Sizes("cpu", 64, 2, (1, 2), 1, 2, 2, 16, 2, 64, 2, tiny=True)

# Dry-run widths: the paper architecture (reference object decoder, relu skip) at toy widths.
TINY_BACKBONE = dict(hidden=16, res_hidden=8, num_res_layers=1, num_embeddings=32, embedding_dim=8)
TINY_HEADS = dict(
    srm_base=4, objdec_width=4, objdec_bottleneck=4, objdec_hidden=8, objdec_res_hidden=4
)


def backbone_config(setup: str, sz: Sizes) -> vqcore.BackboneConfig:
    if sz.tiny:
        return vqcore.BackboneConfig.cpu(setup, **TINY_BACKBONE)
    return vqcore.BackboneConfig.paper(setup)


def detector_config(setup: str, sz: Sizes, **over: Any) -> DetectorConfig:
    """The paper preset of the 3DSR network alone: the figures measure 3DSR itself."""
    # Detector.predict takes its config's image_size only: the inference side by default.
    over = {"image_size": sz.size, **over}
    return DetectorConfig.preset(
        "paper", setup=setup, method="3dsr", **(TINY_HEADS if sz.tiny else {}), **over
    )


def build_model(setup: str, sz: Sizes, seed: int = 0) -> tuple[ThreeDSR, DetectorConfig]:
    """Random paper-preset weights (the same for every path of one setup)."""
    torch.manual_seed(seed)
    cfg = detector_config(setup, sz)
    bb = vqcore.build_backbone(backbone_config(setup, sz)).eval()
    return ThreeDSR(bb, cfg.model).eval(), cfg


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_inference(setup: str, sz: Sizes) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Reference loop vs Detector at each batch and precision (alternated, best of repeats);
    then the bf16-vs-fp32 map differences at the largest batch."""
    dev = torch.device(sz.device)
    model, cfg = build_model(setup, sz)
    k = cfg.filter_size
    x = torch.rand(
        sz.images, CH[setup], sz.size, sz.size, generator=torch.Generator().manual_seed(1)
    )
    ref_model = copy.deepcopy(model).to(dev)
    x_dev = x.to(dev)

    def ref() -> tuple[torch.Tensor, torch.Tensor]:
        maps, scores = reference_forward(ref_model, x_dev, k)
        return maps.cpu(), scores.cpu()

    runs: dict[str, Callable[[], Any]] = {"ref": ref}
    for b in sz.batches:
        for p in PRECISIONS:
            det = Detector(
                cfg,
                network=copy.deepcopy(model),
                method="3dsr",
                device=dev,
                batch_size=b,
                bf16=p == "bf16",
            )
            runs[f"{b}/{p}"] = lambda det=det: det.predict(x)
    for run in runs.values():  # warm-up: cuDNN autotune, kernels
        run()
    _sync(dev)
    best, out = alternate_best(runs, sz.images, sz.repeats)
    ref_maps, _ = out["ref"]
    flops = flops_once("inference", setup, lambda: runs[f"{sz.batches[-1]}/fp32"](), sz.images)
    rows = []
    for b in sz.batches:
        for p in PRECISIONS:
            pred = out[f"{b}/{p}"]
            row = {
                "setup": setup,
                "batch": b,
                "precision": p,
                "ref_ips": 1.0 / best["ref"],
                "ips": 1.0 / best[f"{b}/{p}"],
                "max_diff": float((pred.maps - ref_maps).abs().max()),
            }
            rows.append(with_flops(row, flops, row["ips"], dev))
    b = sz.batches[-1]
    p32, p16 = out[f"{b}/fp32"], out[f"{b}/bf16"]
    diff = (p16.maps - p32.maps).abs()
    raw = (p16.raw_maps - p32.raw_maps).abs()
    bf16 = {
        "setup": setup,
        "map_max": float(diff.max()),
        "map_mean": float(diff.mean()),
        "raw_max": float(raw.max()),
        "frac_over_1e2": float((raw > 1e-2).float().mean()),
        "score_max": float((p16.scores - p32.scores).abs().max()),
    }
    return rows, bf16


#: FLOPs of one step (training) or one image (inference) by (stage, setup): the count does not
#: depend on the precision or the sampler, so each is taken once.
_FLOPS: dict[tuple[str, str], float] = {}


def flops_once(stage: str, setup: str, work: Callable[[], Any], per: int = 1) -> float:
    """FLOPs of ``work()`` divided by ``per``, counted on the first call for (stage, setup)."""
    if (stage, setup) not in _FLOPS:
        _FLOPS[stage, setup] = count_flops(work) / per
    return _FLOPS[stage, setup]


def with_flops(row: dict[str, Any], flops: float, rate: float, dev: torch.device) -> dict:
    """``row`` with the achieved TFLOP/s and the fraction of the device's dense peak."""
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    return {
        **row,
        "tflops": flops * rate / 1e12,
        "peak_frac": fraction_of_peak(flops, rate, name, row["precision"]),
    }


def _fmt_flops(r: dict[str, Any]) -> str:
    frac = "-" if r.get("peak_frac") is None else f"{100 * r['peak_frac']:.1f} %"
    return f"{r.get('tflops', float('nan')):.2f} | {frac}"


#: The bound the paper preset's fp32 maps must keep to the reference loop (issue 25).
PAPER_TOLERANCE = 1e-4


def bench_precision(setup: str, sz: Sizes) -> list[dict[str, Any]]:
    """Paper preset, fp32 (TF32 off): max |map - reference loop| (the loop in fp32 too), then
    max |map - fp32 map| of the same Detector in tf32 and bf16, and with the fast distance form
    (fp32) instead of the reference one. One row per variant."""
    dev = torch.device(sz.device)
    model, cfg = build_model(setup, sz)
    x = torch.rand(
        sz.images, CH[setup], sz.size, sz.size, generator=torch.Generator().manual_seed(1)
    )
    with vqcore.precision_scope("fp32"):
        ref_maps, _ = reference_forward(copy.deepcopy(model).to(dev), x.to(dev), cfg.filter_size)
    ref_maps = ref_maps.cpu()
    fast = copy.deepcopy(model)
    for vq in (fast.backbone.vq_top, fast.backbone.vq_bot):
        vq.set_distance("fast")
    variants = {
        "fp32": (model, "fp32"),
        "tf32": (model, "tf32"),
        "bf16": (model, "bf16"),
        "fp32, fast distance": (fast, "fp32"),
    }
    preds = {}
    for name, (net, precision) in variants.items():
        det = Detector(
            cfg,
            network=copy.deepcopy(net),
            method="3dsr",
            device=dev,
            batch_size=sz.batches[-1],
            precision=precision,
        )
        preds[name] = det.predict(x)
    base = preds["fp32"]
    rows = [
        {
            "setup": setup,
            "what": "fp32 (TF32 off) vs the reference loop (fp32)",
            "map_max": float((base.maps - ref_maps).abs().max()),
            "raw_max": None,
            "score_max": None,
            "bound": PAPER_TOLERANCE,
        }
    ]
    for name, pred in preds.items():
        if name == "fp32":
            continue
        rows.append(
            {
                "setup": setup,
                "what": f"{name} vs fp32",
                "map_max": float((pred.maps - base.maps).abs().max()),
                "raw_max": float((pred.raw_maps - base.raw_maps).abs().max()),
                "score_max": float((pred.scores - base.scores).abs().max()),
                "bound": None,
            }
        )
    return rows


def precision_lines(sz: Sizes, rows: list[dict[str, Any]]) -> list[str]:
    """The report section of :func:`bench_precision`."""

    def num(v: float | None) -> str:
        return "-" if v is None else f"{v:.1e}"

    lines = [
        "",
        f"## Precision: paper preset ({sz.size}², {sz.images} images, batch {sz.batches[-1]})",
        "",
        "fp32: TF32 off and the reference distance form; the reference loop runs in fp32 too. "
        f"check: max smoothed-map diff <= {PAPER_TOLERANCE:g}.",
        "",
        "| setup | comparison | max smoothed-map diff | max raw-map diff | max score diff | check |",
        "|---|---|---:|---:|---:|---|",
    ]
    for r in rows:
        check = "-" if r["bound"] is None else ("ok" if r["map_max"] <= r["bound"] else "FAIL")
        lines.append(
            f"| {r['setup']} | {r['what']} | {num(r['map_max'])} | {num(r['raw_max'])} | "
            f"{num(r['score_max'])} | {check} |"
        )
    return lines


def _peak_reset(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)


def _peak_gib(dev: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else None


def _rate(history: list[dict[str, float]], key: str) -> float:
    # The last logged window excludes the first steps (cuDNN autotune, allocator warm-up).
    return float(history[-1][key]) if history else float("nan")


#: Stage-1 runs (setup, precision, sampler): both samplers at the issue-25 target (rgbd, bf16),
#: the host sampler in fp32 too (the paper preset's precision), and depth alone.
STAGE1_RUNS = (
    ("rgbd", "bf16", "device"),
    ("rgbd", "bf16", "host"),
    ("rgbd", "fp32", "device"),
    ("rgbd", "fp32", "host"),
    ("depth", "bf16", "device"),
    ("depth", "bf16", "host"),
)


def bench_stage1(
    setup: str, precision: str, sz: Sizes, tmp: Path, sampler: str = "host"
) -> dict[str, Any]:
    """Stage-1 it/s with ``sampler`` making the batches (``host``: DataLoader workers, one per
    core on the GPU box; ``device``: the GPU, in the training process)."""
    dev = torch.device(sz.device)
    n = sz.stage1_steps
    cfg = vqcore.StageOneConfig.paper(
        setup,
        backbone=backbone_config(setup, sz),
        out_dir=tmp / f"s1-{setup}-{precision}-{sampler}",
        image_size=sz.stage1_size,
        batch_size=sz.stage1_batch,
        iterations=n,
        log_every=max(1, n // 3),
        checkpoint_every=10 * n,
        num_workers=0 if sz.tiny else -1,
        sampler=sampler,
        device=str(dev),
        precision=precision,
    )
    _peak_reset(dev)
    res = vqcore.train_dada(cfg)
    row = {
        "stage": "1",
        "setup": f"{setup}, {sampler} sampler",
        "precision": precision,
        "batch": sz.stage1_batch,
        "size": sz.stage1_size,
        "its": _rate(res.history, "it_s"),
        "peak": _peak_gib(dev),
    }
    one = cfg.replace(iterations=1, out_dir=tmp / f"s1-{setup}-flops")
    flops = flops_once("1", setup, lambda: vqcore.train_dada(one))
    return with_flops(row, flops, row["its"], dev)


def bench_stage2(
    setup: str, precision: str, sz: Sizes, tmp: Path, sampler: str = "device", note: str = ""
) -> dict[str, Any]:
    """Stage-2 it/s with ``sampler`` making the batches; ``note`` is added to the setup label."""
    dev = torch.device(sz.device)
    n = sz.stage2_steps
    s = sz.stage2_size
    g = torch.Generator().manual_seed(0)
    fg = torch.zeros(8, 1, s, s)
    fg[:, :, s // 4 : 3 * s // 4, s // 4 : 3 * s // 4] = 1
    data = TrainData(torch.rand(8, CH[setup], s, s, generator=g), fg)
    torch.manual_seed(0)
    backbone = vqcore.build_backbone(backbone_config(setup, sz)).eval()
    cfg = detector_config(
        setup,
        sz,
        out_dir=str(tmp / f"s2-{setup}-{precision}-{sampler}-{time.monotonic_ns()}"),
        image_size=s,
        batch_size=sz.stage2_batch,
        iterations=n,
        log_every=max(1, n // 3),
        checkpoint_every=10 * n,
        device=str(dev),
        precision=precision,
        sampler=sampler,
    )
    _peak_reset(dev)
    res = train_detector(cfg, backbone=backbone, data=data)
    row = {
        "stage": "2",
        "setup": f"{setup}, {sampler} sampler{note}",
        "precision": precision,
        "batch": sz.stage2_batch,
        "size": s,
        "its": _rate(res.history, "it_per_s"),
        "peak": _peak_gib(dev),
    }
    one = cfg.replace(iterations=1, out_dir=cfg.out_dir + "-flops")
    flops = flops_once("2", setup, lambda: train_detector(one, backbone=backbone, data=data))
    return with_flops(row, flops, row["its"], dev)


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
            f"{_fmt_flops(r)} |"
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
            f"{r['its']:.2f} | {_fmt_peak(r['peak'])} | {_fmt_flops(r)} |"
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
