"""Benchmark vqcore: stage-1 training throughput and DADA forward throughput at 384².

Usage:
    uv run python tools/bench/bench_vqcore.py            # everything (several minutes on 2 cores)
    uv run python tools/bench/bench_vqcore.py --quick    # fewer repetitions

Prints Markdown tables. The forward comparison runs a plain eager fp32 baseline (NCHW, no_grad,
batch 1) and the optimised path (inference_mode, channels_last, batched) in the same process on the
same weights, and reports the largest output difference.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import torch
import vqcore
from vqcore import BackboneConfig, StageOneConfig, TrainEvent, build_backbone, train_dada


def bench_training(name: str, cfg: StageOneConfig, warmup: int, steps: int) -> dict[str, object]:
    """End-to-end it/s of train_dada (data generation included), measured after ``warmup``."""
    events: list[TrainEvent] = []
    # One event per step: the warm-up steps are dropped, the rest are timed.
    cfg = cfg.replace(
        iterations=warmup + steps, log_every=1, checkpoint_every=10**9, lr_milestones=()
    )
    result = train_dada(cfg, callbacks=events.append)
    times = [e for e in events if e.step > warmup]
    per_step = [1.0 / e.metrics["it_s"] for e in times]
    it_s = len(per_step) / sum(per_step)
    return {
        "run": name,
        "setup": cfg.setup,
        "widths": f"{cfg.backbone.hidden}/{cfg.backbone.res_hidden}, "
        f"{cfg.backbone.num_embeddings}x{cfg.backbone.embedding_dim}",
        "size": cfg.image_size,
        "batch": cfg.batch_size,
        "it_s": it_s,
        "samples_s": it_s * cfg.batch_size,
        "steps": len(per_step),
        "final_recon": result.metrics.get("recon", float("nan")),
    }


def _time(fn, repeats: int) -> float:
    fn()  # warm-up (oneDNN primitive creation)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def bench_forward(size: int, batch: int, repeats: int) -> list[dict[str, object]]:
    torch.manual_seed(0)
    model = build_backbone(BackboneConfig.paper("rgbd")).eval()
    x = torch.rand(batch, 4, size, size)

    def baseline() -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([model(x[i : i + 1])[0] for i in range(batch)])

    ref = baseline()
    base_s = _time(baseline, repeats)
    rows: list[dict[str, object]] = [
        {"variant": "eager fp32, NCHW, no_grad, batch 1 (baseline)", "s": base_s, "diff": 0.0}
    ]

    fast = build_backbone(BackboneConfig.paper("rgbd")).eval()
    fast.load_state_dict(model.state_dict())
    fast = fast.to(memory_format=torch.channels_last).requires_grad_(False)
    xc = x.contiguous(memory_format=torch.channels_last)

    def batched_inference() -> torch.Tensor:
        with torch.inference_mode():
            return fast(x)[0]

    def channels_last() -> torch.Tensor:
        with torch.inference_mode():
            return fast(xc)[0]

    for label, fn in [
        (f"inference_mode, NCHW, batch {batch}", batched_inference),
        (f"inference_mode, channels_last, batch {batch}", channels_last),
    ]:
        out = fn()
        rows.append(
            {"variant": label, "s": _time(fn, repeats), "diff": float((out - ref).abs().max())}
        )
    for row in rows:
        row["img_s"] = batch / float(row["s"])
        row["speedup"] = base_s / float(row["s"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and repeats")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--size", type=int, default=384, help="forward benchmark side")
    parser.add_argument("--batch", type=int, default=4, help="forward benchmark batch")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--skip-forward", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    steps = 5 if args.quick else 20
    paper_steps = 2 if args.quick else 4
    repeats = 2 if args.quick else 3

    print(
        f"vqcore {vqcore.__version__}, torch {torch.__version__}, {platform.machine()}, "
        f"{torch.get_num_threads()} threads, device cpu (no GPU measured)\n"
    )
    if not args.skip_train:
        out = Path(tempfile.mkdtemp(prefix="bench_vqcore_"))
        runs = [
            ("cpu preset", StageOneConfig.cpu("rgbd", out_dir=out / "a", device="cpu"), 3, steps),
            ("cpu preset", StageOneConfig.cpu("depth", out_dir=out / "b", device="cpu"), 3, steps),
            (
                "paper widths",
                StageOneConfig.paper(
                    "rgbd", out_dir=out / "c", device="cpu", batch_size=8, num_workers=0
                ),
                1,
                paper_steps,
            ),
        ]
        rows = [bench_training(*r) for r in runs]
        print("### Stage-1 training (CPU, data generation included)\n")
        print("| run | setup | widths | px | batch | it/s | samples/s | steps timed |")
        print("|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(
                f"| {r['run']} | {r['setup']} | {r['widths']} | {r['size']} | {r['batch']} | "
                f"{r['it_s']:.3f} | {r['samples_s']:.2f} | {r['steps']} |"
            )
        print()
    if not args.skip_forward:
        rows = bench_forward(args.size, args.batch, repeats)
        print(f"### DADA forward, paper widths, {args.size}², eval (CPU, best of {repeats})\n")
        print("| variant | s / batch | images/s | vs baseline | max abs diff |")
        print("|---|---|---|---|---|")
        for r in rows:
            print(
                f"| {r['variant']} | {r['s']:.3f} | {r['img_s']:.2f} | {r['speedup']:.2f}x | "
                f"{r['diff']:.1e} |"
            )


if __name__ == "__main__":
    main()
