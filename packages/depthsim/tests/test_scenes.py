from __future__ import annotations

import json
from pathlib import Path

import depthsim
import numpy as np
import pytest
import tifffile
from depthsim.scenes import (
    CLASSES,
    DEFECT_MODALITY,
    GT_IDS,
    generate_dataset,
    render_scene,
)


def test_contract_constants():
    assert DEFECT_MODALITY == {"dent": "depth", "bump": "depth", "stain": "rgb", "crack": "both"}
    assert len(CLASSES) >= 3
    assert sorted(GT_IDS.values(), reverse=True) == [255, 254, 253, 252]


@pytest.mark.parametrize("cls", CLASSES)
def test_scene_arrays_and_invariants(cls):
    s = render_scene(cls, size=96, rng=11)
    assert s.xyz.shape == (96, 96, 3) and s.xyz.dtype == np.float32
    assert s.rgb.shape == (96, 96, 3) and s.rgb.dtype == np.uint8
    assert s.gt.shape == (96, 96) and s.gt.dtype == np.uint8 and not s.gt.any()
    assert np.isfinite(s.xyz).all()
    invalid = ~(s.xyz != 0).any(-1)
    assert np.all((s.xyz[..., 2] == 0) == invalid)  # invalid means exactly (0, 0, 0)
    assert 0.005 < invalid.mean() < 0.1
    z = s.xyz[..., 2][~invalid]
    assert 0.5 < z.min() and z.max() < 0.7  # metres, ~0.6 m from the camera
    # The support plane fills the image border: a plane fit there has sub-millimetre residuals.
    border = np.zeros((96, 96), bool)
    border[:4] = border[-4:] = border[:, :4] = border[:, -4:] = True
    assert not (s.object_mask & border).any()
    pts = s.xyz[border & ~invalid].astype(np.float64)
    design = np.c_[pts[:, :2], np.ones(len(pts))]
    coef, *_ = np.linalg.lstsq(design, pts[:, 2], rcond=None)
    residual = pts[:, 2] - design @ coef
    assert residual.std() < 5e-4
    # The object rises 1-4 cm above the plane.
    height = (np.c_[s.xyz[..., :2].reshape(-1, 2), np.ones(96 * 96)] @ coef).reshape(
        96, 96
    ) - s.xyz[..., 2]
    top = height[s.object_mask & ~invalid].max()
    assert 0.008 < top < 0.045


def test_non_square_scene():
    s = render_scene("puck", size=(80, 120), defect="bump", rng=2)
    assert s.xyz.shape == (80, 120, 3) and s.rgb.shape == (80, 120, 3) and s.gt.shape == (80, 120)
    assert (s.gt > 0).any()


def test_determinism_and_pose_variation():
    a = render_scene("bar", size=64, defect="crack", rng=3)
    b = render_scene("bar", size=64, defect="crack", rng=3)
    c = render_scene("bar", size=64, defect="crack", rng=4)
    for f in ("xyz", "rgb", "gt"):
        assert np.array_equal(getattr(a, f), getattr(b, f))
    assert not np.array_equal(a.object_mask, c.object_mask)


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("seed", [0, 1])
def test_defect_modalities(cls, seed):
    good = render_scene(cls, size=96, rng=seed)
    valid = (good.xyz != 0).any(-1)
    for kind, modality in DEFECT_MODALITY.items():
        s = render_scene(cls, size=96, defect=kind, rng=seed)
        gt = s.gt > 0
        assert set(np.unique(s.gt).tolist()) == {0, GT_IDS[kind]}
        assert gt.sum() >= 10 and np.all(gt <= good.object_mask)  # on the object surface
        rgb_same = np.array_equal(s.rgb, good.rgb)
        xyz_same = np.array_equal(s.xyz, good.xyz)
        assert rgb_same == (modality == "depth"), kind
        assert xyz_same == (modality == "rgb"), kind
        if modality != "rgb":
            both = gt & valid & (s.xyz != 0).any(-1)
            dz = (s.xyz[..., 2] - good.xyz[..., 2])[both]
            assert np.abs(dz).max() > 1e-3  # at least a millimetre
            assert np.sign(dz.mean()) == (-1 if kind == "bump" else 1)  # bumps come closer
            far = ~gt & valid & (s.xyz != 0).any(-1)
            far_dz = np.abs(s.xyz[..., 2] - good.xyz[..., 2])[far]
            assert np.quantile(far_dz, 0.99) < 1e-3  # the change is where the gt says
        if modality != "depth":
            diff = np.abs(s.rgb.astype(int) - good.rgb.astype(int)).sum(-1)
            assert diff[gt].mean() > 5 * max(diff[~gt].mean(), 1)


def test_bad_arguments():
    with pytest.raises(depthsim.DepthsimError, match="class_name"):
        render_scene("teapot", rng=0)
    with pytest.raises(depthsim.DepthsimError, match="defect"):
        render_scene("puck", defect="scratch", rng=0)
    with pytest.raises(depthsim.DepthsimError, match="size"):
        render_scene("puck", size=(4, 64), rng=0)
    with pytest.raises(depthsim.DepthsimError, match="classes"):
        generate_dataset("/nonexistent-never-written", classes=["teapot"])


@pytest.mark.parametrize(
    ("bad", "name"),
    [
        ({"seed": -1}, "seed"),
        ({"seed": None}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"classes": "puck"}, "classes"),
        ({"defect_types": "dent"}, "defect_types"),
        ({"size": True}, "size"),
    ],
)
def test_bad_dataset_arguments_name_the_argument(tmp_path, bad, name):
    kwargs = dict(classes=["puck"], size=16, n_train=1, n_validation=0, n_test_per_type=0) | bad
    with pytest.raises(depthsim.DepthsimError, match=rf"^{name}: [^\n]*$") as err:
        generate_dataset(tmp_path / "ds", **kwargs)
    assert repr(bad[name]) in str(err.value)
    # a valid name given as a string is not "unknown" (list("puck") would make that claim of 'p')
    assert "unknown" not in str(err.value)
    assert not (tmp_path / "ds").exists()


def test_dataset_takes_numpy_ints_like_python_ints(tmp_path):
    small = dict(classes=["bar"], n_validation=0, n_test_per_type=0)
    a = generate_dataset(tmp_path / "a", size=16, n_train=1, seed=3, **small)
    b = generate_dataset(
        tmp_path / "b", size=np.int64(16), n_train=np.int32(1), seed=np.uint8(3), **small
    )
    assert _files(a) == _files(b)


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_dataset_layout_formats_and_determinism(tmp_path):
    kwargs = dict(
        classes=["puck", "dome"], size=64, n_train=2, n_validation=1, n_test_per_type=2, seed=5
    )
    calls = []
    root = generate_dataset(tmp_path / "a", progress=lambda d, t: calls.append((d, t)), **kwargs)
    total = 2 * (2 + 1 + 2 * 5)
    assert calls[-1] == (total, total)
    meta = json.loads((root / "scenes.json").read_text())
    assert meta["classes"] == ["puck", "dome"] and meta["defect_types"] == DEFECT_MODALITY
    assert meta["gt_ids"] == GT_IDS and meta["seed"] == 5 and meta["size"] == 64
    for cls in ("puck", "dome"):
        ids = json.loads((root / cls / "class_ids.json").read_text())
        assert ids["0"] == "good" and ids["255"] == "dent"
        for split, n in (("train", 2), ("validation", 1)):
            assert sorted(p.name for p in (root / cls / split / "good" / "xyz").iterdir()) == [
                f"{i:03d}.tiff" for i in range(n)
            ]
            assert not (root / cls / split / "good" / "gt").exists()
        for kind in ("good", *DEFECT_MODALITY):
            folder = root / cls / "test" / kind
            for i in range(2):
                xyz = tifffile.imread(folder / "xyz" / f"{i:03d}.tiff")
                assert xyz.dtype == np.float32 and xyz.shape == (64, 64, 3)
                assert (folder / "rgb" / f"{i:03d}.png").is_file()
                assert (folder / "gt" / f"{i:03d}.png").is_file()
    files = _files(root)
    assert not [f for f in files if Path(f).name.startswith(".")]  # no temporary leftovers
    again = generate_dataset(tmp_path / "b", **kwargs)
    assert _files(again) == files
    subset = generate_dataset(tmp_path / "c", **(kwargs | {"classes": ["dome"]}))
    # A sample depends only on (seed, class, split, type, index), not on the other classes.
    dome = "dome/test/crack/xyz/001.tiff"
    assert (subset / dome).read_bytes() == files[dome]


def test_dataset_pngs_decode_with_pillow(tmp_path):
    # pillow is optional for these tests (the README's standalone run needs only pytest and
    # hypothesis), so only this test needs it
    image = pytest.importorskip("PIL.Image")
    root = generate_dataset(tmp_path, classes=["bar"], size=48, n_train=0, n_test_per_type=1)
    for kind in ("good", *DEFECT_MODALITY):
        folder = root / "bar" / "test" / kind
        with (
            image.open(folder / "rgb" / "000.png") as rgb,
            image.open(folder / "gt" / "000.png") as gt,
        ):
            assert rgb.mode == "RGB" and rgb.size == (48, 48)
            assert gt.mode == "L" and gt.size == (48, 48)
            values = set(np.unique(np.asarray(gt)).tolist())
        assert values == ({0} if kind == "good" else {0, GT_IDS[kind]})
