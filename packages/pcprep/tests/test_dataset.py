"""Dataset indexing (three layouts) and the cached parallel `preprocess_dataset`."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
from pcprep import (
    DatasetIndex,
    PcprepError,
    enclosing_dataset,
    index_dataset,
    list_categories,
    preprocess,
    preprocess_dataset,
)
from pcprep.synthetic import synthetic_scan
from PIL import Image


def write_mvtec(root: Path, category: str, split: str, kind: str, n: int, seed: int = 0) -> None:
    base = root / category / split / kind
    for sub in ("xyz", "rgb", "gt"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        scan = synthetic_scan((40, 40), tilt=(0.1 * i, 0.05), noise=0.0002, rng=seed + i)
        tifffile.imwrite(base / "xyz" / f"{i:03d}.tiff", scan.sample.xyz, photometric="minisblack")
        Image.fromarray(scan.sample.rgb).save(base / "rgb" / f"{i:03d}.png")
        if split == "test":
            gt = np.zeros((40, 40), np.uint8)
            if kind != "good":
                gt[15:20, 15:20] = 255
            Image.fromarray(gt).save(base / "gt" / f"{i:03d}.png")


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def mvtec_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    write_mvtec(root, "box", "train", "good", 3)
    write_mvtec(root, "box", "test", "good", 2)
    write_mvtec(root, "box", "test", "dent", 2, seed=10)
    write_mvtec(root, "cup", "train", "good", 1)
    return root


def test_real_layouts(real_data):
    assert list_categories(real_data / "mvtec3d_ad") == ["cable_gland", "tire"]
    refs = index_dataset(real_data / "mvtec3d_ad", "cable_gland", "test")
    assert len(refs) == 11 and {r.defect_type for r in refs} == {
        "good",
        "bent",
        "cut",
        "hole",
        "thread",
    }
    assert all(r.gt_path is not None for r in refs) and refs[0].load().label == 1
    assert list_categories(real_data / "eyecandies") == ["CandyCane"]
    eye = index_dataset(real_data / "eyecandies", "CandyCane", "test")
    assert [r.label for r in eye] == [0, 0, 1, 1, 1, 1, 1]
    assert len(index_dataset(real_data / "eyecandies", "CandyCane", "validation")) == 1
    sample = eye[2].load()
    assert sample.defect_type == "bumps" and sample.xyz.shape == (512, 512, 3)


def test_mvtec_layout_and_errors(mvtec_root):
    idx = DatasetIndex(mvtec_root)
    assert idx.layout == "mvtec3d" and idx.categories() == ["box", "cup"]
    refs = index_dataset(mvtec_root, "box", "test")
    assert [(r.defect_type, r.label) for r in refs] == [
        ("dent", 1),
        ("dent", 1),
        ("good", 0),
        ("good", 0),
    ]
    with pytest.raises(PcprepError, match=r"unknown category 'bag' \(known: box, cup\)"):
        index_dataset(mvtec_root, "bag", "test")
    with pytest.raises(PcprepError, match=r"unknown split 'tests'"):
        index_dataset(mvtec_root, "box", "tests")
    with pytest.raises(PcprepError, match=r"cup: no samples for split 'test'"):
        index_dataset(mvtec_root, "cup", "test")
    (mvtec_root / "box/test/dent/rgb/001.png").unlink()
    # A scan without its colour image stays in the split, without colour.
    lone = [r for r in index_dataset(mvtec_root, "box", "test") if r.path.name == "001.tiff"]
    assert [r.rgb_path for r in lone if r.defect_type == "dent"] == [None]


def test_mvtec_rgb_without_its_xyz_is_an_error(mvtec_root):
    # A lost point cloud dropped its scan without a word (a test scan then vanished from the
    # metrics); the README lists an rgb without its xyz as bad input, like the reverse.
    (mvtec_root / "box/test/dent/xyz/001.tiff").unlink()
    with pytest.raises(PcprepError, match=r"dent/rgb/001\.png: no point cloud 001\.tiff in "):
        index_dataset(mvtec_root, "box", "test")


def test_a_class_folder_of_a_dataset_is_refused_with_its_root(mvtec_root):
    # Indexed alone, one MVTec class reads as own scans whose classes are its splits: the
    # training scans came back as the test split's defect type 'train'.
    box = mvtec_root / "box"
    assert enclosing_dataset(box).root == mvtec_root
    with pytest.raises(PcprepError, match=r"box: one class of an MVTec 3D-AD dataset; index the "):
        index_dataset(box, "test", "test")
    with pytest.raises(PcprepError, match=r"DatasetIndex\('.*data'\)\.refs\('box', split\)"):
        DatasetIndex(box).refs(None, "train")
    # Asked for by name, the generic reading stays available.
    refs = DatasetIndex(box, layout="generic").refs("test", "test")
    assert {r.defect_type for r in refs} == {"good", "dent"}
    assert enclosing_dataset(mvtec_root) is None


def test_a_class_of_own_scans_is_not_refused(tmp_path):
    # Own scans nest freely: a class folder of the generic layout is a dataset of its own.
    scan = synthetic_scan((32, 32), rng=0).sample
    part = tmp_path / "own" / "part"
    (part / "xyz").mkdir(parents=True)
    (part / "rgb").mkdir()
    tifffile.imwrite(part / "xyz" / "a.tiff", scan.xyz, photometric="minisblack")
    Image.fromarray(scan.rgb).save(part / "rgb" / "a.png")
    assert enclosing_dataset(part).layout == "generic"
    assert [r.path.name for r in index_dataset(part, None, "train")] == ["a.tiff"]


def test_empty_and_missing_root(tmp_path):
    with pytest.raises(PcprepError, match="no samples"):
        index_dataset(tmp_path, None, "test")
    with pytest.raises(PcprepError, match="dataset root is not a folder"):
        index_dataset(tmp_path / "nope", "x", "test")


def test_generic_layouts(tmp_path):
    scan = synthetic_scan((32, 32), rng=0).sample
    sub = tmp_path / "own" / "part" / "test"
    (sub / "rgb").mkdir(parents=True)
    (sub / "depth").mkdir()
    np.save(sub / "depth" / "s1.npy", scan.xyz[..., 2])
    Image.fromarray(scan.rgb).save(sub / "rgb" / "s1.png")
    assert DatasetIndex(tmp_path / "own").layout == "generic"
    assert list_categories(tmp_path / "own") == ["part"]
    refs = index_dataset(tmp_path / "own", "part", "test")
    assert len(refs) == 1 and refs[0].load().xyz.shape == (32, 32, 3)
    flat = tmp_path / "flat"
    flat.mkdir()
    tifffile.imwrite(flat / "a_xyz.tiff", scan.xyz, photometric="minisblack")
    Image.fromarray(scan.rgb).save(flat / "a_rgb.png")
    tifffile.imwrite(flat / "b_xyz.tiff", scan.xyz, photometric="minisblack")
    assert list_categories(flat) == ["flat"]
    # A scan without its colour image stays in the split, as a scan without colour.
    lone = index_dataset(flat, None, "test")[1]
    assert lone.path.name == "b_xyz.tiff" and lone.rgb_path is None and lone.load().rgb is None
    Image.fromarray(scan.rgb[:20]).save(flat / "b_rgb.png")
    refs = index_dataset(flat, None, "test")
    assert [r.path.name for r in refs] == ["a_xyz.tiff", "b_xyz.tiff"]
    with pytest.raises(PcprepError, match=r"b_rgb\.png: size 20x32 does not match b_xyz\.tiff"):
        refs[1].load()


def test_preprocess_dataset_cache_and_progress(mvtec_root, tmp_path):
    before = tree_digest(mvtec_root)
    cache = tmp_path / "cache"
    calls: list[tuple[int, int]] = []
    first = preprocess_dataset(
        mvtec_root,
        cache,
        category="box",
        split="test",
        size=24,
        workers=2,
        progress=lambda d, t: calls.append((d, t)),
    )
    assert calls[0] == (0, 4) and calls[-1] == (4, 4) and len(calls) == 5
    files = sorted(cache.rglob("*.npz"))
    assert len(files) == 4 and not list(cache.rglob("*.tmp"))
    # identical to preprocessing directly, and in index order
    refs = index_dataset(mvtec_root, "box", "test")
    for ref, got in zip(refs, first, strict=True):
        direct = preprocess(ref.load(), size=24)
        np.testing.assert_array_equal(direct.depth, got.depth)
        assert got.defect_type == ref.defect_type and got.path == ref.path
    mtimes = [f.stat().st_mtime_ns for f in files]
    again = preprocess_dataset(mvtec_root, cache, category="box", split="test", size=24, workers=1)
    assert [f.stat().st_mtime_ns for f in sorted(cache.rglob("*.npz"))] == mtimes  # all hits
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a.depth, b.depth)
        np.testing.assert_array_equal(a.gt, b.gt)
        assert a.native_shape == b.native_shape and a.label == b.label
    # a parameter change is a miss
    preprocess_dataset(mvtec_root, cache, category="box", split="test", size=24, fg_threshold=0.004)
    assert len(list(cache.rglob("*.npz"))) == 8
    # editing a file's content is a miss for that file only
    rgb = mvtec_root / "box/test/good/rgb/000.png"
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(rgb)
    before[str(rgb.relative_to(mvtec_root))] = hashlib.sha256(rgb.read_bytes()).hexdigest()
    preprocess_dataset(mvtec_root, cache, category="box", split="test", size=24)
    assert len(list(cache.rglob("*.npz"))) == 9
    assert tree_digest(mvtec_root) == before  # the dataset was never written to


def test_corrupt_cache_entry_is_recomputed(mvtec_root, tmp_path):
    cache = tmp_path / "cache"
    preprocess_dataset(mvtec_root, cache, category="cup", split="train", size=16)
    (entry,) = cache.rglob("*.npz")
    entry.write_bytes(b"garbage")
    out = preprocess_dataset(mvtec_root, cache, category="cup", split="train", size=16)
    assert out[0].depth.shape == (16, 16) and entry.stat().st_size > 100


def test_cache_inside_dataset_is_refused(mvtec_root):
    with pytest.raises(PcprepError, match="cache folder must be outside the dataset"):
        preprocess_dataset(mvtec_root, mvtec_root / "cache", category="box", split="train")


def test_preprocess_dataset_error_names_file(mvtec_root, tmp_path):
    bad = mvtec_root / "box/train/good/xyz/001.tiff"
    bad.write_bytes(bad.read_bytes()[:100])
    with pytest.raises(PcprepError, match=r"001\.tiff: truncated TIFF, cannot read it"):
        preprocess_dataset(mvtec_root, tmp_path / "c", category="box", split="train", workers=2)


def test_preprocess_dataset_rejects_unknown_parameter(mvtec_root, tmp_path):
    with pytest.raises(TypeError, match="invalid preprocess parameter"):
        preprocess_dataset(mvtec_root, tmp_path / "c", category="box", split="train", sise=32)


def test_explicit_default_shares_cache_entries(mvtec_root, tmp_path):
    cache = tmp_path / "c"
    preprocess_dataset(mvtec_root, cache, category="cup", split="train", size=16)
    preprocess_dataset(mvtec_root, cache, category="cup", split="train", size=16, plane="robust")
    assert len(list(cache.rglob("*.npz"))) == 1


def test_own_scans_with_flat_train_and_typed_test_are_generic(tmp_path):
    # train/ holding rgb/ + xyz/ directly and test/<type>/{rgb,xyz} (the generic layout) was taken
    # for MVTec 3D-AD because of the type folders, and then found no training samples at all.
    scan = synthetic_scan((32, 32), rng=0).sample
    part = tmp_path / "own" / "part"
    for folder in (part / "train", part / "test" / "good", part / "test" / "dent"):
        (folder / "xyz").mkdir(parents=True)
        (folder / "rgb").mkdir()
        tifffile.imwrite(folder / "xyz" / "s 1.tiff", scan.xyz, photometric="minisblack")
        Image.fromarray(scan.rgb).save(folder / "rgb" / "s 1.png")
    assert DatasetIndex(tmp_path / "own").layout == "generic"
    train = index_dataset(tmp_path / "own", "part", "train")
    assert [r.path.name for r in train] == ["s 1.tiff"]
    test = index_dataset(tmp_path / "own", "part", "test")
    assert [(r.defect_type, r.label) for r in test] == [("dent", 1), ("good", 0)]


def test_generic_split_folders_are_not_defect_types(tmp_path):
    # Without validation/, the generic index took train/ and test/ for defect types of the
    # validation split: the training scans came back as validation samples labelled anomalous.
    scan = synthetic_scan((32, 32), rng=0).sample
    part = tmp_path / "own" / "part"
    for folder in (part / "train", part / "test" / "good"):
        folder.mkdir(parents=True)
        np.save(folder / "a_depth.npy", scan.xyz[..., 2])
        Image.fromarray(scan.rgb).save(folder / "a_rgb.png")
    with pytest.raises(PcprepError, match=r"part: no samples for split 'validation'"):
        index_dataset(tmp_path / "own", "part", "validation")
    (part / "val").mkdir()
    np.save(part / "val" / "b_depth.npy", scan.xyz[..., 2])
    Image.fromarray(scan.rgb).save(part / "val" / "b_rgb.png")
    (ref,) = index_dataset(tmp_path / "own", "part", "validation")
    assert (ref.path.name, ref.defect_type, ref.label) == ("b_depth.npy", "unlabeled", 0)
    # a class folder without split folders still serves every split
    flat = tmp_path / "flat"
    flat.mkdir()
    np.save(flat / "c_depth.npy", scan.xyz[..., 2])
    Image.fromarray(scan.rgb).save(flat / "c_rgb.png")
    for split in ("train", "validation", "test"):
        assert [r.path.name for r in index_dataset(flat, None, split)] == ["c_depth.npy"]


def test_generic_rgb_without_its_geometry_is_an_error(tmp_path):
    # A colour image whose depth was lost dropped its scan from the split without a word.
    scan = synthetic_scan((32, 32), rng=0).sample
    flat = tmp_path / "flat"
    flat.mkdir()
    for stem in ("a", "b"):
        np.save(flat / f"{stem}_depth.npy", scan.xyz[..., 2])
        Image.fromarray(scan.rgb).save(flat / f"{stem}_rgb.png")
    (flat / "._a_depth.npy").write_bytes(b"\0")  # macOS copies' metadata is not a scan
    assert [r.path.name for r in index_dataset(flat, None, "test")] == [
        "a_depth.npy",
        "b_depth.npy",
    ]
    (flat / "b_depth.npy").unlink()
    with pytest.raises(PcprepError, match=r"b_rgb\.png: no point cloud b_xyz\.\* or depth b_"):
        index_dataset(flat, None, "test")
    sub = tmp_path / "sub"
    (sub / "depth").mkdir(parents=True)
    (sub / "rgb").mkdir()
    np.save(sub / "depth" / "a.npy", scan.xyz[..., 2])
    for stem in ("a", "b"):
        Image.fromarray(scan.rgb).save(sub / "rgb" / f"{stem}.png")
    with pytest.raises(PcprepError, match=r"rgb/b\.png: no point cloud or depth b\.\* in "):
        index_dataset(sub, None, "test")


def test_generic_rgb_name_taken_by_a_folder_or_dangling_link_is_named(tmp_path):
    # 'no colour image a_rgb.* next to it' sent the user to a listing that shows a_rgb.png
    scan = synthetic_scan((32, 32), rng=0).sample
    np.save(tmp_path / "a_depth.npy", scan.xyz[..., 2])
    (tmp_path / "a_rgb.png").mkdir()
    with pytest.raises(PcprepError, match=r"a_rgb\.png: is a folder, not the colour image of a_"):
        index_dataset(tmp_path, None, "test")
    (tmp_path / "a_rgb.png").rmdir()
    (tmp_path / "a_rgb.png").symlink_to(tmp_path / "gone.png")
    with pytest.raises(PcprepError, match=r"a_rgb\.png: is a broken or looping symbolic link"):
        index_dataset(tmp_path, None, "test")


def test_generic_class_with_only_typed_test_folders_is_listed(tmp_path):
    # <class>/test/<type>/NAME_depth + NAME_rgb (a test set alone, for eval) was not a class:
    # only pairs up to one folder below a class were looked for.
    scan = synthetic_scan((32, 32), rng=0).sample
    for kind in ("good", "dent"):
        folder = tmp_path / "part" / "test" / kind
        folder.mkdir(parents=True)
        np.save(folder / "a_depth.npy", scan.xyz[..., 2])
        Image.fromarray(scan.rgb).save(folder / "a_rgb.png")
    assert list_categories(tmp_path) == ["part"]
    refs = index_dataset(tmp_path, "part", "test")
    assert [(r.defect_type, r.label) for r in refs] == [("dent", 1), ("good", 0)]
