"""Benchmark of the threedsr package: inference images/s and stage-2 training it/s.

Inference (paper widths, 384², each setup): the reference way (plain eager fp32, NCHW, batch 1,
``torch.no_grad``, box filter + max) against ``threedsr.Detector`` with its CPU defaults
(``inference_mode``, NCHW, ``--batch`` images per forward, fp32 Winograd F(4x4, 3x3) for the
object decoder's wide 3x3 convs) and against the same Detector with ``fast_conv=False``, in the
same process, on the same random weights; the maps must agree to 1e-4. ``--layers`` adds a per-layer table (oneDNN conv vs Winograd). Training: stage-2 steps/s (generator + forward + backward + Adam) for the cpu and
paper widths at a small batch.

    uv run python tools/bench/bench_threedsr.py                 # everything (several minutes)
    uv run python tools/bench/bench_threedsr.py --setups rgbd --no-train
    uv run python tools/bench/bench_threedsr.py --layers --no-inference --no-train
    uv run python tools/bench/bench_threedsr.py --alternatives --compile --setups rgbd --no-inference --no-train
    uv run python tools/bench/bench_threedsr.py --bf16 --no-inference --no-train
"""

from __future__ import annotations

import argparse
import copy
import platform
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import vqcore
from threedsr import Detector, DetectorConfig, ThreeDSR, TrainData
from threedsr.fastconv import pack_weight, winograd_conv2d, winograd_weight
from threedsr.dsr.anomaly_generator import FeatureAnomalyGenerator
from threedsr.dsr.loss import stage2_losses
from threedsr.dsr.train import make_batch

CH = {"rgbd": 4, "depth": 1, "rgb": 3}


def build(setup: str, preset: str, seed: int = 0) -> tuple[ThreeDSR, DetectorConfig]:
    torch.manual_seed(seed)
    cfg = DetectorConfig.preset(preset, setup=setup)
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


def bench_inference(setup: str, size: int, n: int, batch: int, repeats: int) -> dict[str, float]:
    """Alternate the reference loop, threedsr's default CPU Detector (Winograd fast conv) and
    the exact-conv Detector (``fast_conv=False``) ``repeats`` times and
    keep each one's best time (the machine is shared: the minimum is the least disturbed
    measurement). Each path has its own copy of the same weights, so no path pays for another's
    memory-format change or weight re-transform."""
    model, cfg = build(setup, "paper")
    x = torch.rand(n, CH[setup], size, size)
    k = cfg.filter_size
    ours = Detector(copy.deepcopy(model), cfg, device="cpu", batch_size=batch)
    exact = Detector(copy.deepcopy(model), cfg, device="cpu", batch_size=batch, fast_conv=False)
    # warm-up: oneDNN primitive creation, Winograd weight transform and packing
    reference_forward(model, x[:1], k)
    ours.predict(x[:batch])
    exact.predict(x[:batch])
    best, out = alternate_best(
        {
            "ref": lambda: reference_forward(model, x, k),
            "ours": lambda: ours.predict(x),
            "exact": lambda: exact.predict(x),
        },
        n,
        repeats,
    )
    ref_maps, ref_scores = out["ref"]
    pred, pred_exact = out["ours"], out["exact"]
    diff = (pred.maps - ref_maps).abs()
    return {
        "ref_s": best["ref"],
        "ours_s": best["ours"],
        "exact_s": best["exact"],
        "max_err": max(float(diff.max()), float((pred.scores - ref_scores).abs().max())),
        "frac_over": float((diff > 1e-4).float().mean()),
        "exact_err": float((pred_exact.maps - ref_maps).abs().max()),
    }


def bench_bf16(setup: str, size: int, n: int, repeats: int) -> dict[str, float]:
    """The reference loop against ``Detector(bf16=True)`` on the CPU (bf16 autocast with the VQ
    searches in fp32, channels_last, batch 1), alternated, best of ``repeats``; the diffs say how
    far bf16 moves the maps and scores of the fp32 run."""
    model, cfg = build(setup, "paper")
    x = torch.rand(n, CH[setup], size, size)
    k = cfg.filter_size
    det = Detector(copy.deepcopy(model), cfg, device="cpu", batch_size=1, bf16=True)
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
    Detector layouts and batch sizes with and without Winograd, ``torch.jit.freeze`` +
    ``optimize_for_inference`` and (``compile_``) ``torch.compile`` with inductor freezing,
    alternated in one process, best of ``repeats``."""
    model, cfg = build(setup, "paper")
    x = torch.rand(n, CH[setup], size, size)
    k = cfg.filter_size

    def det(**kw: object) -> object:
        d = Detector(copy.deepcopy(model), cfg, device="cpu", **kw)  # type: ignore[arg-type]
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
        "threedsr default (Winograd, NCHW, batch 1)": det(),
        "Winograd, channels_last, batch 1": det(channels_last=True),
        f"Winograd, NCHW, batch {n}": det(batch_size=n),
        "exact, NCHW, batch 1 (inference_mode only)": det(fast_conv=False),
        "exact, channels_last, batch 1": det(fast_conv=False, channels_last=True),
        f"exact, channels_last, batch {n}": det(fast_conv=False, channels_last=True, batch_size=n),
    }
    with torch.no_grad():
        traced = torch.jit.trace(Maps(copy.deepcopy(model)).eval(), x[:1], check_trace=False)
        variants["torch.jit.freeze + optimize_for_inference, batch 1"] = per_image(
            torch.jit.optimize_for_inference(torch.jit.freeze(traced))
        )
    if compile_:
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True
        variants["torch.compile (inductor, freezing), batch 1"] = per_image(
            torch.compile(Maps(copy.deepcopy(model)).eval())
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


# 3x3 convs of the paper model at a 384² input, (C_in, C_out, H, groups): the object decoder's
# four wide ones (512/1024 at 96², 1024/2048 at 48²), then narrower ones downstream of the last
# re-quantisation (object decoder residual stack, general decoder, anomaly UNet) around the
# Detector's default threshold (per-group C_in * C_out >= 256 * 256).
LAYERS = [
    (512, 512, 96, 1),
    (512, 1024, 96, 1),
    (1024, 1024, 48, 1),
    (1024, 2048, 48, 1),
    (256, 256, 96, 1),
    (256, 128, 96, 1),
    (512, 256, 96, 2),
    (128, 128, 96, 1),
    (256, 128, 96, 2),
    (64, 32, 384, 1),
]


def bench_layers(batch: int, repeats: int) -> None:
    """Per-layer time of one 3x3 conv: oneDNN (NCHW) vs Winograd F(4x4) with each GEMM route
    (one ``torch.bmm`` / oneDNN 1x1 convs on prepacked weights) and F(2x2) (bmm)."""
    print(
        "| C_in -> C_out @ H (groups) | oneDNN ms | F(4x4) bmm ms | speed-up | "
        "F(4x4) oneDNN-GEMM ms | F(4x4) rel err | F(2x2) ms |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    ws: dict[str, torch.Tensor] = {}
    for c, kk, h, g in LAYERS:
        x = torch.randn(batch, c, h, h)
        w, b = torch.randn(kk, c // g, 3, 3) * 0.02, torch.randn(kk)
        ref = F.conv2d(x.double(), w.double(), b.double(), padding=1, groups=g)
        u4, u2 = winograd_weight(w, 4), winograd_weight(w, 2)
        packed = pack_weight(u4, batch * (h // 4) ** 2) if g == 1 else None
        with torch.inference_mode():
            err = float((winograd_conv2d(x, u4, b) - ref).abs().max() / ref.abs().max())
            fns = {
                "direct": lambda x=x, w=w, b=b, g=g: F.conv2d(x, w, b, padding=1, groups=g),
                "f4": lambda x=x, u=u4, b=b: winograd_conv2d(x, u, b, tile=4, workspace=ws),
                "f2": lambda x=x, u=u2, b=b: winograd_conv2d(x, u, b, tile=2, workspace=ws),
            }
            if packed is not None:
                fns["f4dnn"] = lambda x=x, u=packed, b=b: winograd_conv2d(x, u, b, workspace=ws)
            best = dict.fromkeys(fns, float("inf"))
            for f in fns.values():
                f()
            for _ in range(repeats):
                for name, f in fns.items():
                    t = time.perf_counter()
                    f()
                    best[name] = min(best[name], time.perf_counter() - t)
        dnn = f"{1e3 * best['f4dnn']:.0f}" if "f4dnn" in best else "-"
        print(
            f"| {c} -> {kk} @ {h}² ({g}) | {1e3 * best['direct']:.0f} | {1e3 * best['f4']:.0f} | "
            f"{best['direct'] / best['f4']:.2f}x | {dnn} | {err:.1e} | {1e3 * best['f2']:.0f} |",
            flush=True,
        )


def bench_modules(setup: str, size: int, repeats: int) -> None:
    """Where one CPU-default forward spends its time: each top-level module, timed with forward
    hooks (best of ``repeats``), upstream of the last re-quantisation or after it."""
    model, cfg = build(setup, "paper")
    det = Detector(model, cfg, device="cpu")
    m = det.model
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
    exact = Detector(copy.deepcopy(model), cfg, device="cpu", fast_conv=False)
    t = time.perf_counter()
    exact.predict(x)
    exact_first = time.perf_counter() - t
    t = time.perf_counter()
    det.predict(x)  # first call: kernel cache load, GEMM route probe, transformed weights
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
    print(
        f"First predict of a fresh Detector: {first:.2f} s (CPU defaults), "
        f"{exact_first:.2f} s (exact path, fast_conv=False)"
    )


def bench_train(setup: str, preset: str, size: int, batch: int, steps: int) -> float:
    model, cfg = build(setup, preset)
    model.train()
    cfg = cfg.replace(size=size, batch_size=batch)
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
    ap.add_argument("--layers", action="store_true", help="per-layer conv table")
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
    if args.layers:
        print(f"Per-layer 3x3 conv, batch {args.batch}, best of {args.repeats}")
        print()
        bench_layers(args.batch, args.repeats)
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
        bf16_native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
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
            "| setup | reference s/img | threedsr s/img | speed-up | exact-conv s/img | "
            "exact speed-up | max abs diff | pixels > 1e-4 | exact max abs diff |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for s in args.setups:
            r = bench_inference(s, args.size, args.images, args.batch, args.repeats)
            print(
                f"| {s} | {r['ref_s']:.2f} | {r['ours_s']:.2f} | {r['ref_s'] / r['ours_s']:.2f}x | "
                f"{r['exact_s']:.2f} | {r['ref_s'] / r['exact_s']:.2f}x | {r['max_err']:.1e} | "
                f"{100 * r['frac_over']:.3f} % | {r['exact_err']:.1e} |",
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
