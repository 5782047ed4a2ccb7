"""End to end on a synthetic ``depthsim.scenes`` class: each method's detector made from the
dataset folder, then evaluated and used for prediction.

The artefacts are shared by session-scoped fixtures: the descriptor memory (``memory``, nothing
trained) and a short 3DSR network run (``3dsr``).
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
SIZE = 128
# 0 = the pretrained backbone that ships with vqcore (what `threedsr-cli train` uses by default).
STAGE1_ITERS = int(os.environ.get("THREEDSR_IT_STAGE1", "0"))
STAGE2_ITERS = int(os.environ.get("THREEDSR_IT_STAGE2", "24"))
# The memory preset (rgbd descriptors, local scale; 128 px here for CI time, one thread) on this
# seeded class, measured: image AUROC 0.984 (bump 1.0, dent 1.0, crack 1.0, stain 0.938), pixel
# AUROC 0.984, AUPRO 0.942. The memory is fitted, not trained (seeded subset, deterministic), so
# the floors (about 0.1 below) hold every time; dent and bump are depth-only (their RGB is that of
# a good scan), the case issue 12 was about.
IMAGE_AUROC_MIN = 0.88
PIXEL_AUROC_MIN = 0.88
AUPRO_MIN = 0.84
DEPTH_ONLY_MIN = 0.9
# The cpu preset's 3DSR network at CI budget (24 steps, about half a minute on one thread) is
# near chance on this class (30 steps measured: image AUROC 0.59, pixel AUROC 0.39): what it must
# show here is that it learns (measured: total loss 0.65 at step 4 -> 0.33 at step 24, ratio 0.5).
LOSS_RATIO_MAX = 0.8


def _threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("THREEDSR_TEST_THREADS", "1")))
    return threads


@pytest.fixture(scope="session")
def dataset(tmp_path_factory):
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
    # One preprocessing of the class serves both methods' runs.
    return {"root": root, "data": data, "cache": str(root / "cache")}


@pytest.fixture(scope="session")
def memory_run(dataset):
    threads = _threads()
    try:
        cfg = DetectorConfig.preset(
            "memory",
            "rgbd",
            data_root=str(dataset["data"]),
            category=CLASS,
            out_dir=str(dataset["root"] / "memory"),
            image_size=SIZE,
            cache_dir=dataset["cache"],
        )
        events = []
        result = train_detector(cfg, events.append)
        yield {**dataset, "run": dataset["root"] / "memory", "result": result, "events": events}
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def network_run(dataset):
    threads = _threads()
    root = dataset["root"]
    try:
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
            data_root=str(dataset["data"]),
            category=CLASS,
            backbone=backbone,
            out_dir=str(root / "network"),
            iterations=STAGE2_ITERS,
            image_size=SIZE,
            log_every=4,
            cache_dir=dataset["cache"],
        )
        events = []
        result = train_detector(cfg, events.append)
        yield {**dataset, "run": root / "network", "result": result, "events": events}
    finally:
        torch.set_num_threads(threads)


def test_the_memory_method_fits_without_training(memory_run) -> None:
    res = memory_run["result"]
    assert res.path.is_file() and res.step == 0 and res.history == []
    assert {e.stage for e in memory_run["events"]} == {"memory"}
    det = Detector.load(memory_run["run"], device="cpu")
    assert det.method == "memory" and det.network is None and det.size == SIZE
    # The dataset has a validation split: the display scale and threshold come from it.
    assert det.display is not None and det.display.source == "validation"
    assert det.display.low < det.display.threshold < det.display.high


def test_the_memory_separates_good_from_defective(memory_run) -> None:
    det = Detector.load(memory_run["run"], device="cpu")
    metrics = evaluate(
        det, memory_run["data"], out=memory_run["run"], cache_dir=memory_run["cache"]
    )
    m = metrics[CLASS]
    saved = json.loads((memory_run["run"] / "metrics.json").read_text())
    assert set(saved[CLASS]) >= {"image_auroc", "pixel_auroc", "aupro", "per_defect_type"}
    assert (memory_run["run"] / "metrics.md").read_text().startswith("Method: **memory**")
    assert m["method"] == "memory" and m["reference_name"] == "BTF" and m["reference"] == {}
    assert set(m["per_defect_type"]) == set(depthsim.scenes.DEFECT_MODALITY)
    assert m["n_good"] == 8 and m["n_defective"] == 32
    assert m["native"]["pixel_auroc"] is not None
    print(json.dumps({k: m[k] for k in ("image_auroc", "pixel_auroc", "aupro", "per_defect_type")}))
    assert m["image_auroc"] >= IMAGE_AUROC_MIN
    assert m["pixel_auroc"] >= PIXEL_AUROC_MIN
    assert m["aupro"] >= AUPRO_MIN
    for t, mod in depthsim.scenes.DEFECT_MODALITY.items():
        if mod == "depth":  # dent and bump: invisible in RGB
            assert m["per_defect_type"][t] >= DEPTH_ONLY_MIN, t


def test_predict_samples_and_threshold_from_validation(memory_run) -> None:
    det = Detector.load(memory_run["run"], device="cpu")
    val = [r.load() for r in pcprep.index_dataset(memory_run["data"], CLASS, "validation")]
    thr = choose_threshold(det, val)
    # The calibrated threshold is the same rule on the same scans (up to the bank's fp16 storage:
    # the scale was calibrated on the fp32 bank before it was written).
    assert det.display is not None and thr == pytest.approx(det.display.threshold, abs=1e-4)
    test_refs = pcprep.index_dataset(memory_run["data"], CLASS, "test")[:6]
    preds = predict_samples(det, [r.load() for r in test_refs], batch_size=4)
    assert len(preds) == 6
    for p, r in zip(preds, test_refs, strict=True):
        assert p.native_map.shape == (128, 128) and p.map.shape == (SIZE, SIZE)
        assert p.defect_type == r.defect_type and np.isfinite(p.score)


def test_evaluate_keeps_the_per_sample_maps_it_computed(memory_run, tmp_path) -> None:
    det = Detector.load(memory_run["run"], device="cpu")
    res = evaluate(
        det,
        memory_run["data"],
        native=False,
        chunk=16,
        keep_samples=True,
        out=tmp_path,
        cache_dir=memory_run["cache"],
    )
    s = res[CLASS]["samples"]
    n = res[CLASS]["n_good"] + res[CLASS]["n_defective"]
    assert s.maps.shape == (n, SIZE, SIZE) and s.gts.shape == s.maps.shape and s.gts.dtype == bool
    assert len(s.refs) == len(s.defect_types) == s.labels.shape[0] == s.scores.shape[0] == n
    assert not s.gts[s.labels == 0].any() and s.gts[s.labels == 1].any()
    assert sorted(s.scores[s.labels == 0].tolist()) == sorted(res[CLASS]["scores"]["good"])
    preds = predict_samples(det, [r.load() for r in s.refs[:3]], batch_size=1)
    np.testing.assert_allclose(np.stack([p.map for p in preds]), s.maps[:3], atol=1e-6)
    assert "samples" not in json.loads((tmp_path / "metrics.json").read_text())[CLASS]
    # The operating point of the detector's own threshold: the scans predict calls anomalous.
    at = res[CLASS]["at_threshold"]
    above = s.scores > det.display.threshold
    assert at["threshold"] == det.display.threshold and at["source"] == det.display.source
    assert at["good_flagged"] == int(above[s.labels == 0].sum())
    assert at["defective_flagged"] == int(above[s.labels == 1].sum())
    assert (at["n_good"], at["n_defective"]) == (res[CLASS]["n_good"], res[CLASS]["n_defective"])
    assert (
        f"flags {at['defective_flagged']} of {at['n_defective']} defective"
        in (tmp_path / "metrics.md").read_text()
    )


def test_the_network_learns_and_writes_a_finished_detector(network_run) -> None:
    res = network_run["result"]
    assert res.path.is_file() and res.step == STAGE2_ITERS
    ev = [e for e in network_run["events"] if e.stage == "detector"]
    assert ev[-1].step == STAGE2_ITERS and np.isfinite(ev[-1].metrics["total"])
    print([round(e.metrics["total"], 3) for e in ev])
    assert ev[-1].metrics["total"] < LOSS_RATIO_MAX * ev[0].metrics["total"]
    det = Detector.load(network_run["run"], device="cpu")
    assert det.method == "3dsr" and det.memory is None and det.training_state["finished"]
    assert det.display is not None and det.display.source == "validation"


def test_the_network_detector_is_evaluated_as_3dsr(network_run, tmp_path) -> None:
    det = Detector.load(network_run["run"], device="cpu")
    m = evaluate(
        det, network_run["data"], native=False, out=tmp_path, cache_dir=network_run["cache"]
    )[CLASS]
    assert m["method"] == "3dsr" and m["reference_name"] == "3DSR paper" and "samples" not in m
    assert m["reference"] == {}  # the paper has no synthetic puck
    assert m["image_auroc"] is not None and m["n_defective"] == 32
    md = (tmp_path / "metrics.md").read_text()
    assert md.startswith("Method: **3dsr**") and "anchor: 3DSR paper" in md
