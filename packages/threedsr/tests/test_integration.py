"""End to end on a synthetic ``depthsim.scenes`` class: stage 1 (short) -> stage 2 -> eval/predict.

The trained artefacts are shared by a session-scoped fixture.
"""

from __future__ import annotations

import json
import os

import depthsim.scenes
import numpy as np
import pcprep
import pytest
import torch
import vqcore
from threedsr import (
    Detector,
    DetectorConfig,
    choose_threshold,
    evaluate,
    predict_samples,
    train_detector,
)

CLASS = "puck"
# 0 = the pretrained backbone that ships with vqcore (what `threedsr-cli train` uses by default).
STAGE1_ITERS = int(os.environ.get("THREEDSR_IT_STAGE1", "0"))
STAGE2_ITERS = int(os.environ.get("THREEDSR_IT_STAGE2", "400"))
SIZE = int(os.environ.get("THREEDSR_IT_SIZE", "128"))
# The `cpu` preset as shipped (pretrained backbone, descriptor memory, 400 iterations at 128 px
# here for CI time, one thread) on this seeded class, measured: image AUROC 0.973 (bump 0.984,
# dent 0.984, crack 0.969, stain 0.953), pixel AUROC 0.991, AUPRO 0.964. The map is the
# training-free memory's (seeded subset, deterministic), so the floors hold every time; dent and
# bump are depth-only (their RGB is that of a good scan), the case issue 12 was about.
PIXEL_AUROC_MIN = 0.9
AUPRO_MIN = 0.85
IMAGE_AUROC_MIN = float(os.environ.get("THREEDSR_IT_MIN_IMAGE_AUROC", "0.85"))
DEPTH_ONLY_MIN = float(os.environ.get("THREEDSR_IT_MIN_DEPTH_AUROC", "0.8"))


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("THREEDSR_TEST_THREADS", "1")))
    try:
        root = tmp_path_factory.mktemp("threedsr_it")
        data = depthsim.scenes.generate_dataset(
            root / "data",
            classes=[CLASS],
            size=128,
            n_train=40,
            n_validation=8,
            n_test_per_type=8,
            seed=0,
        )
        backbone = None
        if STAGE1_ITERS:
            vqcore.train_dada(
                vqcore.StageOneConfig.cpu(
                    "rgbd", iterations=STAGE1_ITERS, out_dir=root / "dada", log_every=100
                )
            )
            backbone = str(root / "dada")
        cfg = DetectorConfig.preset(
            "cpu",
            setup="rgbd",
            data_root=str(data),
            category=CLASS,
            backbone=backbone,
            out_dir=str(root / "run"),
            iterations=STAGE2_ITERS,
            image_size=SIZE,
            log_every=50,
        )
        events = []
        result = train_detector(cfg, events.append)
        yield {"root": root, "data": data, "run": root / "run", "result": result, "events": events}
    finally:
        torch.set_num_threads(threads)


def test_training_wrote_a_finished_run(trained) -> None:
    res = trained["result"]
    assert res.path.is_file() and res.step == STAGE2_ITERS
    ev = trained["events"]
    assert ev[-1].step == STAGE2_ITERS and np.isfinite(ev[-1].metrics["total"])
    assert ev[-1].metrics["total"] < ev[0].metrics["total"]


def test_evaluate_separates_good_from_defective(trained) -> None:
    det = Detector.load(trained["run"], device="cpu")
    metrics = evaluate(det, trained["data"], out=trained["run"])
    m = metrics[CLASS]
    saved = json.loads((trained["run"] / "metrics.json").read_text())
    assert set(saved[CLASS]) >= {"image_auroc", "pixel_auroc", "aupro", "per_defect_type"}
    assert (trained["run"] / "metrics.md").read_text().startswith("| class |")
    assert set(m["per_defect_type"]) == set(depthsim.scenes.DEFECT_MODALITY)
    assert m["n_good"] == 8 and m["n_defective"] == 32
    assert m["native"]["pixel_auroc"] is not None
    print(json.dumps({k: m[k] for k in ("image_auroc", "pixel_auroc", "aupro", "per_defect_type")}))
    assert m["pixel_auroc"] > PIXEL_AUROC_MIN
    assert m["aupro"] > AUPRO_MIN
    assert 0.0 <= m["image_auroc"] <= 1.0
    assert m["image_auroc"] >= IMAGE_AUROC_MIN
    for t, mod in depthsim.scenes.DEFECT_MODALITY.items():
        if mod == "depth":  # dent and bump: invisible in RGB
            assert m["per_defect_type"][t] >= DEPTH_ONLY_MIN, t


def test_predict_samples_and_threshold_from_validation(trained) -> None:
    det = Detector.load(trained["run"], device="cpu")
    val = [r.load() for r in pcprep.index_dataset(trained["data"], CLASS, "validation")]
    thr = choose_threshold(det, val)
    test_refs = pcprep.index_dataset(trained["data"], CLASS, "test")[:6]
    preds = predict_samples(det, [r.load() for r in test_refs], batch_size=4)
    assert len(preds) == 6
    for p, r in zip(preds, test_refs, strict=True):
        assert p.native_map.shape == (128, 128) and p.map.shape == (SIZE, SIZE)
        assert p.defect_type == r.defect_type and np.isfinite(p.score)
    assert np.isfinite(thr)


def test_evaluate_keeps_the_per_sample_maps_it_computed(trained, tmp_path) -> None:
    det = Detector.load(trained["run"], device="cpu")
    res = evaluate(det, trained["data"], native=False, chunk=16, keep_samples=True, out=tmp_path)
    s = res[CLASS]["samples"]
    n = res[CLASS]["n_good"] + res[CLASS]["n_defective"]
    assert s.maps.shape == (n, SIZE, SIZE) and s.gts.shape == s.maps.shape and s.gts.dtype == bool
    assert len(s.refs) == len(s.defect_types) == s.labels.shape[0] == s.scores.shape[0] == n
    assert not s.gts[s.labels == 0].any() and s.gts[s.labels == 1].any()
    assert sorted(s.scores[s.labels == 0].tolist()) == sorted(res[CLASS]["scores"]["good"])
    preds = predict_samples(det, [r.load() for r in s.refs[:3]], batch_size=1)
    np.testing.assert_allclose(np.stack([p.map for p in preds]), s.maps[:3], atol=1e-6)
    assert "samples" not in json.loads((tmp_path / "metrics.json").read_text())[CLASS]
    assert "samples" not in evaluate(det, trained["data"], native=False)[CLASS]
