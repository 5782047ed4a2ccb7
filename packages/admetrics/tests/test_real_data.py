"""Real MVTec 3D-AD ground truth (skipped when the samples are absent): region labelling and
the metrics at native resolution, on lists of differently sized masks."""

from __future__ import annotations

from pathlib import Path

import admetrics as am
import numpy as np
import pytest
from admetrics._scan import scan_regions
from scipy import ndimage
from sklearn.metrics import roc_auc_score

_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # noqa: NPY201 (numpy < 2: trapz only)

pytestmark = pytest.mark.real


def _gt_masks(root: Path) -> list[np.ndarray]:
    image = pytest.importorskip("PIL.Image")
    paths = sorted((root / "mvtec3d_ad").glob("*/test/*/gt/*.png"))
    if not paths:
        pytest.skip("no MVTec 3D-AD gt masks in the real samples")
    return [np.asarray(image.open(p)) for p in paths]


def test_regions_match_ndimage_on_real_masks(real_data: Path) -> None:
    for gt in _gt_masks(real_data):
        mask = gt > 0  # class ids 252..255 mark defects
        _, expected = ndimage.label(mask, structure=np.ones((3, 3), int))
        _, region, n_regions = scan_regions(
            mask[None], gt[None].astype(np.float32), int(mask.sum())
        )
        assert n_regions == expected
        assert region.size == mask.sum()


def test_metrics_on_real_masks_at_native_resolution(real_data: Path) -> None:
    rng = np.random.default_rng(0)
    masks = [g[::4, ::4] > 0 for g in _gt_masks(real_data)]  # keep the slow references quick
    maps = [
        np.round(ndimage.uniform_filter(0.5 * m + rng.random(m.shape), size=5), 2).astype(
            np.float32
        )
        for m in masks
    ]
    y = np.concatenate([m.ravel() for m in masks])
    s = np.concatenate([p.ravel() for p in maps])
    assert am.pixel_auroc(masks, maps) == pytest.approx(roc_auc_score(y, s), abs=1e-9)
    # exact AUPRO against the threshold-by-threshold definition
    regions = []
    for i, m in enumerate(masks):
        labelled, n = ndimage.label(m, structure=np.ones((3, 3), int))
        regions += [(i, labelled == k) for k in range(1, n + 1)]
    n_normal = sum(int((~m).sum()) for m in masks)
    points = [(0.0, 0.0)]
    for t in np.unique(s)[::-1]:
        fpr = sum(int(((p >= t) & ~m).sum()) for p, m in zip(maps, masks, strict=True)) / n_normal
        pro = np.mean([((maps[i] >= t) & r).sum() / r.sum() for i, r in regions])
        points.append((fpr, pro))
    x, yv = np.array(points).T
    expected = (
        _trapezoid(np.append(yv[x <= 0.3], np.interp(0.3, x, yv)), np.append(x[x <= 0.3], 0.3))
        / 0.3
    )
    assert am.aupro(masks, maps) == pytest.approx(expected, abs=1e-9)
