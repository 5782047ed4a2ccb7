"""On the real MVTec 3D-AD cable_gland development copy (``THREEDSR_CABLE_GLAND``; skipped
without it): the data reads, the shipped backbone reconstructs real depth, and the training-free
feature memory already separates good from defective scans, and the memory preset's map meets
issue 12's targets on it."""

from __future__ import annotations

import admetrics
import numpy as np
import pcprep
import pytest
import torch
import vqcore
from threedsr import DetectorConfig, MemoryConfig
from threedsr.data import foreground_of, load_split, stack_inputs
from threedsr.memory import fit_memory
from threedsr.memory.descriptors import LEGACY_GROUPS
from threedsr.smoothing import smooth_maps

PARAMS = dict(size=128, plane="robust", fg_threshold=0.005, fill_iterations=2)


@pytest.fixture(scope="module")
def splits(cable_gland):
    return {s: load_split(str(cable_gland), "cable_gland", s, PARAMS) for s in ("train", "test")}


@pytest.fixture(scope="module")
def splits256(cable_gland):
    params = {**PARAMS, "size": 256}
    return {s: load_split(str(cable_gland), "cable_gland", s, params) for s in ("train", "test")}


def test_the_copy_reads_as_mvtec(cable_gland) -> None:
    counts = {
        s: len(list(pcprep.index_dataset(cable_gland, "cable_gland", s)))
        for s in ("train", "validation", "test")
    }
    assert counts["train"] >= 200 and counts["validation"] >= 20 and counts["test"] >= 50


def test_shipped_backbone_reconstructs_real_depth(splits) -> None:
    model = vqcore.load_pretrained("depth")
    good = [p for p in splits["test"] if p.label == 0]
    x = stack_inputs(good, "depth")
    fg = torch.from_numpy(np.stack([foreground_of(p) for p in good]) > 0)
    with torch.no_grad():
        recon = model(x)[0]
    mae = float((recon - x).abs()[:, 0][fg].mean())
    assert mae < 0.05, mae  # the object spans [0.1, 0.9]


def _memory_auroc(splits, config: MemoryConfig) -> float:
    torch.manual_seed(0)
    bb = vqcore.load_pretrained("rgbd") if config.features == "encoder" else None
    train = stack_inputs(splits["train"], "rgbd")
    memory = fit_memory(train, "rgbd", config, backbone=bb)
    test = splits["test"]
    with torch.no_grad():
        maps = torch.cat(
            [memory(stack_inputs(test[i : i + 8], "rgbd")) for i in range(0, len(test), 8)]
        )
    scores = smooth_maps(maps, "box", 11, 4.0).flatten(1).amax(1).numpy()
    labels = np.array([p.label for p in test])
    return admetrics.image_auroc(labels, scores)


def test_encoder_memory_separates_good_from_defective(splits) -> None:
    auroc = _memory_auroc(splits, MemoryConfig(features="encoder", size=40_000, local_k=0))
    assert auroc > 0.6, auroc


def test_descriptor_memory_at_256_px_does_better(splits256) -> None:
    # The session-6 descriptors (surface and colour, 256 px): their detector measured 0.694 here.
    legacy = MemoryConfig(scales=(1.0, 2.0, 4.0), groups=LEGACY_GROUPS, weights=None, local_k=0)
    auroc = _memory_auroc(splits256, legacy)
    assert auroc > 0.68, auroc


def test_the_memory_preset_map_meets_the_image_target(splits256) -> None:
    # Descriptor groups, weights, the local scale (k = 3) and depth, colour and all channels
    # searched apart, a cell scored by the most abnormal of the three: 0.913 end to end on this
    # copy (session 16; depth and colour alone: 0.903 memory alone, 0.891 end to end; one
    # search: 0.888 memory alone); issue 12's target is 0.80. Standard error on 11 good x 44
    # defective scans near 0.90: about 0.04.
    cfg = DetectorConfig.for_memory("rgbd")
    assert cfg.image_size == 256 and cfg.memory.modalities == "separate+joint"
    assert cfg.memory.modality_fusion == "max"
    auroc = _memory_auroc(splits256, cfg.memory)
    assert auroc > 0.86, auroc
