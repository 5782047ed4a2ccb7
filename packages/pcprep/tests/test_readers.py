"""Readers on the real MVTec 3D-AD / Eyecandies samples and on files written to tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from pcprep import (
    EYECANDIES_FOCAL_PX,
    PcprepError,
    depth_to_xyz,
    parse_simple_yaml,
    preprocess,
    read_eyecandies,
    read_mask,
    read_mvtec3d,
    read_pair,
    read_rgb,
    read_simple_yaml,
    read_xyz,
    resize_mask,
)
from PIL import Image

CABLE = "mvtec3d_ad/cable_gland"
CANDY = "eyecandies/CandyCane"


def write_tiff(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, arr, photometric="minisblack")
    return path


def write_png(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


# --- real samples ------------------------------------------------------------------------------


def test_read_mvtec3d_real_test_sample(real_data):
    s = read_mvtec3d(real_data / CABLE / "test/bent/xyz/000.tiff")
    assert s.xyz.shape == (400, 400, 3) and s.xyz.dtype == np.float32
    assert s.rgb.shape == (400, 400, 3) and s.rgb.dtype == np.uint8
    assert s.gt is not None and s.gt.dtype == bool and 0 < s.gt.mean() < 0.1
    assert (s.label, s.defect_type) == (1, "bent")
    valid = (s.xyz != 0).any(-1)
    assert 0.5 < valid.mean() < 0.7
    assert 0.6 < s.xyz[valid, 2].min() and s.xyz[valid, 2].max() < 0.7  # metres


def test_read_mvtec3d_real_good_and_train(real_data):
    good = read_mvtec3d(real_data / CABLE / "test/good/xyz/000.tiff")
    assert (good.label, good.defect_type) == (0, "good") and not good.gt.any()
    train = read_mvtec3d(real_data / CABLE / "train/good/xyz/000.tiff")
    assert train.gt is None and train.label == 0


def test_real_cable_gland_preprocess(real_data):
    for kind in ("good", "bent", "hole"):
        s = read_mvtec3d(real_data / CABLE / f"test/{kind}/xyz/000.tiff")
        for plane in ("robust", "corners"):
            out = preprocess(s, plane=plane)
            assert out.depth.shape == (384, 384) and out.rgb.shape == (384, 384, 3)
            assert 0.08 < out.foreground.mean() < 0.35  # one centred object
            assert np.isfinite(out.depth).all() and np.isfinite(out.rgb).all()
            fg = out.depth > 0
            assert out.depth[fg].min() >= 0.1 - 1e-6 and out.depth.max() <= 0.9 + 1e-6
            assert out.rgb.min() >= 0 and out.rgb.max() <= 1
            assert set(np.unique(out.gt)) <= {0.0, 1.0}
            assert (out.gt.sum() > 0) == (kind != "good")
            assert out.native_shape == (400, 400)


def test_read_eyecandies_metric_depth(real_data):
    s = read_eyecandies(real_data / CANDY / "test_public/data/25")
    z = s.xyz[..., 2]
    assert s.xyz.shape == (512, 512, 3) and np.isfinite(s.xyz).all()
    assert 2.3 < z.min() < 2.4 and 4.8 < z.max() < 4.95
    # pinhole: x = (u - W/2) z / f
    u = 100
    assert np.isclose(s.xyz[300, u, 0], (u - 256) * z[300, u] / EYECANDIES_FOCAL_PX, rtol=1e-5)
    assert (s.label, s.defect_type) == (1, "bumps") and s.gt.any()
    combo = read_eyecandies(real_data / CANDY / "test_public/data/29")
    assert combo.defect_type == "bumps+dents+colors+normals"
    good = read_eyecandies(real_data / CANDY / "train/data/000", image_index=0)
    assert (good.label, good.defect_type) == (0, "good") and not good.gt.any()
    other = read_eyecandies(real_data / CANDY / "train/data/000")
    assert not np.array_equal(good.rgb, other.rgb)  # image_0 vs image_5


def test_read_eyecandies_world_frame_puts_support_plane_flat(real_data):
    s = read_eyecandies(real_data / CANDY / "train/data/000", world=True)
    out = preprocess(s, size=128)
    assert abs(out.plane[2]) > 0.99  # pose aligns the conveyor with the world xy plane


def test_eyecandies_preprocess(real_data):
    s = read_eyecandies(real_data / CANDY / "test_public/data/26")
    out = preprocess(s, size=256, drop_border_objects=True)
    assert 0.005 < out.foreground.mean() < 0.2 and np.isfinite(out.depth).all()
    assert out.gt is not None and out.gt.any()


def test_tire_non_square_gt(real_data):
    gt = read_mask(real_data / "mvtec3d_ad/tire/test/cut/gt/000.png")
    assert gt.shape == (800, 600) and gt.dtype == bool and gt.any()
    small = resize_mask(gt, (400, 300))
    assert small.shape == (400, 300) and set(np.unique(small)) == {0.0, 1.0}
    assert abs(small.mean() - gt.mean()) < 0.01
    rgb = read_rgb(real_data / "mvtec3d_ad/tire/test/cut/rgb/000.png")
    assert rgb.shape == (800, 600, 3)


def test_tire_pair_with_synthetic_depth(real_data, tmp_path):
    z = np.full((800, 600), 0.6, np.float32)
    z[300:500, 200:400] = 0.55
    depth = tmp_path / "tire_depth.npy"
    np.save(depth, z)
    tire = real_data / "mvtec3d_ad/tire/test/cut"
    s = read_pair(depth, tire / "rgb/000.png", gt_path=tire / "gt/000.png")
    assert (s.label, s.defect_type) == (1, "anomalous")
    out = preprocess(s, size=(320, 240))
    assert out.depth.shape == (320, 240) and out.gt.shape == (320, 240)
    assert out.native_shape == (800, 600)
    assert abs(out.foreground.mean() - 1 / 12) < 0.01  # 200x200 of 800x600


# --- own scans and malformed files -------------------------------------------------------------


def test_read_pair_xyz_tiff_depth_png_and_npy(tmp_path):
    rgb = write_png(tmp_path / "a_rgb.png", np.zeros((6, 8, 3), np.uint8))
    xyz = np.random.default_rng(0).random((6, 8, 3)).astype(np.float32)
    s = read_pair(write_tiff(tmp_path / "a_xyz.tiff", xyz), rgb)
    np.testing.assert_array_equal(s.xyz, xyz)
    assert s.defect_type == "unlabeled" and s.gt is None
    mm = np.full((6, 8), 600, np.uint16)
    mm[0, 0] = 0
    s = read_pair(write_png(tmp_path / "a_depth.png", mm), rgb)
    assert np.isclose(s.xyz[1, 1, 2], 0.6) and (s.xyz[0, 0] == 0).all()
    assert np.isclose(s.xyz[1, 2, 0], 2.0)  # pixel grid x
    s = read_pair(write_png(tmp_path / "b_depth.png", mm), rgb, depth_scale=1e-4, focal_px=100.0)
    assert np.isclose(s.xyz[1, 1, 2], 0.06)
    f = np.full((6, 8), np.nan, np.float32)
    f[2:, 2:] = 0.5
    np.save(tmp_path / "c.npy", f)
    s = read_pair(tmp_path / "c.npy", rgb)
    assert np.isfinite(s.xyz).all() and ((s.xyz != 0).any(-1) == np.isfinite(f)).all()


def test_read_pair_size_mismatch_names_both_files(tmp_path):
    rgb = write_png(tmp_path / "rgb.png", np.zeros((5, 5, 3), np.uint8))
    xyz = write_tiff(tmp_path / "xyz.tiff", np.ones((6, 8, 3), np.float32))
    with pytest.raises(PcprepError, match=r"rgb\.png: size 5x5 does not match xyz\.tiff \(6x8\)"):
        read_pair(xyz, rgb)


@pytest.mark.parametrize(
    ("arr", "message"),
    [
        (np.ones((6, 8, 3), np.uint16), "expected float xyz in metres, got dtype uint16"),
        (
            np.ones((6, 8, 4), np.float32),
            r"expected an \(H, W, 3\) point cloud, got shape \(6, 8, 4\)",
        ),
        (np.ones((6, 8), np.float32), r"expected an \(H, W, 3\) point cloud"),
    ],
)
def test_read_xyz_wrong_dtype_or_channels(tmp_path, arr, message):
    path = write_tiff(tmp_path / "bad.tiff", arr)
    with pytest.raises(PcprepError, match=str(path).replace(".", r"\.") + ": " + message):
        read_xyz(path)


def test_read_pair_wrong_channel_count(tmp_path):
    rgb = write_png(tmp_path / "rgb.png", np.zeros((6, 8, 3), np.uint8))
    bad = write_tiff(tmp_path / "four.tiff", np.ones((6, 8, 4), np.float32))
    with pytest.raises(
        PcprepError, match=r"four\.tiff: expected \(H, W, 3\) xyz or \(H, W\) depth"
    ):
        read_pair(bad, rgb)
    gray8 = write_png(tmp_path / "d8.png", np.ones((6, 8), np.uint8))
    with pytest.raises(PcprepError, match=r"d8\.png: unsupported depth dtype uint8"):
        read_pair(gray8, rgb)


def test_corrupt_and_truncated_files_name_the_file(tmp_path):
    good_tiff = write_tiff(tmp_path / "ok.tiff", np.ones((64, 64, 3), np.float32))
    truncated = tmp_path / "truncated.tiff"
    truncated.write_bytes(good_tiff.read_bytes()[:2000])
    garbage = tmp_path / "garbage.tiff"
    garbage.write_bytes(b"not a tiff at all" * 10)
    png = write_png(tmp_path / "ok.png", np.full((64, 64, 3), 7, np.uint8))
    cut_png = tmp_path / "cut.png"
    cut_png.write_bytes(png.read_bytes()[:60])
    bad_png = tmp_path / "bad.png"
    bad_png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    for path, says in (
        (truncated, "truncated TIFF, cannot read it"),
        (garbage, "cannot read TIFF"),
    ):
        with pytest.raises(PcprepError, match=rf"{path.name}: {says} \("):
            read_xyz(path)
    for path in (cut_png, bad_png):
        with pytest.raises(PcprepError, match=rf"{path.name}: cannot decode image"):
            read_rgb(path)
    with pytest.raises(PcprepError, match=r"missing\.png: file not found"):
        read_rgb(tmp_path / "missing.png")


def test_mvtec_xyz_without_rgb_is_a_scan_without_colour(tmp_path):
    xyz = write_tiff(tmp_path / "cls/test/good/xyz/000.tiff", np.ones((4, 4, 3), np.float32))
    sample = read_mvtec3d(xyz)
    assert sample.rgb is None and sample.xyz.shape == (4, 4, 3)


def test_mvtec_gt_size_mismatch(tmp_path):
    base = tmp_path / "cls/test/cut"
    xyz = write_tiff(base / "xyz/000.tiff", np.ones((4, 4, 3), np.float32))
    write_png(base / "rgb/000.png", np.zeros((4, 4, 3), np.uint8))
    write_png(base / "gt/000.png", np.zeros((5, 4), np.uint8))
    with pytest.raises(PcprepError, match=r"gt/000\.png: size 5x4 does not match 000\.tiff"):
        read_mvtec3d(xyz)


def test_read_mask_binarises_class_ids(tmp_path):
    m = np.array([[0, 252], [253, 255]], np.uint8)
    assert read_mask(write_png(tmp_path / "gt.png", m)).tolist() == [[False, True], [True, True]]


def test_depth_to_xyz_invalid_depth():
    d = np.array([[0.0, np.inf], [np.nan, 1.0]])
    xyz = depth_to_xyz(d, focal_px=1.0)
    assert np.isfinite(xyz).all()
    assert (xyz[0, 0] == 0).all() and (xyz[0, 1] == 0).all() and (xyz[1, 0] == 0).all()


# --- the tiny YAML subset ----------------------------------------------------------------------


def test_parse_simple_yaml_nested_and_comments():
    text = "# c\nnormalization:\n  max: 4.9  # m\n  min: 2.3\nflag: true\nname: 'x y'\nempty:\n"
    assert parse_simple_yaml(text) == {
        "normalization": {"max": 4.9, "min": 2.3},
        "flag": True,
        "name": "x y",
        "empty": None,
    }


@pytest.mark.parametrize(
    "text", ["- a\n- b\n", "a: [1, 2]\n", "key without colon\n", "a:\n\tb: 1\n"]
)
def test_parse_simple_yaml_rejects_unsupported(tmp_path, text):
    path = tmp_path / "info_depth.yaml"
    path.write_text(text)
    with pytest.raises(PcprepError, match=r"info_depth\.yaml: line \d+"):
        read_simple_yaml(path)


def test_eyecandies_bad_yaml_and_depth(tmp_path):
    base = tmp_path / "data"
    write_png(base / "00_depth.png", np.full((4, 4), 1000, np.uint16))
    write_png(base / "00_image_5.png", np.zeros((4, 4, 3), np.uint8))
    (base / "00_info_depth.yaml").write_text("normalization:\n  max: 4.0\n")
    with pytest.raises(PcprepError, match=r"00_info_depth\.yaml: missing numeric normalization"):
        read_eyecandies(base / "00")
    (base / "00_info_depth.yaml").write_text("normalization:\n  max: 1.0\n  min: 2.0\n")
    with pytest.raises(PcprepError, match=r"invalid depth normalization"):
        read_eyecandies(base / "00")
    (base / "00_info_depth.yaml").write_text("normalization:\n  max: 3.0\n  min: 2.0\n")
    s = read_eyecandies(base / "00")
    assert np.allclose(s.xyz[..., 2], 2.0 + 1000 / 65535) and s.label == 0
    write_png(base / "00_depth.png", np.full((4, 4, 3), 9, np.uint8))
    with pytest.raises(
        PcprepError, match=r"00_depth\.png: expected a single-channel 16-bit depth PNG"
    ):
        read_eyecandies(base / "00")
