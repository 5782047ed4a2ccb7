"""predict on Eyecandies samples: depth/image/prefix arguments, data/ folders, the same model
inputs as eval, and every bad-file path (one line naming the file, exit code 2)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CATEGORY = "puck"  # the class of the conftest run (the name only labels the outputs here)
LO, HI = 0.9, 1.1  # depth normalisation written to <id>_info_depth.yaml (metres)


def write_eyecandies_sample(data: Path, sid: str, *, shape=(60, 80), seed=0) -> Path:
    """One Eyecandies-layout sample as the dataset ships it: 16-bit depth normalised by
    ``info_depth.yaml``, six light images, a mask and metadata. A tilted support plane at ~1 m,
    a box 3 cm closer and a 2 cm rail along the left border (like the conveyor's side walls)."""
    data.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    z = 1.0 + 0.01 * xx + 0.005 * yy
    r0, c0 = h // 3 + seed % 3, w // 3 + seed % 5
    z[r0 : r0 + h // 3, c0 : c0 + w // 3] -= 0.03
    z[:, :2] -= 0.02
    raw = np.round((z - LO) / (HI - LO) * 65535).astype(np.uint16)
    Image.fromarray(raw).save(data / f"{sid}_depth.png")
    (data / f"{sid}_info_depth.yaml").write_text(f"normalization:\n  max: {HI}\n  min: {LO}\n")
    for k in range(6):
        rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        Image.fromarray(rgb).save(data / f"{sid}_image_{k}.png")
    Image.fromarray(np.zeros((h, w), np.uint8)).save(data / f"{sid}_mask.png")
    (data / f"{sid}_metadata.yaml").write_text("anomalous: 0\n")
    return data / sid


@pytest.fixture()
def eye_root(tmp_path: Path) -> Path:
    root = tmp_path / "eyecandies"
    for seed, sid in enumerate(("00", "01", "02")):
        write_eyecandies_sample(root / CATEGORY / "test_public" / "data", sid, seed=seed)
    return root


def _predict(cli, run, *inputs, out: Path):
    return cli("predict", "--run", run, *inputs, "--out", out, "--device", "cpu", "-q")


def test_predict_eyecandies_files_prefix_and_folders(cli, run_rgbd, eye_root, tmp_path):
    data = eye_root / CATEGORY / "test_public" / "data"
    # a depth file, an image of another light, a bare prefix, and a second name of sample 00
    args = (data / "00_depth.png", data / "01_image_0.png", data / "02", data / "00_image_5.png")
    res = _predict(cli, run_rgbd, *args, out=tmp_path / "p")
    assert res.exit_code == 0, res.stderr
    first = json.loads((tmp_path / "p" / "scores.json").read_text())
    names = [s["name"] for s in first["samples"]]
    assert names == [f"{CATEGORY}_00", f"{CATEGORY}_01", f"{CATEGORY}_02"]
    for s in first["samples"]:
        assert s["layout"] == "eyecandies" and s["rgb"].endswith("_image_5.png")
        assert s["native_shape"] == [60, 80] and np.isfinite(s["score"])
        assert (tmp_path / "p" / s["overlay"]).is_file()
        with Image.open(tmp_path / "p" / s["map"]) as im:
            assert im.size == (80, 60)  # native resolution
    # the data/ folder and the dataset root give each sample once, with the same scores
    for folder, out in ((data, "d"), (eye_root, "r")):
        res = _predict(cli, run_rgbd, folder, out=tmp_path / out)
        assert res.exit_code == 0, res.stderr
        again = json.loads((tmp_path / out / "scores.json").read_text())
        assert [s["name"] for s in again["samples"]] == names
        got = [s["score"] for s in again["samples"]]
        assert np.allclose(got, [s["score"] for s in first["samples"]], rtol=1e-6)


def test_predict_eyecandies_uses_the_eval_preprocessing(
    cli, run_rgbd, eye_root, tmp_path, monkeypatch
):
    """Whatever preprocessing the checkpoint stores (here also drop_border_objects, which matters
    for Eyecandies' conveyor) predict applies exactly as eval does: same reader, same keywords."""
    import pcprep
    import threedsr_cli.libs as libs

    real = libs.load_detector
    loaded = []

    def with_border_drop(run, device, precision="auto", method=None, **kwargs):
        det = real(run, device, precision, method, **kwargs)
        det.preprocess = {**det.preprocess, "drop_border_objects": True}
        loaded.append(det)
        return det

    monkeypatch.setattr(libs, "load_detector", with_border_drop)
    data = eye_root / CATEGORY / "test_public" / "data"
    res = _predict(cli, run_rgbd, data, out=tmp_path / "p")
    assert res.exit_code == 0, res.stderr
    got = [s["score"] for s in json.loads((tmp_path / "p" / "scores.json").read_text())["samples"]]
    det = loaded[0]
    # eval's path (threedsr.evaluate): index the test split, preprocess_refs with the checkpoint's
    # keywords, predict
    refs = pcprep.index_dataset(eye_root, CATEGORY, "test")
    assert [r.path.name for r in refs] == ["00_depth.png", "01_depth.png", "02_depth.png"]
    ev = det.predict(pcprep.preprocess_refs(refs, None, **det.preprocess)).scores.numpy()
    assert np.allclose(got, ev, rtol=1e-5, atol=1e-7)
    # and the keyword did something: the rail is foreground without it
    plain = {k: v for k, v in det.preprocess.items() if k != "drop_border_objects"}
    prepared = pcprep.preprocess_refs(refs, None, **plain)
    assert prepared[0].foreground[:, 0].any()
    dropped = pcprep.preprocess_refs(refs[:1], None, **det.preprocess)[0]
    assert not dropped.foreground[:, 0].any()
    assert not np.allclose(got, det.predict(prepared).scores.numpy(), rtol=1e-5, atol=1e-7)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:60])


BAD = {
    # kind: (break the sample, the file the message names, what it says)
    "missing_yaml": (lambda d: (d / "00_info_depth.yaml").unlink(), "00_depth.png", "info_depth"),
    "missing_rgb": (lambda d: (d / "00_image_5.png").unlink(), "00_depth.png", "00_image_5.png"),
    "corrupt_depth": (lambda d: _truncate(d / "00_depth.png"), "00_depth.png", "cannot decode"),
    "corrupt_rgb": (lambda d: _truncate(d / "00_image_5.png"), "00_image_5.png", "cannot decode"),
    "8bit_depth": (
        lambda d: Image.new("L", (80, 60)).save(d / "00_depth.png"),
        "00_depth.png",
        "16-bit depth",
    ),
    "bad_yaml": (
        lambda d: (d / "00_info_depth.yaml").write_text("normalization:\n  max: 2.0\n"),
        "00_info_depth.yaml",
        "normalization",
    ),
}


@pytest.mark.parametrize("kind", list(BAD))
@pytest.mark.parametrize("form", ["depth", "image", "folder"])
def test_predict_eyecandies_bad_files(bad_input, cli, run_rgbd, eye_root, tmp_path, kind, form):
    data = eye_root / CATEGORY / "test_public" / "data"
    breaks, named, says = BAD[kind]
    breaks(data)
    arg = {"depth": data / "00_depth.png", "image": data / "00_image_0.png", "folder": data}[form]
    res = _predict(cli, run_rgbd, arg, out=tmp_path / "p")
    if form == "folder" and kind not in ("missing_yaml", "missing_rgb"):
        # a sample whose files cannot be read, among three: skipped with a warning naming the
        # file, the other two written, exit 2 at the end
        assert res.exit_code == 2, res.stderr
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert len(lines) == 2 and lines[0].startswith("warning: "), res.stderr
        assert str(data / named) in lines[0] and says in lines[0], lines[0]
        assert lines[1].startswith("error: ") and "1 of 3 inputs skipped" in lines[1], lines[1]
        samples = json.loads((tmp_path / "p" / "scores.json").read_text())["samples"]
        assert [s["name"] for s in samples] == [f"{CATEGORY}_01", f"{CATEGORY}_02"]
        return
    line = bad_input(res, str(data / named), says)
    assert line.count(str(data)) == 1  # the one file, not a list
    assert not (tmp_path / "p" / "scores.json").exists()


def test_predict_eyecandies_depth_alone_and_own_depth_pairs(bad_input, cli, run_rgbd, tmp_path):
    # a lone NAME_depth.png with nothing Eyecandies next to it: the yaml it lacks, and the fix
    lone = tmp_path / "scan_depth.png"
    Image.fromarray(np.full((60, 80), 1000, np.uint16)).save(lone)
    bad_input(_predict(cli, run_rgbd, lone, out=tmp_path / "p"), str(lone), "DEPTH RGB")
    bad_input(_predict(cli, run_rgbd, tmp_path / "scan", out=tmp_path / "p"), "info_depth.yaml")
    bad_input(_predict(cli, run_rgbd, tmp_path / "nothing", out=tmp_path / "p"), "not found")


def test_predict_real_eyecandies(cli, run_rgbd, real_data, tmp_path):
    data = real_data / "eyecandies" / "CandyCane" / "test_public" / "data"
    if not data.is_dir():
        pytest.skip(f"no Eyecandies samples at {data}")
    res = _predict(cli, run_rgbd, data, out=tmp_path / "all")
    assert res.exit_code == 0, res.stderr
    samples = json.loads((tmp_path / "all" / "scores.json").read_text())["samples"]
    ids = sorted(p.name[: -len("_depth.png")] for p in data.glob("*_depth.png"))
    assert [s["name"] for s in samples] == [f"CandyCane_{i}" for i in ids]
    assert all((tmp_path / "all" / s["overlay"]).is_file() for s in samples)
    assert all(s["native_shape"] == [512, 512] for s in samples)
    # the same samples named by file: one score per sample, equal to the folder's
    one = ids[0]
    res = _predict(
        cli,
        run_rgbd,
        data / f"{one}_image_3.png",
        data / one,
        data / f"{one}_depth.png",
        out=tmp_path / "one",
    )
    assert res.exit_code == 0, res.stderr
    (s,) = json.loads((tmp_path / "one" / "scores.json").read_text())["samples"]
    assert s["name"] == f"CandyCane_{one}" and np.isclose(s["score"], samples[0]["score"])
