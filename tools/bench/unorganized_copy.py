"""An MVTec 3D-AD class as colour PCD clouds, organized and unorganized, to measure what
projecting unorganized clouds onto the camera's grid costs detection (docs/bench/pcprep.md).

    uv run python tools/bench/unorganized_copy.py $THREEDSR_CABLE_GLAND --category cable_gland \\
        --out /tmp/cg-clouds

Writes ``OUT/org/<class>/<split>/<type>/xyz/NNN.pcd`` (each scan organized, HEIGHT = rows) and
``OUT/unorg/...`` (its valid points in a seeded random order, HEIGHT 1), both binary, in the
scan's metres, colour = the rgb image at the valid points (zero elsewhere, so the two copies
differ only by the projection), with the gt/ masks. The source is read, never written. Prints
the pinhole the class's ``calibration/camera_parameters.json`` gives (focal = focus / sx) and
how far it moves the points of every tenth scan from their own pixels.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import tifffile
from bench_organize import cloud_writers
from PIL import Image


def _shift(xyz: np.ndarray, focal: float, centre: tuple[float, float]) -> np.ndarray:
    """Pixels between each valid point's own pixel and where the pinhole puts it."""
    rows, cols = np.nonzero(xyz[..., 2] > 0)
    x, y, z = (xyz[rows, cols, i].astype(np.float64) for i in range(3))
    u = np.floor(focal * x / z + centre[0] + 0.5)
    v = np.floor(focal * y / z + centre[1] + 0.5)
    return np.hypot(u - cols, v - rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data", type=Path, help="MVTec 3D-AD root")
    ap.add_argument("--category", required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    src = args.data / args.category
    cal = json.loads((src / "calibration" / "camera_parameters.json").read_text())
    focal, centre = cal["focus"] / cal["sx"], (cal["cx"], cal["cy"])
    print(f"--focal-px {focal:.3f} --principal-point {centre[0]},{centre[1]}")
    write = cloud_writers()
    shifts = []
    for n, xyz_path in enumerate(sorted(src.glob("*/*/xyz/*.tiff"))):
        type_dir = xyz_path.parent.parent
        xyz = tifffile.imread(xyz_path).astype(np.float32)
        rgb = np.asarray(Image.open(type_dir / "rgb" / f"{xyz_path.stem}.png").convert("RGB"))
        valid = xyz[..., 2] > 0
        rgb = np.where(valid[..., None], rgb, 0).astype(np.uint8)
        order = np.random.default_rng(n).permutation(int(valid.sum()))
        loose = (xyz[valid][order].reshape(1, -1, 3), rgb[valid][order])
        for kind, cloud in (("org", (xyz, rgb)), ("unorg", loose)):
            folder = args.out / kind / args.category / type_dir.relative_to(src)
            (folder / "xyz").mkdir(parents=True, exist_ok=True)
            (folder / "xyz" / f"{xyz_path.stem}.pcd").write_bytes(write.pcd_bytes(*cloud))
            gt = type_dir / "gt" / f"{xyz_path.stem}.png"
            if gt.is_file():
                (folder / "gt").mkdir(exist_ok=True)
                shutil.copy(gt, folder / "gt" / gt.name)
        if n % 10 == 0:
            shifts.append(_shift(xyz, focal, centre))
    moved = np.concatenate(shifts)
    print(f"{n + 1} scans; sampled points on their own pixel {np.mean(moved == 0):.3f}, "
          f"median shift {np.median(moved):.2f} px, p99 {np.percentile(moved, 99):.2f} px")  # fmt: skip


if __name__ == "__main__":
    main()
