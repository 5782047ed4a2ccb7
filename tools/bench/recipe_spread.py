"""How much a CPU-budget stage-2 result depends on the training set: train one detector (the `cpu`
preset: the 3DSR network, method ``3dsr``) on a freshly generated ``depthsim.scenes`` training set
and score it on a fixed test set.

Usage (after ``uv run threedsr-cli demo --out /tmp/demo``, whose test set it reuses, and its
stage-1 backbone when the demo trained one with ``--stage1``; else the pretrained one):
    uv run python tools/bench/recipe_spread.py --demo /tmp/demo --data-seed 1 --n-train 40
    uv run python tools/bench/recipe_spread.py --demo /tmp/demo --data-seed 1 --n-train 200

Prints one JSON line: training time, image AUROC (all and per defect type), pixel AUROC, AUPRO.
Two runs side by side use one torch thread each (the demo's setting).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import depthsim.scenes
import threedsr
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--demo", type=Path, required=True, help="a finished demo --out folder")
    ap.add_argument("--setup", default="rgbd", choices=["rgbd", "rgb"])
    ap.add_argument("--data-seed", type=int, default=1, help="training-set seed (demo: 0)")
    ap.add_argument("--n-train", type=int, default=40)
    ap.add_argument("--iterations", type=int, default=1000)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None, help="default: /tmp/recipe_spread/<...>")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    category = "puck"
    out = args.out or Path(
        f"/tmp/recipe_spread/{args.setup}_n{args.n_train}_s{args.data_seed}_{args.iterations}"
    )
    backbone = args.demo / ("dada-rgbd" if args.setup == "rgbd" else "backbone-rgb")
    # A demo without --stage1 uses the shipped pretrained backbones and writes none.
    backbone_arg = str(backbone) if (backbone / "backbone.pt").exists() else None
    start = time.perf_counter()
    data = depthsim.scenes.generate_dataset(
        out / "data",
        classes=[category],
        size=128,
        n_train=args.n_train,
        n_validation=8,
        n_test_per_type=2,
        seed=args.data_seed,
    )
    cfg = threedsr.DetectorConfig.preset(
        "cpu",
        setup=args.setup,
        data_root=str(data),
        category=category,
        backbone=backbone_arg,
        out_dir=str(out / "detector"),
        iterations=args.iterations,
        image_size=args.size,
        batch_size=8,
        checkpoint_every=max(1, args.iterations // 4),
        device="cpu",
        seed=0,
        resume=True,
    )
    threedsr.train_detector(cfg, lambda event: None)
    trained = time.perf_counter()
    det = threedsr.Detector.load(out / "detector", device="cpu")
    m = threedsr.evaluate(det, args.demo / "data", category, native=False)[category]
    print(
        json.dumps(
            {
                "setup": args.setup,
                "n_train": args.n_train,
                "data_seed": args.data_seed,
                "iterations": args.iterations,
                "backbone": backbone_arg or "pretrained",
                "train_s": round(trained - start),
                "image_auroc": round(m["image_auroc"], 3),
                "per_defect_type": {k: round(v, 3) for k, v in m["per_defect_type"].items()},
                "pixel_auroc": round(m["pixel_auroc"], 3),
                "aupro": round(m["aupro"], 3),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
