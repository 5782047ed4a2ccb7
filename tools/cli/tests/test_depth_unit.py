"""``--depth-unit`` / ``--focal-px``: own scans with float depth in millimetres train, evaluate and
predict as the same scans in metres do, without the options repeated after train."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile

from .conftest import CATEGORY

RUN = ("--size", 64, "--device", "cpu", "--quiet")


def _own_depth_scans(tiny_data: Path, root: Path, factor: float) -> Path:
    """The tiny data as own scans: ``NAME_depth.tiff`` (float z times ``factor``) + rgb (+ gt)."""
    for xyz in sorted((tiny_data / CATEGORY).rglob("xyz/*.tiff")):
        type_dir = xyz.parent.parent
        split = type_dir.parent.name
        folder = root / CATEGORY / split / (type_dir.name if split == "test" else "")
        folder.mkdir(parents=True, exist_ok=True)
        z = tifffile.imread(xyz)[..., 2].astype(np.float32) * np.float32(factor)
        tifffile.imwrite(folder / f"{xyz.stem}_depth.tiff", z, photometric="minisblack")
        shutil.copy(type_dir / "rgb" / f"{xyz.stem}.png", folder / f"{xyz.stem}_rgb.png")
        if split == "test" and (type_dir / "gt" / f"{xyz.stem}.png").is_file():
            shutil.copy(type_dir / "gt" / f"{xyz.stem}.png", folder / f"{xyz.stem}_gt.png")
    return root


@pytest.fixture(scope="module")
def scans(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("own")
    return {u: _own_depth_scans(tiny_data, base / u, f) for u, f in (("m", 1.0), ("mm", 1e3))}


def _scores(cli, run: Path, out: Path, *inputs: object) -> dict[str, float]:
    res = cli("predict", "--run", run, *inputs, "--out", out, "--device", "cpu", "--quiet")
    assert res.exit_code == 0, res.stderr
    found = json.loads((out / "scores.json").read_text())
    return {s["name"]: s["score"] for s in found["samples"]} | {"threshold": found["threshold"]}


def test_float_mm_depth_with_its_unit_predicts_as_metres(cli, bad_input, scans, tmp_path):
    m_run, mm_run = tmp_path / "m", tmp_path / "mm"
    train = ("train", "--category", CATEGORY, "--focal-px", 80)
    res = cli(*train, "--data", scans["m"], "--out", m_run, *RUN)
    assert res.exit_code == 0, res.stderr
    res = cli(*train, "--data", scans["mm"], "--depth-unit", "mm", "--out", mm_run, *RUN)
    assert res.exit_code == 0, res.stderr
    assert json.loads((mm_run / "run.json").read_text())["settings"]["depth_unit"] == "mm"
    # predict and eval read the unit and the focal length from the run, not from options
    got = _scores(cli, mm_run, tmp_path / "p-mm", scans["mm"] / CATEGORY / "test")
    want = _scores(cli, m_run, tmp_path / "p-m", scans["m"] / CATEGORY / "test")
    assert len(want) == 6 and got.keys() == want.keys()
    np.testing.assert_allclose([got[k] for k in want], list(want.values()), rtol=1e-3)
    # one DEPTH RGB pair, as a user names a new scan
    single = {}
    for unit, run in (("m", m_run), ("mm", mm_run)):
        one = scans[unit] / CATEGORY / "test" / "dent"
        pair = (one / "000_depth.tiff", one / "000_rgb.png", "--threshold", "auto")
        single[unit] = _scores(cli, run, tmp_path / f"p1-{unit}", *pair)
    # --threshold auto scores the validation scans of the run's data, read in its unit too
    assert single["mm"] == pytest.approx(single["m"], rel=1e-3)
    assert single["mm"]["000"] in got.values()
    metrics = {}
    for unit, run in (("m", m_run), ("mm", mm_run)):
        out = tmp_path / f"e-{unit}"
        res = cli("eval", "--run", run, "--data", scans[unit], "--out", out, "--device", "cpu")
        assert res.exit_code == 0, res.stderr
        metrics[unit] = json.loads((out / "metrics.json").read_text())[CATEGORY]["image_auroc"]
    assert metrics["mm"] == pytest.approx(metrics["m"], abs=1e-6)
    # metre scans given to the millimetre detector are refused, not scored at 0.6 mm
    res = cli("predict", "--run", mm_run, scans["m"] / CATEGORY / "test" / "good",
              "--out", tmp_path / "p-wrong", "--device", "cpu")  # fmt: skip
    bad_input(res, "000_depth.tiff", "too near", "--depth-unit m")


def test_a_pack_keeps_the_unit_for_train(cli, scans, tmp_path):
    pack = tmp_path / "mm.3dsrpack"
    res = cli("pack", "--data", scans["mm"], "--category", CATEGORY, "--size", 64,
              "--depth-unit", "mm", "--out", pack, "--quiet")  # fmt: skip
    assert res.exit_code == 0, res.stderr
    res = cli("train", "--data", pack, "--out", tmp_path / "r", *RUN)  # the unit: the pack's
    assert res.exit_code == 0, res.stderr
    assert json.loads((tmp_path / "r" / "run.json").read_text())["settings"]["depth_unit"] == "mm"
    res = cli("train", "--data", pack, "--depth-unit", "um", "--out", tmp_path / "r2", *RUN)
    assert res.exit_code == 2 and "depth_unit 'mm' (asked 'um')" in res.stderr


def test_float_mm_depth_without_its_unit_is_refused(cli, bad_input, scans, tmp_path):
    res = cli("train", "--data", scans["mm"], "--category", CATEGORY, "--out", tmp_path / "r",
              *RUN)  # fmt: skip
    line = bad_input(res, "_depth.tiff", "too far", "--depth-unit mm")
    assert str(scans["mm"]) in line
    pack = tmp_path / "a.3dsrpack"
    res = cli("pack", "--data", scans["mm"], "--category", CATEGORY, "--out", pack, "--quiet")
    bad_input(res, "_depth.tiff", "--depth-unit mm")
    assert not pack.exists()


def test_depth_unit_is_refused_for_eyecandies_and_checked(cli, bad_input, tmp_path):
    data = tmp_path / "eye" / "Candy" / "train" / "data"
    data.mkdir(parents=True)
    res = cli("train", "--data", tmp_path / "eye", "--category", "Candy", "--depth-unit", "mm",
              "--out", tmp_path / "r")  # fmt: skip
    bad_input(res, "--depth-unit applies to own scans", "info_depth.yaml")
    res = cli("train", "--data", tmp_path / "eye", "--focal-px", "-3", "--out", tmp_path / "r")
    bad_input(res, "--focal-px: expected a positive focal length", "F or FX,FY", "'-3'")


def test_depth_units_are_pcprep_s():
    import pcprep
    from threedsr_cli.scan_units import DepthUnit

    assert [u.value for u in DepthUnit] == list(pcprep.DEPTH_UNITS)


def test_readme_deploy_example_reads_the_runs_unit(cli, scans, tmp_path):
    """The README's deploy snippet, verbatim, on the export of a millimetre run: it reads the scan
    with the sidecar's ``read_options`` (read as metres, the scan lay 600 m away and was refused)
    and prints the score ``predict`` gives."""
    import subprocess
    import sys

    pytest.importorskip("onnxruntime")
    readme = (Path(__file__).parents[3] / "README.md").read_text()
    snippet = readme.split("<!-- deploy-example -->\n```python\n", 1)[1].split("```", 1)[0]
    run = tmp_path / "mm"
    res = cli("train", "--data", scans["mm"], "--category", CATEGORY, "--depth-unit", "mm",
              "--focal-px", 80, "--out", run, *RUN)  # fmt: skip
    assert res.exit_code == 0, res.stderr
    res = cli("export", "--run", run, "--out", tmp_path / "bagel.onnx", "-q")
    assert res.exit_code == 0, res.stderr
    meta = json.loads((tmp_path / "bagel.onnx.json").read_text())
    assert meta["read_options"] == {"depth_unit": "mm", "focal_px": 80.0}
    one = scans["mm"] / CATEGORY / "test" / "dent"
    shutil.copy(one / "000_depth.tiff", tmp_path / "scan.tiff")
    shutil.copy(one / "000_rgb.png", tmp_path / "scan.png")
    done = subprocess.run(
        [sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    want = _scores(cli, run, tmp_path / "p", tmp_path / "scan.tiff", tmp_path / "scan.png")
    assert float(done.stdout.split()[1]) == pytest.approx(want["scan"], abs=1e-4)
