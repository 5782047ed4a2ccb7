"""The `cpu` preset and its ablations, one row per option, on the fixed synthetic benchmark or on
real data: train (or resume) a detector, then evaluate it with several fusion weights of the
feature memory (no retraining needed for those rows).

    # the preset itself (pretrained backbone, as `threedsr-cli train --preset cpu`):
    uv run python tools/bench/cpu_recipe.py --synthetic runs/bench-synth --category puck \\
        --out runs/recipe/puck
    # one option switched back to the reference (here: the reference SRM):
    uv run python tools/bench/cpu_recipe.py --data $THREEDSR_CABLE_GLAND --category cable_gland \\
        --set srm_residual=false --out runs/recipe/cg-srm
    # several classes / setups, one JSON line each:
    uv run python tools/bench/cpu_recipe.py --synthetic runs/bench-synth --category puck bar dome

Prints one JSON line per (class, memory weight): I-AUROC, P-AUROC, AUPRO, per-type I-AUROC and
the stage-2 training time.
"""

from __future__ import annotations

import os

# Before torch loads: busy-waiting OpenMP workers slow a shared 2-core machine ~10x.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import os
import time
from pathlib import Path

from learning_curve import add_data_arguments, data_root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_arguments(ap)
    ap.add_argument("--dada", default=None, help="stage-1 backbone (default: the pretrained one)")
    ap.add_argument("--set", action="append", default=[], help="detector option key=json")
    ap.add_argument("--weights", type=float, nargs="*", default=None,
                    help="memory weights to evaluate (default: the preset's, 0 and 1)")  # fmt: skip
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("runs/recipe"))
    args = ap.parse_args()

    import threedsr
    import torch

    torch.set_num_threads(args.threads)
    data = data_root(args)
    extra = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)}
    for category in args.category:
        out = args.out / category if len(args.category) > 1 else args.out
        cfg = threedsr.DetectorConfig.preset(
            "cpu",
            setup=args.setup,
            data_root=str(data),
            category=category,
            backbone=args.dada,
            out_dir=str(out),
            cache_dir=str(args.out / "cache"),
            seed=args.seed,
            **extra,
        )
        start = time.perf_counter()
        threedsr.train_detector(cfg)
        minutes = (time.perf_counter() - start) / 60
        weights = args.weights
        if weights is None:
            weights = sorted({cfg.memory_weight, 0.0, 1.0}) if cfg.memory_weight else [0.0]
        for w in weights:
            det = threedsr.Detector.load(out, device="cpu", memory_weight=w)
            r = threedsr.evaluate(det, data, category, native=False, cache_dir=cfg.cache_dir)
            r = r[category]
            row = {
                "category": category,
                "setup": args.setup,
                "options": extra,
                "memory_weight": w,
                "image_auroc": round(r["image_auroc"], 4),
                "pixel_auroc": round(r["pixel_auroc"], 4),
                "aupro": round(r["aupro"], 4),
                "per_defect_type": {k: round(v, 4) for k, v in r["per_defect_type"].items()},
                "train_minutes": round(minutes, 2),
                "threads": args.threads,
            }
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
