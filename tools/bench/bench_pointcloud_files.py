"""Read speed of organized PCD / PLY clouds: pcprep.read_point_cloud against pypcd4 and plyfile
(the files those libraries write), in one process, interleaved.

    uv run python tools/bench/bench_pointcloud_files.py [--repeat 5] [--sizes 400x400,1200x1600]

Each reader decodes the file into xyz (and colour); pcprep also lays the points out as the
(H, W, 3) grid and zeroes invalid points, the references stop at their record arrays. Times are
the median wall time of ``--repeat`` reads after one warm-up (numba compiled, file in the page
cache); the ratio is reference / pcprep (above 1: pcprep is faster).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pcprep
import plyfile
import pypcd4


def _scan(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    v, u = np.mgrid[0:rows, 0:cols].astype(np.float32)
    z = 600 + 20 * np.sin(u / 40) + rng.normal(0, 0.05, (rows, cols))
    xyz = np.stack([(u - cols / 2) * z / 1000, (v - rows / 2) * z / 1000, z], -1)
    xyz = xyz.astype(np.float32).reshape(-1, 3)
    xyz[rng.random(rows * cols) < 0.05] = np.nan
    rgb = rng.integers(0, 256, (rows * cols, 3), dtype=np.uint8)
    return xyz, rgb


def _write(folder: Path, rows: int, cols: int) -> dict[str, Path]:
    xyz, rgb = _scan(rows, cols)
    files = {}
    packed = pypcd4.PointCloud.encode_rgb(rgb)
    pc = pypcd4.PointCloud.from_points(
        [xyz[:, 0], xyz[:, 1], xyz[:, 2], packed], ("x", "y", "z", "rgb"), (np.float32,) * 4
    )
    pc = pypcd4.PointCloud(
        pc.metadata.model_copy(update={"width": cols, "height": rows}), pc.pc_data
    )
    for enc in ("ascii", "binary", "binary_compressed"):
        files[f"pcd {enc}"] = folder / f"{enc}.pcd"
        pc.save(files[f"pcd {enc}"], encoding=pypcd4.Encoding(enc))
    table = np.empty(
        len(xyz), [(a, "f4") for a in "xyz"] + [(c, "u1") for c in ("red", "green", "blue")]
    )
    for i, a in enumerate("xyz"):
        table[a] = xyz[:, i]
    for i, c in enumerate(("red", "green", "blue")):
        table[c] = rgb[:, i]
    for name, text, order in (
        ("ascii", True, "="),
        ("binary_little_endian", False, "<"),
        ("binary_big_endian", False, ">"),
    ):
        data = plyfile.PlyData([plyfile.PlyElement.describe(table, "vertex")], text=text,
                               byte_order=order, obj_info=[f"num_cols {cols}", f"num_rows {rows}"])  # fmt: skip
        files[f"ply {name}"] = folder / f"{name}.ply"
        data.write(str(files[f"ply {name}"]))
    return files


def _reference(kind: str, path: Path) -> None:
    if kind.startswith("pcd"):
        pc = pypcd4.PointCloud.from_path(path)
        pc.numpy(("x", "y", "z"))
        pypcd4.PointCloud.decode_rgb(pc.pc_data["rgb"])
    else:
        v = plyfile.PlyData.read(str(path))["vertex"].data
        np.stack([v["x"], v["y"], v["z"]], -1), np.stack([v["red"], v["green"], v["blue"]], -1)


def median_time(fn, repeat: int) -> float:
    """Median wall time (s) of ``repeat`` calls of ``fn`` after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--sizes", default="400x400,1200x1600")
    args = ap.parse_args()
    print("| cloud | format | MB | pcprep ms | reference ms | ratio |")
    print("|---|---|---:|---:|---:|---:|")
    for size in args.sizes.split(","):
        rows, cols = map(int, size.split("x"))
        with tempfile.TemporaryDirectory() as d:
            for kind, path in _write(Path(d), rows, cols).items():
                ours = median_time(lambda p=path: pcprep.read_point_cloud(p), args.repeat)
                ref = median_time(lambda k=kind, p=path: _reference(k, p), args.repeat)
                mb = path.stat().st_size / 1e6
                lib = "pypcd4" if kind.startswith("pcd") else "plyfile"
                print(f"| {rows}x{cols} | {kind} | {mb:.1f} | {ours * 1e3:.1f} | "
                      f"{ref * 1e3:.1f} ({lib}) | {ref / ours:.2f}x |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
