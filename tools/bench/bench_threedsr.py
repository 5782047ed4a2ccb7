"""Benchmark of the threedsr package: inference images/s and stage-2 training it/s.

Inference (paper widths, 384², each setup): the reference way (plain eager fp32, NCHW, batch 1,
``torch.no_grad``, box filter + max) against ``threedsr.Detector`` (``inference_mode``,
channels_last, batched), in the same process, on the same random-weight model; the maps must
agree to 1e-4. Training: stage-2 steps/s (generator + forward + backward + Adam) for the cpu and
paper widths at a small batch.

    uv run python tools/bench/bench_threedsr.py                 # everything (several minutes)
    uv run python tools/bench/bench_threedsr.py --setups rgbd --no-train
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch
import torch.nn.functional as F
import vqcore
from threedsr import Detector, DetectorConfig, ThreeDSR, TrainData
from threedsr.generator import FeatureAnomalyGenerator
from threedsr.losses import stage2_losses
from threedsr.train import make_batch

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


def bench_inference(setup: str, size: int, n: int, batch: int, repeats: int) -> dict[str, float]:
    """Alternate reference / threedsr / NCHW-batched passes ``repeats`` times and keep each one's
    best time (the machine is shared: the minimum is the least disturbed measurement)."""
    model, cfg = build(setup, "paper")
    x = torch.rand(n, CH[setup], size, size)
    k = cfg.filter_size
    reference_forward(model, x[:1], k)  # warm-up (oneDNN primitive creation)
    det = Detector(model, cfg, device="cpu", batch_size=batch)
    det.predict(x[:batch])
    model_nchw = model.to(memory_format=torch.contiguous_format)
    best = {"ref": float("inf"), "ours": float("inf"), "nchw": float("inf")}
    for _ in range(repeats):
        model.to(memory_format=torch.contiguous_format)
        t = time.perf_counter()
        ref_maps, ref_scores = reference_forward(model, x, k)
        best["ref"] = min(best["ref"], (time.perf_counter() - t) / n)
        det.model = model.to(memory_format=torch.channels_last)
        t = time.perf_counter()
        pred = det.predict(x)
        best["ours"] = min(best["ours"], (time.perf_counter() - t) / n)
        nchw = Detector(
            model_nchw.to(memory_format=torch.contiguous_format),
            cfg,
            batch_size=batch,
            channels_last=False,
        )
        t = time.perf_counter()
        nchw.predict(x)
        best["nchw"] = min(best["nchw"], (time.perf_counter() - t) / n)
    diff = (pred.maps - ref_maps).abs()
    return {
        "ref_s": best["ref"],
        "ours_s": best["ours"],
        "nchw_batched_s": best["nchw"],
        "max_err": max(float(diff.max()), float((pred.scores - ref_scores).abs().max())),
        "frac_over": float((diff > 1e-4).float().mean()),
    }


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
        loss = stage2_losses(
            o.logits, a.gt, o.srm_top, o.srm_bot, a.q_top, a.q_bot, o.object_recon, x
        )
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
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--no-train", action="store_true")
    ap.add_argument("--train-steps", type=int, default=3)
    ap.add_argument("--train-batch", type=int, default=2)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}"
    )
    print()
    print(
        f"Inference at {args.size}², paper widths, random weights ({args.images} images, batch {args.batch})"
    )
    print()
    print(
        "| setup | reference s/img | reference img/s | threedsr img/s | speed-up | NCHW batched img/s | max abs diff |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for s in args.setups:
        r = bench_inference(s, args.size, args.images, args.batch, args.repeats)
        print(
            f"| {s} | {r['ref_s']:.2f} | {1 / r['ref_s']:.2f} | {1 / r['ours_s']:.2f} | "
            f"{r['ref_s'] / r['ours_s']:.2f}x | {1 / r['nchw_batched_s']:.2f} | {r['max_err']:.1e} | "
            f"{100 * r['frac_over']:.3f} % |",
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
