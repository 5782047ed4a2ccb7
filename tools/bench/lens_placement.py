"""Where a calibration puts a class's real points, with and without its lens, and what the lens
costs `organize_points` (docs/bench/pcprep.md, "A camera's calibration file").

    uv run python tools/bench/lens_placement.py $THREEDSR_CABLE_GLAND --category cable_gland

For every tenth scan of the class (MVTec 3D-AD xyz TIFFs, whose points sit on their own pixels)
the class's ``calibration/camera_parameters.json`` (`pcprep.read_camera`) projects each valid
point, once as a pinhole and once through its lens: the mean offset from the point's own pixel
(column, row), the spread around that offset (a constant offset moves every point alike and
swaps none; the spread is what shuffles neighbours), the share of points that the scan's
common offset, rounded to whole pixels, describes, and the share that a projection of the
shuffled scan puts back on their own pixel. Then the time of `organize_points` on one
shuffled scan with and without the lens (median of ``--repeat``, after a warm-up).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pcprep
import tifffile
from bench_pointcloud_files import median_time
from pcprep.camera import distort


def _offsets(xyz: np.ndarray, cam: pcprep.Camera, lens: pcprep.Distortion | None) -> np.ndarray:
    """``(N, 2)`` column and row between where the camera images each valid point and its pixel."""
    rows, cols = np.nonzero(xyz[..., 2] > 0)
    x, y, z = (xyz[rows, cols, i].astype(np.float64) for i in range(3))
    xd, yd = distort(x / z, y / z, lens)
    (fx, fy), (cx, cy) = cam.focal_px, cam.principal_point
    return np.stack([fx * xd + cx - cols, fy * yd + cy - rows], axis=1)


def _own_pixel_share(xyz: np.ndarray, cam: pcprep.Camera, lens, seed: int) -> float:
    valid = xyz[..., 2] > 0
    points = xyz[valid][np.random.default_rng(seed).permutation(int(valid.sum()))]
    out, _ = pcprep.organize_points(
        points,
        shape=cam.grid_shape,
        focal_px=cam.focal_px,
        principal_point=cam.principal_point,
        distortion=lens,
    )
    return float(((out == xyz).all(-1) & valid).sum() / valid.sum())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data", type=Path, help="MVTec 3D-AD root")
    ap.add_argument("--category", required=True)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--camera", type=Path, help="another calibration file (default: the class's)")
    args = ap.parse_args()
    src = args.data / args.category
    cam = pcprep.read_camera(args.camera or src / "calibration" / "camera_parameters.json")
    print(f"camera: {cam}")
    paths = sorted(src.glob("*/*/xyz/*.tiff"))[::10]
    print(f"{len(paths)} scans (every tenth)\n")
    print("| camera | mean offset col, row (px) | spread col, row (px) | p99 distance from "
          "the mean offset (px) | points moved by the scan's common whole-pixel offset | "
          "points back on their own pixel |")  # fmt: skip
    print("|---|---|---|---:|---:|---:|")
    for name, lens in (
        ("pinhole", None),
        (f"with its lens ({cam.distortion.model})", cam.distortion),
    ):
        offsets, own = [], []
        for n, path in enumerate(paths):
            xyz = tifffile.imread(path).astype(np.float32)
            offset = _offsets(xyz, cam, lens)
            offsets.append(offset)
            own.append(_own_pixel_share(xyz, cam, lens, n))
        per_scan_mean = np.array([o.mean(0) for o in offsets])
        around = np.concatenate([o - o.mean(0) for o in offsets])
        # a translation by whole pixels moves every point alike and swaps none
        together = np.mean(np.concatenate([
            (np.floor(o + 0.5) == np.floor(o.mean(0) + 0.5)).all(1) for o in offsets
        ]))  # fmt: skip
        mean = per_scan_mean.mean(0)
        print(f"| {name} | {mean[0]:+.2f}, {mean[1]:+.2f} (scans {per_scan_mean[:, 0].min():+.2f}.."
              f"{per_scan_mean[:, 0].max():+.2f}, {per_scan_mean[:, 1].min():+.2f}.."
              f"{per_scan_mean[:, 1].max():+.2f}) | {around[:, 0].std():.2f}, {around[:, 1].std():.2f} "
              f"| {np.percentile(np.hypot(*around.T), 99):.2f} | {together:.3f} "
              f"| {np.mean(own):.3f} |")  # fmt: skip
    xyz = tifffile.imread(paths[0]).astype(np.float32)
    valid = xyz[..., 2] > 0
    points = np.ascontiguousarray(
        xyz[valid][np.random.default_rng(0).permutation(int(valid.sum()))]
    )
    kw = dict(shape=cam.grid_shape, focal_px=cam.focal_px, principal_point=cam.principal_point)
    plain = 1e3 * median_time(lambda: pcprep.organize_points(points, **kw), args.repeat)
    bent = 1e3 * median_time(
        lambda: pcprep.organize_points(points, **kw, distortion=cam.distortion), args.repeat
    )
    print(f"\norganize_points, {len(points):,} points onto {cam.grid_shape}: pinhole {plain:.1f} ms, "
          f"with the lens {bent:.1f} ms ({bent / plain:.2f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
