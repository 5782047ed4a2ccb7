"""Scans without colour (a depth-only sensor): a ``depth`` detector trains, evaluates and
predicts on them, and a detector that reads colour refuses them in one line naming the file,
before it writes anything."""

from __future__ import annotations

import json
import shutil

import pytest

from .conftest import CATEGORY


@pytest.fixture(scope="module")
def colourless(tmp_path_factory, tiny_data):
    """The tiny dataset, and a copy of it with every rgb/ folder removed."""
    root = tmp_path_factory.mktemp("colourless") / "data"
    shutil.copytree(tiny_data, root)
    for rgb in sorted(root.rglob("rgb")):
        shutil.rmtree(rgb)
    return root


def _train(cli, data, out, setup):
    return cli(
        "train", "--data", data, "--category", CATEGORY, "--setup", setup, "--out", out,
        "--device", "cpu", "-q",
    )  # fmt: skip


def test_a_depth_detector_scores_scans_without_colour_as_it_scores_them_with(
    cli, tiny_data, colourless, tmp_path
):
    scores = {}
    for name, data in (("colour", tiny_data), ("none", colourless)):
        run = tmp_path / name
        assert _train(cli, data, run, "depth").exit_code == 0
        res = cli("eval", "--run", run, "--data", data, "--device", "cpu", "-q")
        assert res.exit_code == 0, res.stderr
        m = json.loads((run / "metrics.json").read_text())[CATEGORY]
        scores[name] = [m[k] for k in ("image_auroc", "pixel_auroc", "aupro", "per_defect_type")]
    assert scores["none"] == scores["colour"]  # the depth setup never read the colour
    folder = colourless / CATEGORY / "test" / "crack"
    out = tmp_path / "p"
    res = cli(
        "predict", "--run", tmp_path / "none", folder / "xyz" / "000.tiff", "--out", out,
        "--point-clouds", "--device", "cpu", "-q",
    )  # fmt: skip
    assert res.exit_code == 0, res.stderr
    (record,) = json.loads((out / "scores.json").read_text())["samples"]
    assert record["rgb"] is None and (out / record["map_ply"]).is_file()


def test_a_detector_that_reads_colour_refuses_them(bad_input, cli, colourless, run_rgbd, tmp_path):
    first = colourless / CATEGORY / "train" / "good" / "xyz" / "000.tiff"
    bad_input(
        _train(cli, colourless, tmp_path / "rgbd", "rgbd"),
        str(first),
        "the scan has no colour image; an rgbd detector needs one",
    )
    assert not (tmp_path / "rgbd").exists()
    lone = colourless / CATEGORY / "test" / "crack" / "xyz" / "000.tiff"
    res = cli("predict", "--run", run_rgbd, lone, "--out", tmp_path / "p", "--device", "cpu")
    bad_input(res, str(lone), "xyz without its rgb")
    assert not (tmp_path / "p").exists()
