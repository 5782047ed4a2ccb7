"""Projection of unorganized clouds onto the camera's grid: pcprep.organize_points (numba
z-buffer) against the same z-buffer written with numpy (a stable sort by pixel and depth) and,
when importable, Open3D's tensor ``PointCloud.project_to_depth_image``; plus what reading an
unorganized binary PCD with ``grid_shape`` costs beside the same scan organized.

    uv run python tools/bench/bench_organize.py [--repeat 7] [--sizes 400x400,1200x1600]
    uv run --with open3d-cpu --with libusb-package python tools/bench/bench_organize.py

The cloud is a camera's valid points (5 % of the pixels invalid) shuffled. numpy's result is
checked equal to pcprep's; Open3D writes a depth image only (no xyz, no colour) and rounds to
pixels its own way, so it is timed, not compared. Times are the median wall time of
``--repeat`` runs after one warm-up; the ratio is reference / pcprep (above 1: pcprep faster).
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
from pathlib import Path

import numpy as np
import pcprep
from bench_pointcloud_files import median_time

FOCAL = 1000.0
_WRITERS = Path(__file__).resolve().parents[2] / "packages" / "pcprep" / "tests" / "cloud_bytes.py"


def cloud_writers():
    """pcprep's tests/cloud_bytes.py: PCD / PLY files from numpy (loaded by path)."""
    spec = importlib.util.spec_from_file_location("bench_cloud_bytes", _WRITERS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cloud(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """An organized scan (xyz, rgb) and its valid points + colours shuffled."""
    rng = np.random.default_rng(0)
    _, u = np.mgrid[0:rows, 0:cols].astype(np.float64)
    z = 0.6 + 0.02 * np.sin(u / 40) + rng.normal(0, 5e-5, (rows, cols))
    z[rng.random((rows, cols)) < 0.05] = 0.0
    xyz = pcprep.depth_to_xyz(z, focal_px=FOCAL)
    rgb = rng.integers(0, 256, (rows, cols, 3), dtype=np.uint8)
    rgb[z == 0] = 0
    valid = z > 0
    order = rng.permutation(int(valid.sum()))
    return xyz, rgb, xyz[valid][order], rgb[valid][order]


def numpy_zbuffer(points, colours, shape, focal):
    """The same z-buffer in numpy: nearest point per pixel, the first of equal z."""
    h, w = shape
    pts = np.asarray(points, dtype=np.float64)
    x, y, z = pts[:, 0], pts[:, 1], pts[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.floor(focal * x / z + w / 2.0 + 0.5)
        v = np.floor(focal * y / z + h / 2.0 + 0.5)
    ok = np.isfinite(pts).all(1) & (z > 0) & (u >= 0) & (u < w) & (v >= 0) & (v < h)
    idx = np.flatnonzero(ok)
    pixel = v[idx].astype(np.int64) * w + u[idx].astype(np.int64)
    order = np.lexsort((idx, z[idx], pixel))  # by pixel, then depth, then input order
    first = np.ones(len(order), dtype=bool)
    first[1:] = pixel[order][1:] != pixel[order][:-1]
    keep = idx[order[first]]
    xyz = np.zeros((h * w, 3), dtype=np.float32)
    rgb = np.zeros((h * w, 3), dtype=np.uint8)
    xyz[pixel[order[first]]] = pts[keep]
    rgb[pixel[order[first]]] = colours[keep]
    return xyz.reshape(h, w, 3), rgb.reshape(h, w, 3)


def _open3d():
    try:
        from btf_baseline import open3d_module  # loads the libusb open3d needs (its docstring)

        return open3d_module()
    except ImportError:
        return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--sizes", default="400x400,1200x1600")
    args = ap.parse_args()
    o3d = _open3d()
    writers = cloud_writers()
    print("| grid | points | step | pcprep ms | reference ms | ratio |")
    print("|---|---:|---|---:|---:|---:|")
    for size in args.sizes.split(","):
        rows, cols = map(int, size.split("x"))
        bench_size(rows, cols, args.repeat, o3d, writers)


def bench_size(rows: int, cols: int, repeat: int, o3d, writers) -> None:
    """Print the rows of one grid (the closures below bind this call's arrays)."""
    xyz, rgb, points, colours = _cloud(rows, cols)
    shape = (rows, cols)
    ours_xyz, ours_rgb = pcprep.organize_points(points, colours, shape=shape, focal_px=FOCAL)
    ref_xyz, ref_rgb = numpy_zbuffer(points, colours, shape, FOCAL)
    np.testing.assert_array_equal(ours_xyz, ref_xyz)
    np.testing.assert_array_equal(ours_rgb, ref_rgb)
    np.testing.assert_array_equal(ours_xyz, xyz)  # each point back on its own pixel
    ours = median_time(
        lambda: pcprep.organize_points(points, colours, shape=shape, focal_px=FOCAL),
        repeat,
    )
    row = f"| {rows}x{cols} | {len(points):,} "
    ref = median_time(lambda: numpy_zbuffer(points, colours, shape, FOCAL), repeat)
    print(f"{row}| organize_points | {ours * 1e3:.1f} | {ref * 1e3:.1f} (numpy) | "
          f"{ref / ours:.2f}x |", flush=True)  # fmt: skip
    if o3d is not None:
        t = o3d.t.geometry.PointCloud(o3d.core.Tensor(points.astype(np.float32)))
        k = o3d.core.Tensor([[FOCAL, 0, cols / 2], [0, FOCAL, rows / 2], [0, 0, 1]])
        eye = o3d.core.Tensor(np.eye(4))
        ref = median_time(lambda: t.project_to_depth_image(cols, rows, k, eye, 1.0, 10.0), repeat)
        print(f"{row}| organize_points | {ours * 1e3:.1f} | {ref * 1e3:.1f} (Open3D depth "
              f"only) | {ref / ours:.2f}x |", flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory() as d:
        organized, loose = Path(d, "organized.pcd"), Path(d, "unorganized.pcd")
        organized.write_bytes(writers.pcd_bytes(xyz, rgb, "binary"))
        loose.write_bytes(writers.pcd_bytes(points.reshape(1, -1, 3), colours, "binary"))
        opts = {"grid_shape": shape, "focal_px": FOCAL}
        ours = median_time(lambda: pcprep.read_point_cloud(loose, **opts), repeat)
        ref = median_time(lambda: pcprep.read_point_cloud(organized), repeat)
        print(f"{row}| read_point_cloud, unorganized vs organized file | {ours * 1e3:.1f} | "
              f"{ref * 1e3:.1f} (organized) | {ref / ours:.2f}x |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
