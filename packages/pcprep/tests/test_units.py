"""The unit own scans are read in (``depth_unit``) and the check that refuses a wrong one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from pcprep import DatasetIndex, PcprepError, read_eyecandies, read_mvtec3d, read_pair
from pcprep.synthetic import synthetic_scan
from PIL import Image


@pytest.fixture
def scan():
    return synthetic_scan((24, 32), noise=0.0002, dropout=0.05, rng=1).sample


def _rgb(folder: Path, sample) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sample.rgb).save(folder / "a_rgb.png")
    return folder / "a_rgb.png"


def test_float_depth_in_mm_is_refused_without_its_unit_and_read_with_it(tmp_path, scan):
    rgb = _rgb(tmp_path, scan)
    z = scan.xyz[..., 2]
    np.save(tmp_path / "m_depth.npy", z)
    np.save(tmp_path / "mm_depth.npy", (z * 1000).astype(np.float32))
    # float millimetres read as metres put the scene 600 m away: the 5 mm foreground threshold
    # would then mean 5 m
    with pytest.raises(
        PcprepError, match=r"mm_depth\.npy: depth read as m puts the scene [56]\d\d m"
    ):
        read_pair(tmp_path / "mm_depth.npy", rgb)
    with pytest.raises(PcprepError, match=r"too far; if the file is in mm, .*--depth-unit mm"):
        read_pair(tmp_path / "mm_depth.npy", rgb)
    ref = read_pair(tmp_path / "m_depth.npy", rgb, focal_px=500.0)
    for unit in ("m", None):
        np.testing.assert_array_equal(
            read_pair(tmp_path / "m_depth.npy", rgb, depth_unit=unit, focal_px=500.0).xyz, ref.xyz
        )
    got = read_pair(tmp_path / "mm_depth.npy", rgb, depth_unit="mm", focal_px=500.0).xyz
    np.testing.assert_allclose(got, ref.xyz, rtol=1e-6, atol=1e-9)
    # the other way round: metres said to be millimetres are 0.6 mm away
    with pytest.raises(PcprepError, match=r"m_depth\.npy: .*too near; if the file is in m, "):
        read_pair(tmp_path / "m_depth.npy", rgb, depth_unit="mm")


def test_integer_depth_unit_and_scale(tmp_path, scan):
    rgb = _rgb(tmp_path, scan)
    um = np.round(scan.xyz[..., 2] * 1e6).astype(np.int32)
    np.save(tmp_path / "um_depth.npy", um)
    got = read_pair(tmp_path / "um_depth.npy", rgb, depth_unit="um").xyz[..., 2]
    np.testing.assert_allclose(got, scan.xyz[..., 2], atol=1e-6)
    # integers default to millimetres: micrometres would be 600 m away
    with pytest.raises(PcprepError, match=r"um_depth\.npy: depth read as mm .*in um"):
        read_pair(tmp_path / "um_depth.npy", rgb)
    # an explicit scale wins over the unit
    got = read_pair(tmp_path / "um_depth.npy", rgb, depth_unit="mm", depth_scale=1e-6).xyz
    np.testing.assert_allclose(got[..., 2], scan.xyz[..., 2], atol=1e-6)
    with pytest.raises(ValueError, match="depth_unit must be one of"):
        read_pair(tmp_path / "um_depth.npy", rgb, depth_unit="cm")


def test_xyz_in_mm_own_pair_and_mvtec_layout(tmp_path, scan):
    base = tmp_path / "good"
    _rgb(base / "rgb", scan).rename(base / "rgb" / "000.png")
    (base / "xyz").mkdir()
    path = base / "xyz" / "000.tiff"
    tifffile.imwrite(path, scan.xyz * 1000, photometric="minisblack")
    for read in (
        lambda **kw: read_pair(path, base / "rgb" / "000.png", **kw),
        lambda **kw: read_mvtec3d(path, **kw),
    ):
        with pytest.raises(PcprepError, match=r"000\.tiff: point cloud read as m .* in mm"):
            read()
        np.testing.assert_allclose(read(depth_unit="mm").xyz, scan.xyz, rtol=1e-6, atol=1e-9)
    tifffile.imwrite(path, scan.xyz, photometric="minisblack")  # metres, as MVTec 3D-AD
    np.testing.assert_array_equal(read_mvtec3d(path).xyz, scan.xyz)


def test_a_point_cloud_in_a_table_frame_passes(tmp_path, scan):
    # z near 0 on the table: the distance from the origin, not z, is what the check measures
    xyz = scan.xyz.copy()
    xyz[..., 2] -= 0.6
    np.save(tmp_path / "t.npy", xyz)
    np.testing.assert_array_equal(read_pair(tmp_path / "t.npy", _rgb(tmp_path, scan)).xyz, xyz)


def test_index_passes_the_unit_to_own_scans_and_not_to_eyecandies(tmp_path, scan):
    own = tmp_path / "own"
    _rgb(own, scan)
    np.save(own / "a_depth.npy", (scan.xyz[..., 2] * 1000).astype(np.float32))
    (ref,) = DatasetIndex(own, depth_unit="mm").refs(None, "test")
    assert ("depth_unit", "mm") in ref.options
    np.testing.assert_allclose(ref.load().xyz[..., 2], scan.xyz[..., 2], rtol=1e-6)
    with pytest.raises(PcprepError, match=r"a_depth\.npy: depth read as m"):
        DatasetIndex(own).refs(None, "test")[0].load()
    # Eyecandies states its metres in the yaml: the own-scan unit does not apply to it
    data = tmp_path / "eye" / "Candy" / "test_public" / "data"
    data.mkdir(parents=True)
    Image.fromarray(np.full((4, 4), 1000, np.uint16)).save(data / "00_depth.png")
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(data / "00_image_5.png")
    (data / "00_info_depth.yaml").write_text("normalization:\n  max: 3.0\n  min: 0.5\n")
    (eye,) = DatasetIndex(tmp_path / "eye", depth_unit="mm", focal_px=9.0).refs("Candy", "test")
    assert eye.layout == "eyecandies"
    np.testing.assert_array_equal(eye.load().xyz, read_eyecandies(data / "00").xyz)
