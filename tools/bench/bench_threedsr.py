"""Benchmark of the threedsr package: inference images/s and stage-2 training it/s.

Inference (paper widths, 384², each setup): the reference way (plain eager fp32, NCHW, batch 1,
``torch.no_grad``, box filter + max) against a ``threedsr.Detector`` of the 3DSR network
(``method="3dsr"``) with its CPU defaults (``inference_mode``, NCHW, ``--batch`` images per
forward), in the same process, on the same random weights; the maps must agree to 1e-4.
Training: stage-2 steps/s (generator + forward + backward + Adam) for the cpu and paper widths at
a small batch.

The Winograd fast-conv path (``threedsr.fastconv``, ``Detector(fast_conv=...)``) is gone from the
package, and with it this script's comparisons against it: the exact-conv columns of the
inference table, the Winograd rows of ``--alternatives`` and the per-layer ``--layers`` table
(oneDNN vs Winograd F(4x4)/F(2x2)). The Detector's convolutions are torch's own.

    uv run python tools/bench/bench_threedsr.py                 # everything (several minutes)
    uv run python tools/bench/bench_threedsr.py --setups rgbd --no-train
    uv run python tools/bench/bench_threedsr.py --modules --setups rgbd --no-inference --no-train
    uv run python tools/bench/bench_threedsr.py --alternatives --compile --setups rgbd --no-inference --no-train
    uv run python tools/bench/bench_threedsr.py --bf16 --no-inference --no-train
"""

from __future__ import annotations

import argparse
import copy
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import vqcore
from threedsr import Detector, DetectorConfig, ThreeDSR, TrainData
from threedsr.dsr.anomaly_generator import FeatureAnomalyGenerator
from threedsr.dsr.host_batch import make_batch
from threedsr.dsr.loss import stage2_losses

CH = {"rgbd": 4, "depth": 1, "rgb": 3}


def build(
    setup: str, preset: str, seed: int = 0, size: int | None = None
) -> tuple[ThreeDSR, DetectorConfig]:
    """Random weights of a 3DSR preset's widths (``paper`` or ``cpu``; method ``3dsr``) for
    inputs of side ``size`` (None: the preset's; Detector.predict takes that size only)."""
    torch.manual_seed(seed)
    cfg = DetectorConfig.preset(preset, setup=setup, method="3dsr", image_size=size)
    bb = vqcore.build_backbone(vqcore.BackboneConfig.preset(preset, setup)).eval()
    return ThreeDSR(bb, cfg.model).eval(), cfg


def reference_forward(
    model: ThreeDSR, x: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference test loop: one image at a time, eager fp32 NCHW under no_grad."""
    maps = []
    with torch.no_grad():
        for i in range(x.shape[0]):
            raw = model(x[i : i + 1]).anomaly_map
            maps.append(F.avg_pool2d(raw[:, None], k, 1, k // 2, count_include_pad=True)[:, 0])
    m = torch.cat(maps)
    return m, m.flatten(1).amax(1)


def alternate_best(
    runs: dict[str, Callable[[], Any]], n: int, repeats: int
) -> tuple[dict[str, float], dict[str, Any]]:
    """Run each callable in turn, ``repeats`` rounds; the best seconds per image of each (the
    machine is shared: the minimum is the least disturbed measurement) and its last output."""
    best = dict.fromkeys(runs, float("inf"))
    out: dict[str, Any] = {}
    for _ in range(repeats):
        for name, run in runs.items():
            t = time.perf_counter()
            out[name] = run()
            best[name] = min(best[name], (time.perf_counter() - t) / n)
    return best, out


def network_detector(model: ThreeDSR, cfg: DetectorConfig, **options: Any) -> Detector:
    """A CPU Detector of the 3DSR network alone (its own copy of the weights, so no path pays for
    another's memory-format change)."""
    return Detector(cfg, network=copy.deepcopy(model), method="3dsr", device="cpu", **options)


def bench_inference(setup: str, size: int, n: int, batch: int, repeats: int) -> dict[str, float]:
    """Alternate the reference loop and threedsr's default CPU Detector ``repeats`` times and
    keep each one's best time (the machine is shared: the minimum is the least disturbed
    measurement)."""
    model, cfg = build(setup, "paper", size=size)
    x = torch.rand(n, CH[setup], size, size)
    k = cfg.filter_size
    ours = network_detector(model, cfg, batch_size=batch)
    # warm-up: oneDNN primitive creation
    reference_forward(model, x[:1], k)
    ours.predict(x[:batch])
    best, out = alternate_best(
        {"ref": lambda: reference_forward(model, x, k), "ours": lambda: ours.predict(x)},
        n,
        repeats,
    )
    ref_maps, ref_scores = out["ref"]
    pred = out["ours"]
    diff = (pred.maps - ref_maps).abs()
    return {
        "ref_s": best["ref"],
        "ours_s": best["ours"],
        "max_err": max(float(diff.max()), float((pred.scores - ref_scores).abs().max())),
        "frac_over": float((diff > 1e-4).float().mean()),
    }


def bench_bf16(setup: str, size: int, n: int, repeats: int) -> dict[str, float]:
    """The reference loop against ``Detector(bf16=True)`` on the CPU (bf16 autocast with the VQ
    searches in fp32, channels_last, batch 1), alternated, best of ``repeats``; the diffs say how
    far bf16 moves the maps and scores of the fp32 run."""
    model, cfg = build(setup, "paper", size=size)
    x = torch.rand(n, CH[setup], size, size)
    k = cfg.filter_size
    det = network_detector(model, cfg, batch_size=1, bf16=True)
    reference_forward(model, x[:1], k)
    det.predict(x[:1])
    best, out = alternate_best(
        {"ref": lambda: reference_forward(model, x, k), "bf16": lambda: det.predict(x)},
        n,
        repeats,
    )
    ref_maps, ref_scores = out["ref"]
    pred = out["bf16"]
    diff = (pred.maps - ref_maps).abs()
    return {
        "ref_s": best["ref"],
        "bf16_s": best["bf16"],
        "map_max": float(diff.max()),
        "map_mean": float(diff.mean()),
        "score_max": float((pred.scores - ref_scores).abs().max()),
    }


def bench_alternatives(setup: str, size: int, n: int, repeats: int, compile_: bool) -> None:
    """Speed-up over the reference loop (and max abs map diff) of the CPU variants considered:
    Detector layouts and batch sizes, ``torch.jit.freeze`` +
    ``optimize_for_inference`` and (``compile_``) ``torch.compile`` with inductor freezing,
    alternated in one process, best of ``repeats``."""
    model, cfg = build(setup, "paper", size=size)
    x = torch.rand(n, CH[setup], size, size)
    k = cfg.filter_size

    def det(**kw: Any) -> object:
        d = network_detector(model, cfg, **kw)
        return lambda xx: d.predict(xx).maps

    def per_image(fn: object) -> object:
        def run(xx: torch.Tensor) -> torch.Tensor:
            out = []
            with torch.no_grad():
                for i in range(xx.shape[0]):
                    raw = fn(xx[i : i + 1])  # type: ignore[operator]
                    out.append(F.avg_pool2d(raw[:, None], k, 1, k // 2, count_include_pad=True))
            return torch.cat(out)[:, 0]

        return run

    class Maps(torch.nn.Module):
        def __init__(self, m: ThreeDSR) -> None:
            super().__init__()
            self.m = m

        def forward(self, xx: torch.Tensor) -> torch.Tensor:
            return self.m(xx).anomaly_map

    variants = {
        "threedsr default (NCHW, batch 1, inference_mode)": det(),
        "channels_last, batch 1": det(channels_last=True),
        f"NCHW, batch {n}": det(batch_size=n),
        f"channels_last, batch {n}": det(channels_last=True, batch_size=n),
    }
    with torch.no_grad():
        traced = torch.jit.trace(Maps(copy.deepcopy(model)).eval(), x[:1], check_trace=False)
        variants["torch.jit.freeze + optimize_for_inference, batch 1"] = per_image(
            torch.jit.optimize_for_inference(torch.jit.freeze(traced))
        )
    if compile_:
        # torch.compile's public `options` sets inductor's freezing for this model only.
        variants["torch.compile (inductor, freezing), batch 1"] = per_image(
            torch.compile(Maps(copy.deepcopy(model)).eval(), options={"freezing": True})
        )
    ref_fn = lambda xx: reference_forward(model, xx, k)[0]  # noqa: E731
    for fn in (ref_fn, *variants.values()):
        fn(x[:1])  # warm-up (compilation, packing)
    best = dict.fromkeys(["ref", *variants], float("inf"))
    diffs: dict[str, float] = {}
    for _ in range(repeats):
        t = time.perf_counter()
        ref = ref_fn(x)
        best["ref"] = min(best["ref"], (time.perf_counter() - t) / n)
        for name, fn in variants.items():
            t = time.perf_counter()
            maps = fn(x)
            best[name] = min(best[name], (time.perf_counter() - t) / n)
            diffs[name] = float((maps - ref).abs().max())
    print(f"reference: {best['ref']:.2f} s/img")
    print()
    print(f"| variant ({setup}) | s/img | speed-up | max abs diff |")
    print("|---|---:|---:|---:|")
    for name in variants:
        print(
            f"| {name} | {best[name]:.2f} | {best['ref'] / best[name]:.2f}x | {diffs[name]:.1e} |"
        )


def bench_modules(setup: str, size: int, repeats: int) -> None:
    """Where one CPU-default forward spends its time: each top-level module, timed with forward
    hooks (best of ``repeats``), upstream of the last re-quantisation or after it."""
    model, cfg = build(setup, "paper", size=size)
    det = network_detector(model, cfg)
    m = det.network
    assert m is not None
    parts = {f"backbone.{n}": c for n, c in m.backbone.named_children()}
    parts.update(m.trainable_modules())
    downstream = {"object_decoder": "yes", "anomaly_unet": "yes", "backbone.decoder": "yes"}
    # upsample_t runs three times: in the encoder (upstream) and on both decoding paths.
    downstream["backbone.upsample_t"] = "2 of its 3 calls"
    spent: dict[str, float] = dict.fromkeys(parts, 0.0)
    started: dict[str, float] = {}
    handles = []
    for name, mod in parts.items():
        handles.append(
            mod.register_forward_pre_hook(
                lambda *_, n=name: started.__setitem__(n, time.perf_counter())
            )
        )
        handles.append(
            mod.register_forward_hook(
                lambda *_, n=name: spent.__setitem__(n, spent[n] + time.perf_counter() - started[n])
            )
        )
    x = torch.rand(1, CH[setup], size, size)
    t = time.perf_counter()
    det.predict(x)  # first call: oneDNN primitive creation
    first = time.perf_counter() - t
    best: dict[str, float] = {}
    total = float("inf")
    for _ in range(repeats):
        spent.update(dict.fromkeys(spent, 0.0))
        t = time.perf_counter()
        det.predict(x)
        total = min(total, time.perf_counter() - t)
        for n, v in spent.items():
            best[n] = min(best.get(n, float("inf")), v)
    for h in handles:
        h.remove()
    print(f"| module ({setup}) | s | after the last re-quantisation |")
    print("|---|---:|---|")
    for n, v in sorted(best.items(), key=lambda kv: -kv[1]):
        print(f"| {n} | {v:.3f} | {downstream.get(n, 'no')} |")
    print(f"| whole predict | {total:.3f} | |")
    print()
    print(f"First predict of a fresh Detector: {first:.2f} s (CPU defaults)")


def bench_train(setup: str, preset: str, size: int, batch: int, steps: int) -> float:
    model, cfg = build(setup, preset)
    model.train()
    cfg = cfg.replace(image_size=size, batch_size=batch)
    g = torch.Generator().manual_seed(0)
    fg = torch.zeros(8, 1, size, size)
    fg[:, :, size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 1
    data = TrainData(torch.rand(8, CH[setup], size, size, generator=g), fg)
    gen = FeatureAnomalyGenerator()
    params = [p for m in model.trainable_modules().values() for p in m.parameters()]
    opt = torch.optim.Adam(params, lr=cfg.lr)
    rng = np.random.default_rng(0)

    def step() -> None:
        x, mask = make_batch(data, cfg, batch, rng, torch.device("cpu"))
        a = gen(model.backbone, x, mask, rng=rng)
        o = model(q_top=a.q_top_anom, q_bot=a.q_bot_anom)
        loss = stage2_losses(o, a, x)
        opt.zero_grad(set_to_none=True)
        loss.total.backward()
        opt.step()

    step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - t)


def cpu_has_bf16() -> bool | None:
    """Whether the CPU computes bf16 natively (AVX512-BF16 or AMX flags in /proc/cpuinfo; None
    where that file is absent). Public information only: torch's own check is private."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return None
    return "avx512_bf16" in flags or "amx_bf16" in flags


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--setups", nargs="+", default=["rgbd", "depth", "rgb"])
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--images", type=int, default=4, help="images per timed pass")
    ap.add_argument("--batch", type=int, default=1, help="Detector batch_size (CPU default 1)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--no-train", action="store_true")
    ap.add_argument("--no-inference", action="store_true")
    ap.add_argument("--modules", action="store_true", help="per-module time of one forward")
    ap.add_argument("--alternatives", action="store_true", help="CPU variants table (1st setup)")
    ap.add_argument("--compile", action="store_true", help="add torch.compile to --alternatives")
    ap.add_argument(
        "--bf16", action="store_true", help="CPU bf16 autocast table (needs AMX / AVX512-BF16)"
    )
    ap.add_argument("--train-steps", type=int, default=3)
    ap.add_argument("--train-batch", type=int, default=2)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}"
    )
    print()
    if args.modules:
        print(f"Per-module time, CPU defaults, {args.size}², best of {args.repeats}")
        print()
        bench_modules(args.setups[0], args.size, args.repeats)
        print()
    if args.alternatives:
        print(
            f"CPU inference variants at {args.size}², {args.images} images, best of {args.repeats}"
        )
        print()
        bench_alternatives(args.setups[0], args.size, args.images, args.repeats, args.compile)
        print()
    if args.bf16:
        bf16_native = cpu_has_bf16()
        print(
            f"CPU bf16 inference at {args.size}², paper widths, random weights ({args.images} "
            f"images, batch 1, best of {args.repeats}; native bf16: {bf16_native})"
        )
        print()
        print(
            "| setup | reference fp32 s/img | bf16 s/img | speed-up | max abs map diff | "
            "mean abs map diff | max abs score diff |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|")
        for s in args.setups:
            r = bench_bf16(s, args.size, args.images, args.repeats)
            print(
                f"| {s} | {r['ref_s']:.2f} | {r['bf16_s']:.2f} | {r['ref_s'] / r['bf16_s']:.2f}x | "
                f"{r['map_max']:.1e} | {r['map_mean']:.1e} | {r['score_max']:.1e} |",
                flush=True,
            )
        print()
    if not args.no_inference:
        print(
            f"Inference at {args.size}², paper widths, random weights "
            f"({args.images} images, batch {args.batch}, best of {args.repeats})"
        )
        print()
        print(
            "| setup | reference s/img | threedsr s/img | speed-up | max abs diff | pixels > 1e-4 |"
        )
        print("|---|---:|---:|---:|---:|---:|")
        for s in args.setups:
            r = bench_inference(s, args.size, args.images, args.batch, args.repeats)
            print(
                f"| {s} | {r['ref_s']:.2f} | {r['ours_s']:.2f} | {r['ref_s'] / r['ours_s']:.2f}x | "
                f"{r['max_err']:.1e} | {100 * r['frac_over']:.3f} % |",
                flush=True,
            )
    if args.no_train:
        return
    print()
    print(f"Stage-2 training steps/s (batch {args.train_batch}, {args.train_steps} timed steps)")
    print()
    print("| setup | widths | size | it/s | samples/s |")
    print("|---|---|---:|---:|---:|")
    for s in args.setups:
        for preset, size in (("cpu", 128), ("paper", 384)):
            ips = bench_train(s, preset, size, args.train_batch, args.train_steps)
            print(
                f"| {s} | {preset} | {size} | {ips:.3f} | {ips * args.train_batch:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
