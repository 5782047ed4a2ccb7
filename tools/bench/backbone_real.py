"""Stage-1 backbones on real scans: reconstruction error (depth on the object, RGB) and code usage,
for the shipped pretrained backbones against a freshly trained short `cpu` run (300 iterations,
what `train-dada --preset cpu` gives by default).

    uv run python tools/bench/backbone_real.py --data $THREEDSR_CABLE_GLAND --category cable_gland
    uv run python tools/bench/backbone_real.py --data ../shared/data/real/eyecandies \\
        --category CandyCane --split test_public

Prints a markdown table: per backbone and setup, depth MAE on the foreground, RGB MAE, and the
share of codes used (top / bottom level) on those scans.
"""

from __future__ import annotations

import os

# Before torch loads: busy-waiting OpenMP workers slow a shared 2-core machine ~10x.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import tempfile
from pathlib import Path


def measure(model, prepared, setup: str) -> dict[str, float]:
    import numpy as np
    import torch
    from threedsr.data import foreground_of, stack_inputs

    x = stack_inputs(prepared, setup)
    fg = torch.from_numpy(np.stack([foreground_of(p) for p in prepared]) > 0)
    depth_err, rgb_err, top, bot = [], [], set(), set()
    with torch.no_grad():
        for i in range(0, len(x), 8):
            xb = x[i : i + 8]
            recon, _, enc = model(xb)
            err = (recon - xb).abs()
            if setup != "rgb":
                depth_err.append(err[:, 0][fg[i : i + 8]])
            if setup != "depth":
                rgb_err.append(err[:, -3:].mean(1).flatten())
            top |= set(enc.idx_top.unique().tolist())
            bot |= set(enc.idx_bot.unique().tolist())
    k = model.config.num_embeddings
    return {
        "depth_mae_fg": float(torch.cat(depth_err).mean()) if depth_err else float("nan"),
        "rgb_mae": float(torch.cat(rgb_err).mean()) if rgb_err else float("nan"),
        "codes_top": len(top) / k,
        "codes_bot": len(bot) / k,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--category", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--setups", nargs="+", default=["rgbd", "depth", "rgb"])
    ap.add_argument("--short-iterations", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch
    import vqcore
    from threedsr.data import load_split

    torch.set_num_threads(args.threads)
    params = dict(size=args.size, plane="robust", fg_threshold=0.005, fill_iterations=2)
    prepared = load_split(str(args.data), args.category, args.split, params)
    print(f"{args.category}/{args.split}: {len(prepared)} scans at {args.size} px\n")
    print("| setup | backbone | depth MAE (object) | RGB MAE | codes used top / bottom |")
    print("|---|---|---:|---:|---:|")
    for setup in args.setups:
        shipped = vqcore.load_pretrained(setup)
        with tempfile.TemporaryDirectory() as tmp:
            cfg = vqcore.StageOneConfig.preset(
                "cpu", setup, iterations=args.short_iterations, out_dir=Path(tmp), log_every=100
            )
            vqcore.train_dada(cfg)
            short = vqcore.load_backbone(tmp, setup=setup)
        step = vqcore.pretrained_manifest()["backbones"][setup]["iterations"]
        for name, model in ((f"shipped ({step} it)", shipped), (f"cpu preset ({cfg.iterations} it)", short)):  # fmt: skip
            m = measure(model, prepared, setup)
            print(
                f"| {setup} | {name} | {m['depth_mae_fg']:.4f} | {m['rgb_mae']:.4f} | "
                f"{m['codes_top']:.2f} / {m['codes_bot']:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
