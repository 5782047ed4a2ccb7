"""Own scans as PCD / PLY clouds: `read_pair` (a cloud's own colour, units) and the generic
folder layouts that pair them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pcprep import DatasetIndex, PcprepError, index_dataset, read_pair
from pcprep.pairs import generic_pairs
from PIL import Image


def _scan(seed: int = 0, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    v, u = np.mgrid[0:6, 0:8].astype(np.float32) * 0.01
    xyz = np.stack([u, v, 0.6 + 0.001 * rng.random((6, 8))], -1).astype(np.float32) * scale
    return xyz, rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)


def test_a_cloud_with_colour_stands_alone_and_an_image_wins(cloud_bytes, tmp_path: Path) -> None:
    xyz, rgb = _scan()
    cloud = tmp_path / "scan.pcd"
    cloud.write_bytes(cloud_bytes.pcd_bytes(xyz, rgb))
    sample = read_pair(cloud, None)
    np.testing.assert_array_equal(sample.rgb, rgb)
    np.testing.assert_array_equal(sample.xyz, xyz)
    image = tmp_path / "scan.png"
    Image.fromarray(255 - rgb).save(image)
    np.testing.assert_array_equal(read_pair(cloud, image).rgb, 255 - rgb)


def test_a_lone_file_without_colour_reads_as_a_scan_without_colour(
    cloud_bytes, tmp_path: Path
) -> None:
    xyz, _ = _scan()
    cloud = tmp_path / "scan.ply"
    cloud.write_bytes(cloud_bytes.ply_bytes(xyz, None))
    np.save(tmp_path / "scan.npy", xyz)
    for path in (cloud, tmp_path / "scan.npy"):
        sample = read_pair(path, None)
        assert sample.rgb is None, path
        np.testing.assert_array_equal(sample.xyz, xyz, str(path))


def test_millimetre_clouds_take_the_unit(cloud_bytes, tmp_path: Path) -> None:
    xyz, rgb = _scan(scale=1000.0)  # Zivid and Photoneo write millimetres
    cloud = tmp_path / "scan.pcd"
    cloud.write_bytes(cloud_bytes.pcd_bytes(xyz, rgb, "binary_compressed"))
    with pytest.raises(PcprepError, match=r"scan\.pcd: point cloud read as m .*depth-unit mm"):
        read_pair(cloud, None)
    np.testing.assert_allclose(read_pair(cloud, None, depth_unit="mm").xyz, xyz / 1000, rtol=1e-6)
    np.testing.assert_allclose(read_pair(cloud, None, depth_scale=1e-3).xyz, xyz / 1000, rtol=1e-6)


def test_generic_folders_pair_clouds(cloud_bytes, tmp_path: Path) -> None:
    xyz, rgb = _scan()
    sub = tmp_path / "sub"
    (sub / "xyz").mkdir(parents=True)  # xyz/ of clouds, no rgb/ at all
    (sub / "xyz" / "a.pcd").write_bytes(cloud_bytes.pcd_bytes(xyz, rgb))
    (sub / "xyz" / "b.ply").write_bytes(cloud_bytes.ply_bytes(xyz, rgb, "ascii"))
    assert [(g.name, r) for g, r, _ in generic_pairs(sub)] == [("a.pcd", None), ("b.ply", None)]
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "c_xyz.ply").write_bytes(cloud_bytes.ply_bytes(xyz, rgb))
    (flat / "d_xyz.pcd").write_bytes(cloud_bytes.pcd_bytes(xyz, None))
    Image.fromarray(rgb).save(flat / "d_rgb.png")
    pairs = [(g.name, r and r.name) for g, r, _ in generic_pairs(flat)]
    assert pairs == [("c_xyz.ply", None), ("d_xyz.pcd", "d_rgb.png")]
    (flat / "e_xyz.pcd").write_bytes(cloud_bytes.pcd_bytes(xyz, None))
    # No colour anywhere: a scan without colour, which only a depth detector takes.
    (_, _, _), (_, _, _), (e, e_rgb, _) = generic_pairs(flat)
    assert e.name == "e_xyz.pcd" and e_rgb is None
    assert read_pair(e, None).rgb is None


def test_index_reads_a_folder_of_clouds(cloud_bytes, tmp_path: Path) -> None:
    for split, n in (("train", 3), ("test", 1)):
        folder = tmp_path / "gland" / split / "xyz"
        folder.mkdir(parents=True)
        for i in range(n):
            xyz, rgb = _scan(i, scale=1000.0)
            (folder / f"{i:03d}.pcd").write_bytes(cloud_bytes.pcd_bytes(xyz, rgb))
    refs = index_dataset(tmp_path, "gland", "train", depth_unit="mm")
    assert len(refs) == 3 and refs[0].rgb_path is None and refs[0].files == (refs[0].path,)
    sample = refs[1].load()
    np.testing.assert_array_equal(sample.rgb, _scan(1)[1])
    assert abs(float(sample.xyz[0, 0, 2]) - 0.6) < 0.01


def test_clouds_sorted_as_mvtec_sorts_its_tiffs_are_own_scans(cloud_bytes, tmp_path: Path) -> None:
    """``<split>/<type>/xyz/NNN.pcd`` (+ gt/): MVTec 3D-AD's tree holding clouds, as a converted
    copy of it would. It read as MVTec 3D-AD, which takes TIFFs only: "no samples"."""
    for split, kind, n in (("train", "good", 2), ("test", "good", 1), ("test", "dent", 1)):
        folder = tmp_path / "gland" / split / kind
        (folder / "xyz").mkdir(parents=True)
        for i in range(n):
            xyz, rgb = _scan(i)
            (folder / "xyz" / f"{i:03d}.pcd").write_bytes(cloud_bytes.pcd_bytes(xyz, rgb))
            if kind == "dent":
                (folder / "gt").mkdir()
                mask = np.zeros(rgb.shape[:2], dtype=np.uint8)
                mask[2:4, 3:5] = 255
                Image.fromarray(mask).save(folder / "gt" / f"{i:03d}.png")
    assert DatasetIndex(tmp_path).layout == "generic"
    assert len(index_dataset(tmp_path, "gland", "train")) == 2
    refs = index_dataset(tmp_path, "gland", "test")
    assert [(r.defect_type, r.label, r.gt_path is not None) for r in refs] == [
        ("dent", 1, True),
        ("good", 0, False),
    ]
    assert refs[0].load().gt.sum() == 4
