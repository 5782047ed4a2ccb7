"""Train (or resume) the shipped stage-1 backbones, then write them into vqcore with a manifest.

The three trainings are plain ``threedsr-cli train-dada`` runs, resumable: run this script again
after an interruption and each continues from its checkpoint. ``--ship`` strips the finished
checkpoints of their resume-only state and writes ``packages/vqcore/src/vqcore/pretrained/`` with
``manifest.json`` (command, widths, iterations, data recipe, loss curve, sha256).

    uv run python tools/pretrain_backbones.py --runs runs/pretrain            # train / resume
    uv run python tools/pretrain_backbones.py --runs runs/pretrain --ship     # then ship

One core each, one after the other (``OMP_NUM_THREADS=1``): the session's other core stays free.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import vqcore

#: The shipped recipe: cpu widths (64 hidden, 512 x 64 codes), 64 px, batch 16, seed 0.
RECIPE = {
    "rgbd": {"iterations": 8000},
    "depth": {"iterations": 6000},
    "rgb": {"iterations": 6000},
}
COMMON = ["--preset", "cpu", "--batch-size", "16", "--size", "64", "--seed", "0"]


def command(setup: str, out: Path) -> list[str]:
    return [
        "threedsr-cli", "train-dada", *COMMON, "--setup", setup,
        "--iterations", str(RECIPE[setup]["iterations"]), "--out", str(out),
    ]  # fmt: skip


def train(runs: Path) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
    for setup in RECIPE:
        out = runs / setup
        ckpt = out / vqcore.CHECKPOINT_NAME
        if ckpt.exists() and vqcore.read_checkpoint(ckpt).get("complete"):
            continue
        cmd = command(setup, out) + (["--resume"] if ckpt.exists() else []) + ["--quiet"]
        print("+", shlex.join(cmd), flush=True)
        subprocess.run(cmd, check=True, env=env)


def _thin(curve: list[dict[str, float]], keep: int = 200) -> list[dict[str, float]]:
    step = max(1, len(curve) // keep)
    thinned = curve[::step]
    if curve and thinned[-1] is not curve[-1]:
        thinned.append(curve[-1])
    return [{k: round(float(v), 6) for k, v in p.items()} for p in thinned]


def ship(runs: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    manifest: dict = {
        "description": (
            "Stage-1 backbones trained by the threedsr project on 2 CPU cores: simulated Perlin "
            "depth (depthsim, random affine) and procedural RGB textures (depthsim); no dataset, "
            "no ImageNet. Stage 1 does not depend on the object class."
        ),
        "recreate": "uv run python tools/pretrain_backbones.py --runs RUNS && "
        "uv run python tools/pretrain_backbones.py --runs RUNS --ship",
        "backbones": {},
    }
    for setup in RECIPE:
        src = runs / setup / vqcore.CHECKPOINT_NAME
        data = vqcore.read_checkpoint(src)
        if not data.get("complete"):
            sys.exit(f"{src}: training not finished (step {data.get('step')}); train first")
        target = dest / f"{setup}.pt"
        vqcore.strip_checkpoint(src, target)
        tc = data["train_config"]
        manifest["backbones"][setup] = {
            "file": target.name,
            "sha256": vqcore.sha256_of(target),
            "bytes": target.stat().st_size,
            "command": shlex.join(command(setup, Path("RUNS") / setup)),
            "widths": data["config"],
            "iterations": int(data["step"]),
            "data": {
                "depth": "depthsim Perlin depth simulation, random affine"
                if setup != "rgb"
                else None,
                "rgb": "depthsim.procedural_rgb textures" if setup != "depth" else None,
                "image_size": tc["image_size"],
                "batch_size": tc["batch_size"],
                "seed": tc["seed"],
            },
            "optimizer": {"lr": tc["lr"], "milestones": tc["lr_milestones"], "loss": tc["loss"]},
            "final_metrics": {k: round(float(v), 6) for k, v in data.get("metrics", {}).items()},
            "curve": _thin(list(data.get("curve", []))),
            "versions": data.get("versions", {}),
        }
    path = dest / "manifest.json"
    tmp = path.with_name(".manifest.json.tmp")
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    tmp.replace(path)
    print(f"wrote {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=Path, required=True, help="folder of the three stage-1 runs")
    ap.add_argument("--ship", action="store_true", help="write the finished runs into vqcore")
    ap.add_argument("--dest", type=Path, default=vqcore.PRETRAINED_DIR)
    args = ap.parse_args()
    if args.ship:
        ship(args.runs, args.dest)
    else:
        train(args.runs)


if __name__ == "__main__":
    main()
