"""train-dada / train / eval / predict through the CLI: success paths on a tiny synthetic dataset
and every bad-input path (one line naming the file, exit code 2)."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile

from .conftest import CATEGORY, fused_train_args

# --------------------------------------------------------------------------- train-dada


def test_train_dada_writes_checkpoint_and_refuses_second_run(bad_input, cli, dada_rgbd):
    assert (dada_rgbd / "backbone.pt").is_file()
    marker = json.loads((dada_rgbd / "run.json").read_text())
    assert marker["finished"] and marker["kind"] == "train-dada"
    assert marker["checkpoint"] == "backbone.pt"  # the run folder's, wherever it is copied
    args = [
        "train-dada",
        "--out",
        dada_rgbd,
        "--iterations",
        2,
        "--batch-size",
        2,
        "--size",
        32,
        "--device",
        "cpu",
        "-q",
    ]
    bad_input(cli(*args), str(dada_rgbd), "finished run", "--resume")
    res = cli(*args, "--resume")  # nothing left to do
    assert res.exit_code == 0, res.stderr
    bad_input(cli(*args[:-1], "--setup", "rgb", "-q"), str(dada_rgbd), "different run")


def test_train_dada_bad_rgb_dir(bad_input, cli, tmp_path):
    bad_input(
        cli("train-dada", "--out", tmp_path / "o", "--rgb-dir", tmp_path / "nope"),
        str(tmp_path / "nope"),
        "not found",
    )
    (tmp_path / "empty").mkdir()
    bad_input(
        cli("train-dada", "--out", tmp_path / "o", "--rgb-dir", tmp_path / "empty"),
        str(tmp_path / "empty"),
        "holds no images",
    )


def test_train_dada_cuda_missing_is_bad_input(bad_input, cli, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    bad_input(cli("train-dada", "--out", tmp_path / "o", "--device", "cuda"), "CUDA")


def test_train_dada_refuses_unrelated_folder(bad_input, cli, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    bad_input(cli("train-dada", "--out", tmp_path, "--iterations", 1), str(tmp_path), "not empty")
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_train_dada_ctrl_c_saves_and_resume_continues(bad_input, cli, tmp_path, monkeypatch):
    import vqcore

    real = vqcore.train_dada

    def interrupted(config, callbacks=None):
        def stop(event):
            raise KeyboardInterrupt

        return real(config, [callbacks, stop])

    monkeypatch.setattr(vqcore, "train_dada", interrupted)
    out = tmp_path / "dada"
    args = [
        "train-dada",
        "--out",
        out,
        "--setup",
        "depth",
        "--iterations",
        12,
        "--batch-size",
        2,
        "--size",
        16,
        "--device",
        "cpu",
        "-q",
    ]
    res = cli(*args)
    assert res.exit_code == 130, res.stderr
    ckpt = out / "backbone.pt"
    assert (
        res.stderr.strip() == f"error: interrupted, checkpoint saved to {ckpt}; rerun with --resume"
    )
    from threedsr_cli.libs import allow_torch_version

    with allow_torch_version():
        assert vqcore.read_checkpoint(ckpt)["step"] == 10  # the first progress event
    monkeypatch.setattr(vqcore, "train_dada", real)
    bad_input(cli(*args), "unfinished run", "--resume")
    res = cli(*args, "--resume")
    assert res.exit_code == 0, res.stderr
    with allow_torch_version():
        assert vqcore.read_checkpoint(ckpt)["step"] == 12


# --------------------------------------------------------------------------- train


_train_args = fused_train_args


def test_train_run_and_second_run_refused(bad_input, cli, run_rgbd, tiny_data, dada_rgbd):
    assert (run_rgbd / "detector.pt").is_file()
    bad_input(cli(*_train_args(tiny_data, dada_rgbd, run_rgbd)), str(run_rgbd), "finished run")
    bad_input(
        cli(*_train_args(tiny_data, dada_rgbd, run_rgbd, "--seed", "1")),
        str(run_rgbd),
        "different run",
        "seed",
    )
    res = cli(*_train_args(tiny_data, dada_rgbd, run_rgbd, "--resume"))
    assert res.exit_code == 0, res.stderr


def test_train_data_root_errors(bad_input, cli, tmp_path, dada_rgbd):
    out = tmp_path / "run"
    bad_input(
        cli(*_train_args(tmp_path / "nope", dada_rgbd, out)),
        str(tmp_path / "nope"),
        "data root not found",
    )
    (tmp_path / "empty").mkdir()
    bad_input(
        cli(*_train_args(tmp_path / "empty", dada_rgbd, out)),
        str(tmp_path / "empty"),
        "data root is empty",
    )
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.txt").write_text("x")
    bad_input(cli(*_train_args(tmp_path / "junk", dada_rgbd, out)), str(tmp_path / "junk"))
    fake = tmp_path / "fake.3dsrpack"
    fake.write_bytes(b"not a pack")
    for extra in ((), ("--category", CATEGORY)):  # with or without a class, the same line
        res = cli("train", "--data", fake, "--out", out, *extra)
        bad_input(res, str(fake), "not a folder, nor a pack")
    assert not out.exists()


def test_train_unknown_category(bad_input, cli, tmp_path, tiny_data, dada_rgbd):
    args = _train_args(tiny_data, dada_rgbd, tmp_path / "run")
    args[args.index("--category") + 1] = "teapot"
    bad_input(cli(*args), str(tiny_data), "unknown category 'teapot'", CATEGORY)


def test_a_class_folder_as_data_names_the_root(bad_input, cli, tmp_path, tiny_data):
    # Before: "unknown category 'puck' (known: test, train, validation)", the class's splits
    # read as own-scan classes; with --category train it went on to train on the wrong folder.
    out = tmp_path / "run"
    for extra in ((), ("--category", CATEGORY), ("--category", "train")):
        bad_input(
            cli("train", "--data", tiny_data / CATEGORY, "--out", out, *extra),
            f"{tiny_data / CATEGORY}: a class folder",
            f"--data {tiny_data} --category {CATEGORY}",
        )
    assert not out.exists()


def test_train_backbone_errors(bad_input, cli, tmp_path, tiny_data, dada_rgbd, dada_rgb):
    out = tmp_path / "run"
    bad_input(
        cli(*_train_args(tiny_data, tmp_path / "none.pt", out)),
        str(tmp_path / "none.pt"),
        "not found",
    )
    (tmp_path / "emptydir").mkdir()
    bad_input(cli(*_train_args(tiny_data, tmp_path / "emptydir", out)), "holds no backbone.pt")
    # an rgb backbone for the rgbd setup
    bad_input(
        cli(*_train_args(tiny_data, dada_rgb, out)),
        str(dada_rgb / "backbone.pt"),
        "'rgb' backbone",
        "--setup rgbd",
    )
    # a truncated checkpoint
    data = (dada_rgbd / "backbone.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    bad_input(
        cli(*_train_args(tiny_data, tmp_path / "cut.pt", out)),
        str(tmp_path / "cut.pt"),
        "truncated",
    )
    # not a checkpoint at all
    (tmp_path / "text.pt").write_text("hello")
    bad_input(cli(*_train_args(tiny_data, tmp_path / "text.pt", out)), str(tmp_path / "text.pt"))


def _first_train_xyz(root: Path) -> Path:
    return sorted((root / CATEGORY / "train" / "good" / "xyz").glob("*.tiff"))[0]


def _corrupt(kind: str, xyz: Path) -> Path:
    """Damage one training sample; returns the file the message must name."""
    rgb = xyz.parent.parent / "rgb" / f"{xyz.stem}.png"
    h, w = tifffile.imread(xyz).shape[:2]
    if kind == "truncated_tiff":
        xyz.write_bytes(xyz.read_bytes()[:200])
        return xyz
    if kind == "corrupt_png":
        rgb.write_bytes(rgb.read_bytes()[:60])
        return rgb
    if kind == "wrong_dtype":
        tifffile.imwrite(xyz, np.ones((h, w, 3), np.uint8), photometric="rgb")
        return xyz
    if kind == "wrong_channels":
        tifffile.imwrite(xyz, np.ones((h, w, 4), np.float32), photometric="rgb")
        return xyz
    if kind == "all_invalid":
        tifffile.imwrite(xyz, np.zeros((h, w, 3), np.float32), photometric="rgb")
        return xyz
    if kind == "missing_rgb":
        rgb.unlink()
        return xyz
    raise AssertionError(kind)


BAD_SAMPLES = {
    "truncated_tiff": "TIFF",
    "corrupt_png": "image",
    "wrong_dtype": "dtype",
    "wrong_channels": "(H, W, 3)",
    "all_invalid": "invalid",
    "missing_rgb": "no colour image",
}


@pytest.mark.parametrize("kind", list(BAD_SAMPLES))
def test_train_bad_sample_files(bad_input, cli, tmp_path, data_copy, dada_rgbd, kind):
    named = _corrupt(kind, _first_train_xyz(data_copy))
    line = bad_input(cli(*_train_args(data_copy, dada_rgbd, tmp_path / "run")), str(named))
    assert BAD_SAMPLES[kind] in line, line


# --------------------------------------------------------------------------- eval


def test_eval_writes_metrics(bad_input, cli, run_rgbd, tiny_data, tmp_path):
    res = cli("eval", "--run", run_rgbd, "--data", tiny_data, "--device", "cpu", "--out", tmp_path)
    assert res.exit_code == 0, res.stderr
    assert "I-AUROC" in res.stdout and CATEGORY in res.stdout
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    m = metrics[CATEGORY]
    for key in ("image_auroc", "pixel_auroc", "aupro", "per_defect_type"):
        assert key in m
    assert set(m["per_defect_type"]) == {"bump", "crack", "dent", "stain"}
    assert 0.0 <= m["image_auroc"] <= 1.0
    assert (tmp_path / "metrics.md").is_file()
    at = m["at_threshold"]
    assert at["n_good"] + at["n_defective"] == m["n_good"] + m["n_defective"]
    flags = f"flags {at['defective_flagged']} of {at['n_defective']} defective"
    assert flags in " ".join(res.stdout.split())


def test_eval_precision_bf16_on_cpu(cli, run_rgbd, tiny_data, tmp_path):
    res = cli(
        "eval", "--run", run_rgbd, "--data", tiny_data, "--device", "cpu", "--out", tmp_path,
        "--precision", "bf16",
    )  # fmt: skip
    assert res.exit_code == 0, res.stderr
    assert "(bf16)" in res.stdout
    m = json.loads((tmp_path / "metrics.json").read_text())[CATEGORY]
    assert 0.0 <= m["pixel_auroc"] <= 1.0
    res = cli("eval", "--run", run_rgbd, "--data", tiny_data, "--precision", "fp16")
    assert res.exit_code == 2 and "fp16" in res.stderr


def test_eval_method_switches_between_a_fused_detectors_maps(cli, run_rgbd, tiny_data, tmp_path):
    pixel, anchors = {}, {}
    for method in ("3dsr", "memory", "fused"):
        out = tmp_path / method
        res = cli("eval", "--run", run_rgbd, "--data", tiny_data, "--device", "cpu", "--out", out,
                  "--method", method)  # fmt: skip
        assert res.exit_code == 0, res.stderr
        assert f"method {method}" in " ".join(res.stdout.split())
        m = json.loads((out / "metrics.json").read_text())[CATEGORY]
        pixel[method], anchors[method] = m["pixel_auroc"], m["reference_name"]
        assert m["method"] == method
        assert f"**{method}**" in (out / "metrics.md").read_text()
    assert len(set(pixel.values())) == 3
    assert anchors == {"3dsr": "3DSR paper", "memory": "BTF", "fused": "3DSR paper"}
    res = cli("eval", "--run", run_rgbd, "--data", tiny_data, "--method", "magic")
    assert res.exit_code == 2 and "--method" in res.stderr


def test_eval_errors(bad_input, cli, run_rgbd, tiny_data, tmp_path, dada_rgbd):
    bad_input(
        cli("eval", "--run", tmp_path / "norun", "--data", tiny_data),
        str(tmp_path / "norun"),
        "run not found",
    )
    (tmp_path / "emptyrun").mkdir()
    bad_input(
        cli("eval", "--run", tmp_path / "emptyrun", "--data", tiny_data), "holds no detector.pt"
    )
    data = (run_rgbd / "detector.pt").read_bytes()
    cut = tmp_path / "cut" / "detector.pt"
    cut.parent.mkdir()
    cut.write_bytes(data[: len(data) // 3])
    bad_input(cli("eval", "--run", cut.parent, "--data", tiny_data), str(cut), "truncated")
    # a backbone checkpoint is not a detector
    bad_input(
        cli("eval", "--run", dada_rgbd / "backbone.pt", "--data", tiny_data),
        str(dada_rgbd / "backbone.pt"),
    )
    bad_input(
        cli("eval", "--run", run_rgbd, "--data", tiny_data, "--category", "teapot"),
        "unknown category 'teapot'",
    )
    bad_input(cli("eval", "--run", run_rgbd, "--data", tmp_path / "nodata"), "data root not found")


def test_eval_bad_test_file(bad_input, cli, run_rgbd, data_copy, tmp_path):
    xyz = sorted((data_copy / CATEGORY / "test" / "dent" / "xyz").glob("*.tiff"))[0]
    xyz.write_bytes(xyz.read_bytes()[:100])
    bad_input(cli("eval", "--run", run_rgbd, "--data", data_copy, "--out", tmp_path), str(xyz))


# --------------------------------------------------------------------------- predict


def test_predict_sample_folder_pairs_and_auto_threshold(
    bad_input, cli, run_rgbd, tiny_data, tmp_path
):
    test = tiny_data / CATEGORY / "test"
    pair = (test / "good" / "xyz" / "000.tiff", test / "good" / "rgb" / "000.png")
    res = cli(
        "predict",
        "--run",
        run_rgbd,
        test / "dent",
        *pair,
        "--threshold",
        "auto",
        "--out",
        tmp_path / "p",
        "--device",
        "cpu",
    )
    assert res.exit_code == 0, res.stderr
    scores = json.loads((tmp_path / "p" / "scores.json").read_text())
    assert scores["threshold_source"].startswith("max score of 2 good validation samples")
    names = [s["name"] for s in scores["samples"]]
    assert names == ["dent_000", "good_000"]
    for s in scores["samples"]:
        assert (tmp_path / "p" / s["overlay"]).is_file() and (tmp_path / "p" / s["map"]).is_file()
        assert s["anomalous"] == (s["score"] > scores["threshold"])
    from PIL import Image

    with Image.open(tmp_path / "p" / "dent_000_map.png") as im:
        assert im.size == (64, 64)  # native resolution


def test_predict_directory_and_fixed_threshold(bad_input, cli, run_rgbd, tiny_data, tmp_path):
    res = cli(
        "predict",
        "--run",
        run_rgbd,
        tiny_data / CATEGORY / "test",
        "--threshold",
        "0.5",
        "--out",
        tmp_path / "p",
        "--device",
        "cpu",
        "-q",
    )
    assert res.exit_code == 0, res.stderr
    scores = json.loads((tmp_path / "p" / "scores.json").read_text())
    assert len(scores["samples"]) == 5 and scores["threshold"] == 0.5


def test_predict_raw_maps_and_point_clouds_hold_the_native_maps(
    bad_input, cli, run_rgbd, tiny_data, tmp_path
):
    import pcprep
    import threedsr

    folder = tiny_data / CATEGORY / "test" / "crack"
    args = ("predict", "--run", run_rgbd, folder, "--device", "cpu", "-q", "--out", tmp_path)
    res = cli(*args, "--raw-maps", "--point-clouds")
    assert res.exit_code == 0, res.stderr
    (record,) = json.loads((tmp_path / "scores.json").read_text())["samples"]
    with tifffile.TiffFile(tmp_path / record["map_tiff"]) as tif:
        raw, description = tif.asarray(), tif.pages[0].description
    scan = pcprep.read_mvtec3d(folder / "xyz" / "000.tiff")
    det = threedsr.Detector.load(run_rgbd, device="cpu")
    (pred,) = threedsr.predict_samples(det, [scan])
    assert raw.dtype == np.float32 and raw.shape == tuple(record["native_shape"])
    np.testing.assert_allclose(raw, pred.native_map, atol=1e-6)
    assert description == f"threedsr {det.method} anomaly map"
    # The point cloud: the scan's valid points, each with its pixel's map value.
    ply = (tmp_path / record["map_ply"]).read_bytes()
    assert f"comment threedsr {det.method} anomaly map\n".encode() in ply
    valid = (scan.xyz != 0).any(-1)
    values = np.frombuffer(ply[ply.index(b"end_header\n") + 11 :], np.uint8).reshape(-1, 19)
    assert len(values) == valid.sum()
    np.testing.assert_array_equal(values[:, 15:].copy().view("<f4")[:, 0], raw[valid])
    np.testing.assert_array_equal(values[:, :12].copy().view("<f4"), scan.xyz[valid])
    # A later prediction without them replaces the earlier one's files too: they were its own.
    assert cli(*args, "--overwrite").exit_code == 0
    assert not list(tmp_path.glob("*.tiff")) and not list(tmp_path.glob("*.ply"))


def test_predict_real_mvtec_sample(bad_input, cli, run_rgbd, real_data, tmp_path):
    folder = real_data / "mvtec3d_ad" / "cable_gland" / "test" / "bent"
    res = cli("predict", "--run", run_rgbd, folder, "--out", tmp_path, "--device", "cpu", "-q")
    assert res.exit_code == 0, res.stderr
    assert json.loads((tmp_path / "scores.json").read_text())["samples"]


def _sample(tmp_path: Path, tiny_data: Path, name: str) -> tuple[Path, Path]:
    src = tiny_data / CATEGORY / "test" / "good"
    xyz, rgb = tmp_path / f"{name}.tiff", tmp_path / f"{name}.png"
    shutil.copy(src / "xyz" / "000.tiff", xyz)
    shutil.copy(src / "rgb" / "000.png", rgb)
    return xyz, rgb


@pytest.mark.parametrize("kind", list(BAD_SAMPLES))
def test_predict_bad_files(bad_input, cli, run_rgbd, tiny_data, tmp_path, kind):
    folder = tmp_path / "s"
    (folder / "xyz").mkdir(parents=True)
    (folder / "rgb").mkdir()
    shutil.copy(tiny_data / CATEGORY / "test" / "good" / "xyz" / "000.tiff", folder / "xyz")
    shutil.copy(tiny_data / CATEGORY / "test" / "good" / "rgb" / "000.png", folder / "rgb")
    named = _corrupt(kind, folder / "xyz" / "000.tiff")
    res = cli("predict", "--run", run_rgbd, folder, "--out", tmp_path / "p", "--device", "cpu")
    line = bad_input(res, str(named))
    if kind != "missing_rgb":
        assert BAD_SAMPLES[kind] in line, line
    else:
        assert "xyz without its rgb" in line
    assert not (tmp_path / "p" / "scores.json").exists()


def test_predict_argument_errors(bad_input, cli, run_rgbd, tiny_data, tmp_path):
    xyz, rgb = _sample(tmp_path, tiny_data, "scan")
    bad_input(cli("predict", "--run", run_rgbd, xyz), str(xyz), "xyz without its rgb")
    bad_input(cli("predict", "--run", run_rgbd, rgb), str(rgb), "without its xyz")
    bad_input(
        cli("predict", "--run", run_rgbd, xyz, rgb, "--threshold", "high"), "--threshold", "'high'"
    )
    bad_input(cli("predict", "--run", run_rgbd), "at least one INPUT")
    bad_input(cli("predict", "--run", tmp_path / "norun", xyz, rgb), "run not found")
    res = cli(
        "predict", "--run", run_rgbd, xyz, rgb, "--threshold", "auto", "--data", tmp_path / "nodata"
    )
    bad_input(res, "validation data", "--data")
    # an rgb of another size than its xyz
    from PIL import Image

    Image.new("RGB", (10, 12)).save(tmp_path / "small.png")
    bad_input(
        cli("predict", "--run", run_rgbd, xyz, tmp_path / "small.png"),
        str(tmp_path / "small.png"),
        "does not match",
    )


def test_train_ctrl_c_saves_and_resume_continues(
    bad_input, cli, tmp_path, tiny_data, dada_rgbd, monkeypatch
):
    import threedsr

    real = threedsr.train_detector

    def interrupted(config, callbacks=None, **kwargs):
        def stop(event):
            raise KeyboardInterrupt

        return real(config, [callbacks, stop], **kwargs)

    monkeypatch.setattr(threedsr, "train_detector", interrupted)
    out = tmp_path / "run"
    args = _train_args(tiny_data, dada_rgbd, out)
    args[args.index("--iterations") + 1] = 12
    res = cli(*args)
    assert res.exit_code == 130, res.stderr
    ckpt = out / "detector.pt"
    assert (
        res.stderr.strip() == f"error: interrupted, checkpoint saved to {ckpt}; rerun with --resume"
    )
    assert threedsr.read_checkpoint(ckpt)["step"] == 10  # the first progress event
    monkeypatch.setattr(threedsr, "train_detector", real)
    bad_input(cli(*args), "unfinished run", "--resume")
    res = cli(*args, "--resume")
    assert res.exit_code == 0, res.stderr
    ck = threedsr.read_checkpoint(ckpt)
    assert ck["step"] == 12 and ck["finished"]


def test_train_without_dada_uses_the_shipped_pretrained_backbone(cli, tiny_data, tmp_path):
    import torch
    import vqcore

    args = _train_args(tiny_data, "unused", tmp_path / "run", "--setup", "depth")
    i = args.index("--dada")
    del args[i : i + 2]
    res = cli(*args)
    assert res.exit_code == 0, res.stderr
    ckpt = torch.load(tmp_path / "run" / "detector.pt", weights_only=True)
    shipped = vqcore.load_pretrained("depth").state_dict()
    widths = vqcore.pretrained_manifest()["backbones"]["depth"]["widths"]
    # The manifest predates BackboneConfig.vq_distance: compare as configs (defaults filled in).
    assert vqcore.BackboneConfig.from_dict(ckpt["backbone_config"]) == (
        vqcore.BackboneConfig.from_dict(widths)
    )
    assert all(torch.equal(ckpt["backbone_state"][k], v) for k, v in shipped.items())
    marker = json.loads((tmp_path / "run" / "run.json").read_text())
    assert marker["settings"]["dada"] == "pretrained"
    assert marker["checkpoint"] == "detector.pt"


def test_train_help_says_the_default_backbone_is_pretrained(cli):
    res = cli("train", "--help")
    assert res.exit_code == 0
    text = " ".join(res.stdout.split())
    assert "pretrained" in text and "--dada" in text


def test_train_with_a_corrupt_shipped_backbone_is_one_line(
    bad_input, cli, tiny_data, tmp_path, monkeypatch
):
    import shutil

    import vqcore
    import vqcore.pretrained as pre

    copy = tmp_path / "pretrained"
    shutil.copytree(vqcore.PRETRAINED_DIR, copy)
    (copy / "rgbd.pt").write_bytes(b"not a checkpoint")
    monkeypatch.setattr(pre, "PRETRAINED_DIR", copy)
    args = _train_args(tiny_data, "unused", tmp_path / "run")
    i = args.index("--dada")
    del args[i : i + 2]
    bad_input(cli(*args), str(copy / "rgbd.pt"), "sha256")
    assert not (tmp_path / "run" / "detector.pt").exists()


def test_train_next_hint_can_be_pasted_with_spaces_in_the_paths(
    cli, tmp_path, tiny_data, monkeypatch
):
    monkeypatch.setenv("COLUMNS", "500")  # one table row a line
    out = tmp_path / "my runs" / "a b"
    res = cli("train", "--data", tiny_data, "--category", CATEGORY, "--out", out, "--size", 64)
    assert res.exit_code == 0, res.stderr
    assert f"eval --run {shlex.quote(str(out))} --data {shlex.quote(str(tiny_data))}" in res.stdout
