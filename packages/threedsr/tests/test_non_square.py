"""End to end on scans that are not square, as MVTec 3D-AD's tire (800 x 600): the detector works
at a square model size, and every map it returns, evaluates and draws is at the scan's own
height and width, not transposed.

The class is ``depthsim.scenes``' puck with the top and bottom 8 rows of every file cut off
(128 x 128 -> 112 x 128; the object stays whole, so the scans stay defect-free or keep their
defects).
"""

from __future__ import annotations

import depthsim.scenes
import numpy as np
import pcprep
import pytest
import tifffile
from PIL import Image
from threedsr import Detector, DetectorConfig, evaluate, predict_samples, train_detector

CLASS = "puck"
ROWS = slice(8, 120)
NATIVE = (112, 128)
SIZE = 64
# Measured on this seeded class (6 good, 24 defective test scans; 20 training scans at 64 px):
# image AUROC 0.792, pixel AUROC 0.975 (native 0.975), AUPRO 0.843 (native 0.840); the same
# class uncut: 0.868 / 0.979 / 0.870. With 6 good scans one good scan moves the image AUROC by
# up to 0.17, so its floor sits that far below; the pixel figures about 0.1 below.
IMAGE_AUROC_MIN = 0.62
PIXEL_AUROC_MIN = 0.87
AUPRO_MIN = 0.74


def _cut_rows(root) -> None:
    for f in sorted(root.rglob("*")):
        if f.suffix == ".tiff":
            xyz = np.ascontiguousarray(tifffile.imread(f)[ROWS])
            tifffile.imwrite(f, xyz, photometric="rgb", metadata=None)
        elif f.suffix == ".png" and f.parent.name in ("rgb", "gt"):
            with Image.open(f) as im:
                arr = np.asarray(im)
            Image.fromarray(np.ascontiguousarray(arr[ROWS])).save(f)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("non_square")
    data = depthsim.scenes.generate_dataset(
        root / "data", classes=[CLASS], size=128, n_train=20, n_test_per_type=6, seed=3
    )
    _cut_rows(data)
    cfg = DetectorConfig.preset(
        "memory",
        "rgbd",
        data_root=str(data),
        category=CLASS,
        out_dir=str(root / "run"),
        image_size=SIZE,
    )
    train_detector(cfg)
    return {"data": data, "det": Detector.load(root / "run", device="cpu")}


def test_the_dataset_is_not_square(run) -> None:
    ref = pcprep.index_dataset(run["data"], CLASS, "test")[0]
    assert ref.load().xyz.shape[:2] == NATIVE


def test_evaluate_scores_native_maps_of_a_non_square_class(run, tmp_path) -> None:
    m = evaluate(run["det"], run["data"], out=tmp_path, keep_samples=True)[CLASS]
    s = m["samples"]
    assert s.maps.shape[1:] == (SIZE, SIZE)
    assert m["native"]["pixel_auroc"] is not None and m["native"]["aupro"] is not None
    assert m["image_auroc"] >= IMAGE_AUROC_MIN
    assert m["pixel_auroc"] >= PIXEL_AUROC_MIN and m["native"]["pixel_auroc"] >= PIXEL_AUROC_MIN
    assert m["aupro"] >= AUPRO_MIN and m["native"]["aupro"] >= AUPRO_MIN


def test_predicted_maps_have_the_scans_height_and_width(run) -> None:
    refs = [r for r in pcprep.index_dataset(run["data"], CLASS, "test") if r.defect_type != "good"]
    samples = [r.load() for r in refs]
    preds = predict_samples(run["det"], samples, batch_size=4)
    hits = 0
    for p, s in zip(preds, samples, strict=True):
        assert p.native_map.shape == NATIVE and p.map.shape == (SIZE, SIZE)
        # A transposed or misplaced map would put its peaks off the defects.
        hits += bool(s.gt[np.unravel_index(np.argmax(p.native_map), NATIVE)])
    assert hits >= len(samples) // 2, f"{hits} of {len(samples)} maps peak on their defect"
