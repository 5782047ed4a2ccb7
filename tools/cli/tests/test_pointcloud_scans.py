"""Own scans as PCD / PLY point clouds: train on a folder of clouds that carry their colour
(millimetres, as Zivid and Photoneo write them), predict on a folder, a lone cloud and a
PLY + image pair; a corrupt cloud is one line and exit code 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pcprep
import pytest
import tifffile
from PIL import Image

from .conftest import CATEGORY

RUN = ("--size", 64, "--device", "cpu", "--quiet")


@pytest.fixture(scope="module")
def clouds(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory, cloud_bytes) -> Path:
    """The tiny data as ``<class>/<split>/[<type>/]xyz/NNN.pcd`` clouds in mm with their colour
    and no rgb/ folder (+ gt/ masks)."""
    root = tmp_path_factory.mktemp("clouds")
    for xyz_path in sorted((tiny_data / CATEGORY).rglob("xyz/*.tiff")):
        type_dir = xyz_path.parent.parent
        split = type_dir.parent.name
        folder = root / CATEGORY / split / (type_dir.name if split == "test" else "")
        (folder / "xyz").mkdir(parents=True, exist_ok=True)
        xyz = tifffile.imread(xyz_path).astype(np.float32) * np.float32(1000)
        rgb = np.asarray(Image.open(type_dir / "rgb" / f"{xyz_path.stem}.png").convert("RGB"))
        cloud = cloud_bytes.pcd_bytes(xyz, rgb, "binary_compressed")
        (folder / "xyz" / f"{xyz_path.stem}.pcd").write_bytes(cloud)
        gt = type_dir / "gt" / f"{xyz_path.stem}.png"
        if split == "test" and gt.is_file():
            (folder / "gt").mkdir(exist_ok=True)
            shutil.copy(gt, folder / "gt" / gt.name)
    return root


def _scores(cli, run: Path, out: Path, *inputs: object) -> dict[str, float]:
    res = cli("predict", "--run", run, *inputs, "--out", out, "--device", "cpu", "--quiet")
    assert res.exit_code == 0, res.stderr
    found = json.loads((out / "scores.json").read_text())
    return {s["name"]: s["score"] for s in found["samples"]}


def test_clouds_train_and_predict(
    cli, bad_input, clouds: Path, tmp_path: Path, cloud_bytes
) -> None:
    run = tmp_path / "run"
    res = cli("train", "--data", clouds, "--category", CATEGORY, "--depth-unit", "mm",
              "--out", run, *RUN)  # fmt: skip
    assert res.exit_code == 0, res.stderr
    test = clouds / CATEGORY / "test"
    by_folder = _scores(cli, run, tmp_path / "p1", test)
    assert len(by_folder) >= 2
    good = test / "good" / "xyz" / "000.pcd"
    # a lone cloud with colour, and the same scan as a PLY without colour + its image
    lone = tmp_path / "lone" / "scan.pcd"
    lone.parent.mkdir()
    shutil.copy(good, lone)
    cloud = pcprep.read_point_cloud(good)
    ply = tmp_path / "pair" / "scan.ply"
    ply.parent.mkdir()
    ply.write_bytes(cloud_bytes.ply_bytes(cloud.xyz, None, "binary_big_endian"))
    Image.fromarray(cloud.rgb).save(tmp_path / "pair" / "scan.png")
    got = _scores(cli, run, tmp_path / "p2", lone, ply, tmp_path / "pair" / "scan.png")
    assert list(got) == ["scan", "scan-1"]
    np.testing.assert_allclose(list(got.values()), [by_folder["good_000"]] * 2, rtol=1e-5)
    # a cloud without colour alone, and a corrupt cloud: one line, exit code 2
    res = cli("predict", "--run", run, ply, "--out", tmp_path / "p3", "--device", "cpu")
    bad_input(res, str(ply), "without its rgb", "the point cloud has no colour")
    broken = tmp_path / "broken" / "xyz"
    broken.mkdir(parents=True)
    (broken / "000.pcd").write_bytes(good.read_bytes()[:-50])
    res = cli(
        "predict", "--run", run, broken / "000.pcd", "--out", tmp_path / "p4", "--device", "cpu"
    )
    bad_input(res, str(broken / "000.pcd"), "truncated PCD")
