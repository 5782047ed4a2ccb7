"""On the Eyecandies CandyCane development copy (``THREEDSR_CANDYCANE``; skipped without it):
the Eyecandies default drops the conveyor's rails and back wall from the foreground, and the
memory preset's map reaches the figure measured on the copy's public test half.

Standard error: the half holds 13 good and 12 defective scans, and the standard error of an
AUROC of 0.75 on 13 x 12 scans is 0.10 (Hanley-McNeil); the image figure is asserted with
that margin. The pixel figures rest on some 1.6 M pixels and move far less.
"""

from __future__ import annotations

import admetrics
import numpy as np
import pcprep
import pytest
import torch
from threedsr import DetectorConfig
from threedsr.data import foreground_of, load_split, stack_inputs
from threedsr.memory import fit_memory
from threedsr.smoothing import smooth_maps

CATEGORY = "CandyCane"
#: measured on this copy (issue 23, session 16), memory alone: 0.712 (depth, colour and all
#: channels searched apart, a cell scored by the most abnormal one; depth and colour alone:
#: 0.731, summed: 0.750; one search: 0.628); standard error at 0.71 on 13 x 12 scans: 0.10
IMAGE_AUROC, STANDARD_ERROR = 0.712, 0.10


@pytest.fixture(scope="module")
def config(candycane) -> DetectorConfig:
    return DetectorConfig.for_memory("rgbd", data_root=str(candycane), category=CATEGORY)


@pytest.fixture(scope="module")
def splits(candycane, config):
    kw = config.preprocess_kwargs()
    return {s: load_split(str(candycane), CATEGORY, s, kw) for s in ("train", "test")}


def test_the_copy_reads_as_eyecandies(candycane) -> None:
    assert pcprep.detect_layout(candycane) == "eyecandies"
    counts = {
        s: len(list(pcprep.index_dataset(candycane, CATEGORY, s)))
        for s in ("train", "validation", "test")
    }
    assert counts["train"] >= 100 and counts["validation"] >= 50 and counts["test"] >= 25


def test_eyecandies_default_keeps_the_candy_alone(config, splits) -> None:
    assert config.preprocess_kwargs()["drop_border_objects"] is True
    for p in splits["test"][:5]:
        fg = foreground_of(p)
        assert fg.any() and not (fg[0].any() or fg[-1].any() or fg[:, 0].any() or fg[:, -1].any())
        # the cane alone is some 7 % of the image; with the rails and wall it was 18 %
        assert fg.mean() < 0.1, (p.path, fg.mean())


def test_the_memory_preset_map_meets_the_measured_figure(config, splits) -> None:
    torch.manual_seed(0)
    train = stack_inputs([p for p in splits["train"] if p.label == 0], "rgbd")
    memory = fit_memory(train, "rgbd", config.memory, seed=0)
    test = splits["test"]
    with torch.no_grad():
        maps = torch.cat(
            [memory(stack_inputs(test[i : i + 4], "rgbd")) for i in range(0, len(test), 4)]
        )
    smoothed = smooth_maps(maps, "box", config.smoothing_size, 4.0)
    labels = np.array([p.label for p in test])
    auroc = admetrics.image_auroc(labels, smoothed.flatten(1).amax(1).numpy())
    assert auroc > IMAGE_AUROC - STANDARD_ERROR, auroc
    masks = np.stack([p.gt if p.gt is not None else np.zeros(p.depth.shape) for p in test]) > 0.5
    pixel = admetrics.pixel_auroc(masks, smoothed.numpy())
    assert pixel > 0.96, pixel  # 0.980 measured; 0.940 with the rails in the foreground
