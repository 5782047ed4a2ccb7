"""``--camera FILE`` and ``--focal-px FX,FY``: a camera's calibration (resolution, two focal
lengths, principal point, lens) read from its file; unorganized clouds from a camera with a lens
train and predict as the same scans written organized do, and the run keeps the values."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pcprep
import pytest
import tifffile

from .conftest import CATEGORY

RUN = ("--size", 64, "--device", "cpu", "--quiet")
H, W = 64, 56
FX, FY, CX, CY = 70.0, 72.5, 24.5, 34.25
LENS = pcprep.Distortion("plumb_bob", (-0.12, 0.03, 0.002, -0.001, 0.0))
ROS_YAML = f"""image_width: {W}
image_height: {H}
camera_name: test_camera
camera_matrix:
  rows: 3
  cols: 3
  data: [{FX}, 0, {CX}, 0, {FY}, {CY}, 0, 0, 1]
distortion_model: plumb_bob
distortion_coefficients:
  rows: 1
  cols: 5
  data: [{", ".join(map(str, LENS.coefficients))}]
"""


@pytest.fixture(scope="module")
def lens_clouds(
    tiny_data: Path, tmp_path_factory: pytest.TempPathFactory, cloud_bytes
) -> dict[str, Path]:
    """The tiny data's depth seen through the lens, in millimetres: organized clouds, and the
    shuffled valid points of each, plus the camera's ROS calibration file."""
    roots = {k: tmp_path_factory.mktemp(k) for k in ("organized", "unorganized")}
    for n, xyz_path in enumerate(sorted((tiny_data / CATEGORY).rglob("xyz/*.tiff"))):
        type_dir = xyz_path.parent.parent
        split = type_dir.parent.name
        z = tifffile.imread(xyz_path)[:, :W, 2].astype(np.float64) * 1000.0
        xyz = pcprep.depth_to_xyz(z, focal_px=(FX, FY), principal_point=(CX, CY), distortion=LENS)
        valid = xyz[..., 2] > 0
        order = np.random.default_rng(n).permutation(int(valid.sum()))
        for kind, root in roots.items():
            folder = root / CATEGORY / split / (type_dir.name if split == "test" else "")
            (folder / "xyz").mkdir(parents=True, exist_ok=True)
            points = xyz if kind == "organized" else xyz[valid][order].reshape(1, -1, 3)
            cloud = cloud_bytes.pcd_bytes(points, None, "binary")
            (folder / "xyz" / f"{xyz_path.stem}.pcd").write_bytes(cloud)
    camera = tmp_path_factory.mktemp("camera") / "ost.yaml"
    camera.write_text(ROS_YAML)
    return {**roots, "camera": camera}


def _train(cli, data: Path, out: Path, *options: object):
    return cli("train", "--data", data, "--category", CATEGORY, "--setup", "depth",
               "--depth-unit", "mm", "--out", out, *options, *RUN)  # fmt: skip


def _scores(cli, run: Path, out: Path, *inputs: object) -> dict[str, float]:
    res = cli("predict", "--run", run, *inputs, "--out", out, "--device", "cpu", "--quiet")
    assert res.exit_code == 0, res.stderr
    found = json.loads((out / "scores.json").read_text())
    return {s["name"]: s["score"] for s in found["samples"]}


def test_a_camera_file_projects_clouds_through_its_lens(cli, lens_clouds, tmp_path) -> None:
    org_run, unorg_run = tmp_path / "org", tmp_path / "unorg"
    assert _train(cli, lens_clouds["organized"], org_run).exit_code == 0
    res = _train(cli, lens_clouds["unorganized"], unorg_run, "--camera", lens_clouds["camera"])
    assert res.exit_code == 0, res.stderr
    settings = json.loads((unorg_run / "run.json").read_text())["settings"]
    assert settings["focal_px"] == [FX, FY] and settings["principal_point"] == [CX, CY]
    assert settings["grid_shape"] == [H, W]
    assert settings["distortion"] == ["plumb_bob", list(LENS.coefficients)]
    test = "{}/" + CATEGORY + "/test"
    want = _scores(cli, org_run, tmp_path / "p-org", Path(test.format(lens_clouds["organized"])))
    got = _scores(cli, unorg_run, tmp_path / "p-unorg", Path(test.format(lens_clouds["unorganized"])))  # fmt: skip
    assert len(want) >= 4 and got == want


@pytest.mark.parametrize(
    ("options", "fragments"),
    [
        (("--focal-px", "70"), ("--focal-px: --camera gives it already",)),
        (("--grid", "56x64"), ("--grid: --camera gives it already",)),
        (("--principal-point", "1,2"), ("--principal-point: --camera gives it already",)),
    ],
)
def test_camera_and_hand_values_are_one_or_the_other(
    cli, bad_input, lens_clouds, tmp_path, options, fragments
) -> None:
    res = _train(cli, lens_clouds["unorganized"], tmp_path / "r", "--camera",
                 lens_clouds["camera"], *options)  # fmt: skip
    bad_input(res, *fragments)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        (None, ("nope.yaml", "file not found")),
        ("width: 640\n", ("cam.yaml",)),
        (ROS_YAML.replace("plumb_bob", "equidistant"), ("cam.yaml", "equidistant")),
        (ROS_YAML.replace(f"data: [{FX}, 0,", f"data: [{FX}, 0.5,"), ("cam.yaml", "skew")),
    ],
)
def test_a_bad_camera_file_is_one_line_naming_it(
    cli, bad_input, lens_clouds, tmp_path, content, fragments
) -> None:
    camera = tmp_path / ("nope.yaml" if content is None else "cam.yaml")
    if content is not None:
        camera.write_text(content)
    res = _train(cli, lens_clouds["unorganized"], tmp_path / "r", "--camera", camera)
    bad_input(res, *fragments)
    assert not (tmp_path / "r").exists()


def test_pack_takes_the_camera_file_and_train_reads_it_back(cli, lens_clouds, tmp_path) -> None:
    pack = tmp_path / "u.3dsrpack"
    res = cli("pack", "--data", lens_clouds["unorganized"], "--category", CATEGORY, "--size",
              64, "--depth-unit", "mm", "--camera", lens_clouds["camera"], "--out", pack,
              "--quiet")  # fmt: skip
    assert res.exit_code == 0, res.stderr
    res = cli("train", "--data", pack, "--setup", "depth", "--out", tmp_path / "r", *RUN)
    assert res.exit_code == 0, res.stderr
    settings = json.loads((tmp_path / "r" / "run.json").read_text())["settings"]
    assert settings["distortion"] == ["plumb_bob", list(LENS.coefficients)]
    # the same pack asked for without the lens says how it was made
    res = cli("train", "--data", pack, "--setup", "depth", "--depth-unit", "mm",
              "--grid", f"{W}x{H}", "--focal-px", f"{FX},{FY}",
              "--principal-point", f"{CX},{CY}", "--out", tmp_path / "r2", *RUN)  # fmt: skip
    assert res.exit_code == 2 and "distortion ['plumb_bob', [-0.12" in res.stderr, res.stderr
    assert "(asked None)" in res.stderr


def test_two_focal_lengths_are_stored_in_the_run(cli, tiny_data, tmp_path) -> None:
    # (depth_to_xyz's use of (fx, fy): pcprep's tests) tiny_data is MVTec-layout xyz TIFFs,
    # which take no camera; the run records it all the same, as for own scans
    res = cli("train", "--data", tiny_data, "--category", CATEGORY, "--focal-px", "90,95.5",
              "--out", tmp_path / "r", *RUN)  # fmt: skip
    assert res.exit_code == 0, res.stderr
    settings = json.loads((tmp_path / "r" / "run.json").read_text())["settings"]
    assert settings["focal_px"] == [90.0, 95.5]


def test_eyecandies_takes_no_camera(cli, bad_input, lens_clouds, tmp_path) -> None:
    (tmp_path / "eye" / "Candy" / "train" / "data").mkdir(parents=True)
    res = cli("train", "--data", tmp_path / "eye", "--category", "Candy",
              "--camera", lens_clouds["camera"], "--out", tmp_path / "r")  # fmt: skip
    bad_input(res, "--camera applies to own scans", "info_depth.yaml")


def test_predict_takes_a_camera_for_a_run_trained_without_one(
    cli, bad_input, lens_clouds, tmp_path
) -> None:
    """Trained on organized scans, shown the same camera's unorganized clouds: predict
    --camera projects them as train --camera would; a run with its camera refuses another."""
    org_run = tmp_path / "org"
    assert _train(cli, lens_clouds["organized"], org_run).exit_code == 0
    test = Path(lens_clouds["unorganized"]) / CATEGORY / "test"
    want = _scores(cli, org_run, tmp_path / "p-org", Path(lens_clouds["organized"]) / CATEGORY / "test")  # fmt: skip
    got = _scores(cli, org_run, tmp_path / "p-cam", test, "--camera", lens_clouds["camera"])
    assert len(want) >= 4 and got == want
    lone = test / "good" / "xyz" / "000.pcd"
    res = cli("predict", "--run", org_run, lone, "--out", tmp_path / "p-none", "--device", "cpu")
    bad_input(res, "000.pcd", "unorganized point cloud", "--camera FILE")
    cam_run = tmp_path / "cam"
    res = _train(cli, lens_clouds["unorganized"], cam_run, "--camera", lens_clouds["camera"])
    assert res.exit_code == 0, res.stderr
    res = cli("predict", "--run", cam_run, lone, "--camera", lens_clouds["camera"],
              "--out", tmp_path / "p-two", "--device", "cpu")  # fmt: skip
    bad_input(res, "the run has its camera", "predict --camera is for runs trained without one")
    assert not (tmp_path / "p-two").exists()
