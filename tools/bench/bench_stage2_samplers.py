"""Stage-2 step time with the host and the device batch sampler, side by side in one process.

``AnomalyConfig.sampler``: ``host`` = numpy RNG + numba Perlin masks on the CPU with read-backs of
tensor values (the data path before issue 25), ``device`` = everything in torch on the training
device with no host synchronisation. Each round trains a fresh detector per sampler through
``threedsr.train_detector`` and reads its it/s over the second half of the run (warm-up
excluded); the best round of each sampler is reported. Random weights and data.

    uv run python tools/bench/bench_stage2_samplers.py                      # CPU, tiny widths
    uv run python tools/bench/bench_stage2_samplers.py --widths paper --size 384 --batch 16 \\
        --precision bf16 --device cuda                                      # the GPU figure
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
import vqcore
from threedsr import DetectorConfig, TrainData, train_detector

CH = {"rgbd": 4, "depth": 1, "rgb": 3}
TINY_BACKBONE = dict(hidden=16, res_hidden=8, num_res_layers=1, num_embeddings=32, embedding_dim=8)
TINY_HEADS = dict(
    srm_base=4, objdec_width=4, objdec_bottleneck=4, objdec_hidden=8, objdec_res_hidden=4
)


def its(args: argparse.Namespace, sampler: str, tmp: Path, rnd: int) -> float:
    s = args.size
    g = torch.Generator().manual_seed(0)
    fg = torch.zeros(8, 1, s, s)
    fg[:, :, s // 4 : 3 * s // 4, s // 4 : 3 * s // 4] = 1
    data = TrainData(torch.rand(8, CH[args.setup], s, s, generator=g), fg)
    torch.manual_seed(0)
    tiny = args.widths == "tiny"
    bcfg = (
        vqcore.BackboneConfig.cpu(args.setup, **TINY_BACKBONE)
        if tiny
        else getattr(vqcore.BackboneConfig, args.widths)(args.setup)
    )
    backbone = vqcore.build_backbone(bcfg).eval()
    cfg = DetectorConfig.preset(
        "paper" if tiny else args.widths,
        setup=args.setup,
        method="3dsr",
        **(TINY_HEADS if tiny else {}),
        out_dir=str(tmp / f"{sampler}-{rnd}"),
        image_size=s,
        batch_size=args.batch,
        iterations=args.steps,
        log_every=args.steps // 2,
        checkpoint_every=10 * args.steps,
        device=args.device,
        precision=args.precision,
        sampler=sampler,
        image_anomaly_prob=args.image_anomaly_prob,
    )
    res = train_detector(cfg, backbone=backbone, data=data)
    return float(res.history[-1]["it_per_s"])


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--setup", default="rgbd", choices=sorted(CH))
    ap.add_argument("--widths", default="tiny", choices=("tiny", "cpu", "paper"))
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=20, help="steps per run (even, >= 4)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32", choices=vqcore.PRECISIONS)
    ap.add_argument("--image-anomaly-prob", type=float, default=0.0)
    args = ap.parse_args()
    if args.steps < 4 or args.steps % 2:
        raise SystemExit("error: --steps must be even and at least 4")
    best = {"host": 0.0, "device": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        for rnd in range(args.rounds):
            for sampler in best:  # alternated: drifting machine load hits both alike
                best[sampler] = max(best[sampler], its(args, sampler, Path(tmp), rnd))
    print(
        f"{args.setup} {args.widths} widths, {args.size}², batch {args.batch}, {args.precision}, "
        f"{args.device}, image_anomaly_prob {args.image_anomaly_prob}"
    )
    for sampler, v in best.items():
        print(f"  {sampler:6s} {v:7.2f} it/s  {1000 / v:8.1f} ms/step")


if __name__ == "__main__":
    main()
