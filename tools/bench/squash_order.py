"""Where the memory map's logistic goes, on implanted defects (session 22, README row 40).

Fits the rgbd ``memory`` detector on a class's training scans (``train_detector``, into
``--run``), implants dent / bump / colour / both twins (``implant.py``, 4 copies per seed) into the
odd half of its good validation scans, and scores them with the detector's calibrated z-map
squashed per pixel then smoothed (``pixels``, detectors before session 22) and smoothed then
squashed (``smoothed``, the default since).

    uv run python tools/bench/squash_order.py $THREEDSR_CANDYCANE CandyCane --seeds 1 2
    uv run python tools/bench/squash_order.py $THREEDSR_CABLE_GLAND cable_gland --seeds 1 2
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch
from bank_curve import KINDS, split_validation
from implant import implant, memory_maps, score_twins


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data")
    ap.add_argument("category")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument(
        "--run", type=Path, default=None, help="detector folder (default runs/squash-<category>)"
    )
    ap.add_argument("--out", type=Path, default=None, help="JSON results")
    args = ap.parse_args()
    import threedsr
    from threedsr.data import load_split, stack_inputs
    from threedsr.smoothing import box_filter

    run = args.run or Path("runs") / f"squash-{args.category}"
    cfg = threedsr.DetectorConfig.for_memory(
        "rgbd", data_root=args.data, category=args.category, out_dir=str(run), seed=0
    )
    kw = cfg.preprocess_kwargs()

    def good(split: str) -> torch.Tensor:
        prepared = load_split(args.data, args.category, split, kw)
        return stack_inputs([p for p in prepared if p.label == 0], "rgbd")

    _, held = split_validation(good("validation"))
    parts = [implant(held, 4, seed=s, kinds_cycle=KINDS) for s in args.seeds]
    twins = torch.cat([p[0] for p in parts])
    kinds = [k for p in parts for k in p[1]]
    masks = torch.cat([p[2] for p in parts])
    gts = torch.cat([torch.zeros(len(held), *masks.shape[1:]), masks]).numpy() > 0.5
    if not (run / "detector.pt").exists():
        threedsr.train_detector(cfg)
    det = threedsr.Detector.load(run, device="cpu")
    cal = det.map.memory_calibration
    z_good, z_bad = (cal.normalise(d) for d in memory_maps(det.map.memory, held, twins))
    orders = {
        "pixels": lambda z: box_filter(torch.sigmoid(z), det.filter_size),
        "smoothed": lambda z: torch.sigmoid(box_filter(z, det.filter_size)),
    }
    results = {}
    for name, order in orders.items():
        results[name] = score_twins(order(z_good), order(z_bad), kinds, KINDS, gts)
        print(args.category, f"{name:9s}", json.dumps(results[name]), flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    main()
