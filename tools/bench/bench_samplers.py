"""Benchmark the stage-1 samplers: depthsim's host generators vs vqcore.procedural's torch ones.

Usage:
    uv run python tools/bench/bench_samplers.py            # batch 64, 256², then stage-1 it/s
    uv run python tools/bench/bench_samplers.py --quick    # batch 16, fewer repeats

Same process, side by side: samples/s of one host batch (``vqcore.StageOneBatches``, what one
DataLoader worker makes: numba depth, numpy textures) and one device batch
(``vqcore.DeviceStageOneBatches``) on the CPU, and on CUDA when present, for depth, rgb and rgbd;
then stage-1 it/s of both samplers at a tiny width (data generation included, no workers).
Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import torch
import vqcore
from vqcore import (
    BackboneConfig,
    DeviceStageOneBatches,
    ProceduralRGBSource,
    StageOneBatches,
    StageOneConfig,
    train_dada,
)

SETUPS = ("depth", "rgb", "rgbd")


def _no_sync() -> None:
    pass


def _best(data, repeats: int, sync) -> float:
    """Best seconds for one batch ``data[step]`` (a new step each time: no cached draws)."""
    data[0]  # warm-up: numba compilation / cache load, allocator
    best = float("inf")
    for step in range(1, repeats + 1):
        sync()
        start = time.perf_counter()
        data[step]
        sync()
        best = min(best, time.perf_counter() - start)
    return best


def bench_generators(batch: int, size: int, repeats: int) -> list[dict[str, object]]:
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for setup in SETUPS:
        host = StageOneBatches(
            setup, ProceduralRGBSource(), image_size=size, batch_size=batch, seed=0
        )
        row: dict[str, object] = {"setup": setup, "host": batch / _best(host, repeats, _no_sync)}
        for dev in devices:
            data = DeviceStageOneBatches(
                setup, image_size=size, batch_size=batch, seed=0, device=dev
            )
            sync = torch.cuda.synchronize if dev == "cuda" else _no_sync
            row[dev] = batch / _best(data, repeats, sync)
        rows.append(row)
    return rows


def bench_training(sampler: str, steps: int) -> dict[str, object]:
    backbone = BackboneConfig.cpu(
        "rgbd", hidden=16, res_hidden=8, num_res_layers=1, num_embeddings=32, embedding_dim=8
    )
    with tempfile.TemporaryDirectory() as tmp:
        cfg = StageOneConfig.cpu(
            "rgbd",
            backbone=backbone,
            out_dir=Path(tmp),
            image_size=64,
            batch_size=8,
            iterations=steps + 2,
            log_every=1,
            checkpoint_every=10**9,
            device="cpu",
            sampler=sampler,
        )
        result = train_dada(cfg)
    per_step = [1.0 / h["it_s"] for h in result.history[2:]]  # first two: warm-up
    return {"sampler": sampler, "it_s": len(per_step) / sum(per_step)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="batch 16 and fewer repeats")
    parser.add_argument("--size", type=int, default=256, help="image side")
    args = parser.parse_args()
    batch = 16 if args.quick else 64
    repeats = 1 if args.quick else 3
    steps = 5 if args.quick else 20
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    print(
        f"vqcore {vqcore.__version__}, torch {torch.__version__}, {platform.machine()}, "
        f"{torch.get_num_threads()} torch threads, {gpu}\n"
    )
    rows = bench_generators(batch, args.size, repeats)
    cols = [c for c in ("cpu", "cuda") if c in rows[0]]
    print(f"### Stage-1 sample generators, batch {batch}, {args.size}² (best of {repeats})\n")
    print("| setup | host samples/s (1 process) | " + " | ".join(f"torch {c}" for c in cols) + " |")
    print("|---|---:|" + "---:|" * len(cols))
    for r in rows:
        cells = " | ".join(f"{r[c]:.1f}" for c in cols)
        print(f"| {r['setup']} | {r['host']:.1f} | {cells} |")
    print()
    print("### Stage-1 it/s by sampler (rgbd, tiny widths, 64², batch 8, CPU, no workers)\n")
    print("| sampler | it/s |")
    print("|---|---:|")
    for s in ("host", "device"):
        r = bench_training(s, steps)
        print(f"| {r['sampler']} | {r['it_s']:.2f} |")


if __name__ == "__main__":
    main()
