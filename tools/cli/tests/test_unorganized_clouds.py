"""``--grid`` / ``--focal-px`` / ``--principal-point``: unorganized clouds (a camera's valid
points only, in any order, as many exporters and ROS pipelines write them) train and predict as
the same scans written as organized clouds do, with the camera stored in the run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pcprep
import pytest
import tifffile
from PIL import Image

from .conftest import CATEGORY

RUN = ("--size", 64, "--device", "cpu", "--quiet")
# 56 columns of the 64 x 64 tiny scans: a non-square camera, so a swapped --grid shows
H, W = 64, 56
FOCAL, CENTRE = 70.0, (W / 2 - 3.5, H / 2 + 2.25)
POINT = f"{CENTRE[0]},{CENTRE[1]}"
CAMERA = ("--grid", f"{W}x{H}", "--focal-px", FOCAL, "--principal-point", POINT)


@pytest.fixture(scope="module")
def clouds(
    tiny_data: Path, tmp_path_factory: pytest.TempPathFactory, cloud_bytes
) -> dict[str, Path]:
    """The tiny data's depth seen through one pinhole, in millimetres with colour, twice: as
    organized clouds and as the shuffled valid points of each (``<class>/<split>/[<type>/]
    xyz/NNN.pcd`` + gt/)."""
    roots = {k: tmp_path_factory.mktemp(k) for k in ("organized", "unorganized")}
    for n, xyz_path in enumerate(sorted((tiny_data / CATEGORY).rglob("xyz/*.tiff"))):
        type_dir = xyz_path.parent.parent
        split = type_dir.parent.name
        z = tifffile.imread(xyz_path)[:, :W, 2].astype(np.float64) * 1000.0
        xyz = pcprep.depth_to_xyz(z, focal_px=FOCAL, principal_point=CENTRE)
        rgb = np.asarray(Image.open(type_dir / "rgb" / f"{xyz_path.stem}.png").convert("RGB"))
        rgb = np.where((xyz[..., 2] > 0)[..., None], rgb[:, :W], 0).astype(np.uint8)
        valid = xyz[..., 2] > 0
        order = np.random.default_rng(n).permutation(int(valid.sum()))
        points, colours = xyz[valid][order], rgb[valid][order]
        gt = type_dir / "gt" / f"{xyz_path.stem}.png"
        for kind, root in roots.items():
            folder = root / CATEGORY / split / (type_dir.name if split == "test" else "")
            (folder / "xyz").mkdir(parents=True, exist_ok=True)
            if kind == "organized":
                cloud = cloud_bytes.pcd_bytes(xyz, rgb, "binary")
            else:
                cloud = cloud_bytes.pcd_bytes(points.reshape(1, -1, 3), colours, "binary")
            (folder / "xyz" / f"{xyz_path.stem}.pcd").write_bytes(cloud)
            if split == "test" and gt.is_file():
                (folder / "gt").mkdir(exist_ok=True)
                mask = np.asarray(Image.open(gt))[:, :W]
                Image.fromarray(mask).save(folder / "gt" / gt.name)
    return roots


def _scores(cli, run: Path, out: Path, *inputs: object) -> dict[str, float]:
    res = cli("predict", "--run", run, *inputs, "--out", out, "--device", "cpu", "--quiet")
    assert res.exit_code == 0, res.stderr
    found = json.loads((out / "scores.json").read_text())
    return {s["name"]: s["score"] for s in found["samples"]}


def _train(cli, data: Path, out: Path, *options: object):
    return cli("train", "--data", data, "--category", CATEGORY, "--depth-unit", "mm",
               "--out", out, *options, *RUN)  # fmt: skip


def test_unorganized_clouds_score_as_the_organized_scans(cli, clouds, tmp_path) -> None:
    org_run, unorg_run = tmp_path / "org", tmp_path / "unorg"
    assert _train(cli, clouds["organized"], org_run).exit_code == 0
    res = _train(cli, clouds["unorganized"], unorg_run, *CAMERA)
    assert res.exit_code == 0, res.stderr
    settings = json.loads((unorg_run / "run.json").read_text())["settings"]
    assert settings["grid_shape"] == [H, W] and settings["principal_point"] == list(CENTRE)
    # predict reads the camera from the run
    want = _scores(cli, org_run, tmp_path / "p-org", clouds["organized"] / CATEGORY / "test")
    got = _scores(cli, unorg_run, tmp_path / "p-unorg", clouds["unorganized"] / CATEGORY / "test")
    assert len(want) >= 4 and got == want
    lone = clouds["unorganized"] / CATEGORY / "test" / "good" / "xyz" / "000.pcd"
    one = _scores(cli, unorg_run, tmp_path / "p-one", lone, "--raw-maps")
    assert one == {"good_000": want["good_000"]}
    assert tifffile.imread(tmp_path / "p-one" / "good_000_map.tiff").shape == (H, W)
    # the run's camera does not disturb organized clouds
    organized = clouds["organized"] / CATEGORY / "test"
    assert _scores(cli, unorg_run, tmp_path / "p-mixed", organized) == want
    # eval reads the camera from the run too: the same metrics as the organized scans'
    metrics = {}
    for kind, run in (("organized", org_run), ("unorganized", unorg_run)):
        out = tmp_path / f"e-{kind}"
        res = cli("eval", "--run", run, "--data", clouds[kind], "--out", out, "--device", "cpu")
        assert res.exit_code == 0, res.stderr
        found = json.loads((out / "metrics.json").read_text())[CATEGORY]
        metrics[kind] = {k: v for k, v in found.items() if not k.startswith("detector")}
    assert metrics["unorganized"] == metrics["organized"]
    assert {"image_auroc", "pixel_auroc", "aupro"} <= set(metrics["organized"])


def test_a_pack_keeps_the_camera(cli, clouds, tmp_path) -> None:
    pack = tmp_path / "u.3dsrpack"
    res = cli("pack", "--data", clouds["unorganized"], "--category", CATEGORY, "--size", 64,
              "--depth-unit", "mm", *CAMERA, "--out", pack, "--quiet")  # fmt: skip
    assert res.exit_code == 0, res.stderr
    res = cli("train", "--data", pack, "--out", tmp_path / "r", *RUN)
    assert res.exit_code == 0, res.stderr
    settings = json.loads((tmp_path / "r" / "run.json").read_text())["settings"]
    assert settings["grid_shape"] == [H, W] and settings["focal_px"] == FOCAL
    res = cli("train", "--data", pack, "--depth-unit", "mm", "--grid", f"{H}x{W}",
              "--focal-px", FOCAL, "--principal-point", POINT,
              "--out", tmp_path / "r2", *RUN)  # fmt: skip
    assert res.exit_code == 2 and f"(threedsr-cli pack --grid {H}x{W} " in res.stderr, res.stderr


@pytest.mark.parametrize(
    ("options", "fragments"),
    [
        ((), ("000.pcd", "unorganized point cloud", "--grid WxH --focal-px F")),
        (("--grid", f"{W}x{H}"), ("--grid needs --focal-px",)),
        (("--principal-point", "1,2"), ("--principal-point needs --focal-px",)),
        (("--grid", "64", "--focal-px", 70), ("--grid: expected the camera's WIDTHxHEIGHT",)),
        (("--grid", "64x64", "--focal-px", 70, "--principal-point", "1;2"), ("CX,CY",)),
        # a camera's height and width swapped, or another camera's focal length
        (
            ("--grid", f"{H}x{W}", "--focal-px", FOCAL, "--principal-point", POINT),
            ("000.pcd", "fall off the 64x56 grid"),
        ),
        ((*CAMERA[:3], FOCAL * 3, *CAMERA[4:]), (".pcd", "fall off")),
    ],
)
def test_a_camera_that_does_not_fit_is_one_line(cli, bad_input, clouds, tmp_path, options,
                                                fragments) -> None:  # fmt: skip
    res = _train(cli, clouds["unorganized"], tmp_path / "r", *options)
    bad_input(res, *fragments)
    assert not (tmp_path / "r" / "detector.pt").exists()


def test_a_run_without_a_camera_names_the_way_out(cli, bad_input, clouds, tmp_path) -> None:
    run = tmp_path / "org"
    assert _train(cli, clouds["organized"], run).exit_code == 0
    lone = clouds["unorganized"] / CATEGORY / "test" / "good" / "xyz" / "000.pcd"
    res = cli("predict", "--run", run, lone, "--out", tmp_path / "p", "--device", "cpu")
    bad_input(res, "000.pcd", "unorganized point cloud", "--grid WxH")
    assert not (tmp_path / "p").exists() or not any((tmp_path / "p").iterdir())
