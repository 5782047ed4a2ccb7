"""The `cpu` preset and its ablations, one row per option, on the fixed synthetic benchmark or on
real data: train (or resume) a detector, then evaluate it with several weights of the descriptor
memory in the map (no retraining needed for those rows).

The detector is made with ``--method`` (default ``fused``: the 3DSR network and the descriptor
memory, so that every weight can be read from one run). A weight of 0 is the network's map alone
(``Detector.load(run, method="3dsr")``), 1 the memory's alone (``method="memory"``), and a weight
in between the fused map at that ``fusion_weight``; a ``3dsr`` run has weight 0 only, a
``memory`` run weight 1 only.

    # the preset, fused (pretrained backbone, as `threedsr-cli train --preset cpu --method fused`):
    uv run python tools/bench/cpu_recipe.py --synthetic runs/bench-synth --category puck \\
        --out runs/recipe/puck
    # one option switched back to the reference (here: the reference SRM):
    uv run python tools/bench/cpu_recipe.py --data $THREEDSR_CABLE_GLAND --category cable_gland \\
        --set srm_residual=false --out runs/recipe/cg-srm
    # several classes / setups, one JSON line each:
    uv run python tools/bench/cpu_recipe.py --synthetic runs/bench-synth --category puck bar dome

Prints one JSON line per (class, memory weight): I-AUROC, P-AUROC, AUPRO, per-type I-AUROC and
the training time (the network's and the memory's).
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
from typing import TYPE_CHECKING

from learning_curve import add_data_arguments, data_root

if TYPE_CHECKING:
    import threedsr


def detector_at(run: Path, weight: float) -> threedsr.Detector:
    """The run's detector with the memory at ``weight`` in its map: 0 = the 3DSR network alone,
    1 = the descriptor memory alone, in between = the fused map at that ``fusion_weight``."""
    import threedsr

    if weight <= 0.0:
        return threedsr.Detector.load(run, device="cpu", method="3dsr")
    if weight >= 1.0:
        return threedsr.Detector.load(run, device="cpu", method="memory")
    det = threedsr.Detector.load(run, device="cpu", method="fused")
    return threedsr.Detector(
        det.config.replace(fusion_weight=weight),
        network=det.network,
        memory=det.memory,
        heads_calibration=det.map.heads_calibration,
        memory_calibration=det.map.memory_calibration,
        device="cpu",
        path=det.path,
        category=det.category,
        preprocess=det.preprocess,
    )


def default_weights(config: threedsr.DetectorConfig) -> list[float]:
    """The weights a run holds: its method's, plus 0 and 1 for a fused run."""
    if config.method == "fused":
        return sorted({config.fusion_weight, 0.0, 1.0})
    return [config.memory_weight]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_arguments(ap)
    ap.add_argument("--dada", default=None, help="stage-1 backbone (default: the pretrained one)")
    ap.add_argument("--set", action="append", default=[], help="detector option key=json")
    ap.add_argument("--method", default="fused", choices=["memory", "3dsr", "fused"],
                    help="what the run makes (default: fused, which holds every weight)")  # fmt: skip
    ap.add_argument("--weights", type=float, nargs="*", default=None,
                    help="memory weights to evaluate, in [0, 1] (default: fused: its "
                    "fusion_weight, 0 and 1; 3dsr: 0; memory: 1)")  # fmt: skip
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
            **{"method": args.method, **extra},
        )
        start = time.perf_counter()
        threedsr.train_detector(cfg)
        minutes = (time.perf_counter() - start) / 60
        weights = default_weights(cfg) if args.weights is None else args.weights
        for w in weights:
            det = detector_at(out, w)
            r = threedsr.evaluate(det, data, category, native=False, cache_dir=cfg.cache_dir)
            r = r[category]
            row = {
                "category": category,
                "setup": args.setup,
                "options": extra,
                "method": cfg.method,
                "memory_weight": w,
                "map": det.method,
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
