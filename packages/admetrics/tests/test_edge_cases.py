"""Bad input and undefined metrics: a clear AdmetricsError or a documented value."""

from __future__ import annotations

import admetrics as am
import numpy as np
import pytest
from admetrics import AdmetricsError


def _gt() -> np.ndarray:
    gt = np.zeros((2, 6, 6), dtype=bool)
    gt[1, 1:3, 1:4] = True
    return gt


def test_error_is_a_value_error() -> None:
    assert issubclass(AdmetricsError, ValueError)


@pytest.mark.parametrize("fn", [am.image_auroc, am.roc_curve])
def test_image_metrics_need_both_classes(fn) -> None:
    with pytest.raises(AdmetricsError, match="anomalous"):
        fn([0, 0, 0], [0.1, 0.2, 0.3])
    with pytest.raises(AdmetricsError, match="normal"):
        fn([1, 1], [0.1, 0.2])


def test_average_precision_without_positives_errors_and_without_negatives_is_one() -> None:
    with pytest.raises(AdmetricsError, match="no anomalous sample"):
        am.average_precision([0, 0], [0.1, 0.2])
    assert am.average_precision([1, 1], [0.1, 0.2]) == 1.0


def test_constant_scores_documented_values() -> None:
    gt = _gt()
    maps = np.full(gt.shape, 0.7)
    assert am.image_auroc([0, 1, 1, 0], [3.0] * 4) == 0.5
    assert am.pixel_auroc(gt, maps) == 0.5
    assert am.aupro(gt, maps) == pytest.approx(0.15, abs=1e-15)
    assert am.aupro(gt, maps, fpr_limit=1.0) == pytest.approx(0.5, abs=1e-15)
    assert am.pixel_average_precision(gt, maps) == pytest.approx(gt.mean(), abs=1e-15)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_scores_rejected(bad: float) -> None:
    gt = _gt()
    maps = np.zeros(gt.shape, np.float32)
    maps[0, 0, 0] = bad
    for fn in (am.pixel_auroc, am.aupro, am.pro_curve, am.pixel_average_precision):
        with pytest.raises(AdmetricsError, match=r"NaN|infinite"):
            fn(gt, maps)
    with pytest.raises(AdmetricsError, match=r"NaN|infinite"):
        am.image_auroc([0, 1], [0.0, bad])
    with pytest.raises(AdmetricsError, match=r"NaN|infinite"):
        am.AnomalyMetrics().update(gt, maps)


def test_no_anomalous_or_no_normal_pixel() -> None:
    gt = np.zeros((2, 5, 5), bool)
    maps = np.random.default_rng(0).random(gt.shape)
    for fn in (am.pixel_auroc, am.aupro, am.pixel_average_precision, am.pro_curve):
        with pytest.raises(AdmetricsError, match="no anomalous pixel"):
            fn(gt, maps)
    for fn in (am.pixel_auroc, am.aupro, am.pro_curve):
        with pytest.raises(AdmetricsError, match="no normal pixel"):
            fn(~gt, maps)
    metrics = am.AnomalyMetrics()
    metrics.update(gt, maps)
    with pytest.raises(AdmetricsError, match="no anomalous"):
        metrics.compute()


def test_shape_mismatches_name_the_shapes() -> None:
    gt = _gt()
    with pytest.raises(AdmetricsError, match=r"\(2, 6, 6\).*\(2, 6, 5\)"):
        am.pixel_auroc(gt, np.zeros((2, 6, 5)))
    with pytest.raises(AdmetricsError, match="image 1"):
        am.aupro([gt[0], gt[1]], [np.zeros((6, 6)), np.zeros((6, 7))])
    with pytest.raises(AdmetricsError, match="2 masks but 1 maps"):
        am.aupro([gt[0], gt[1]], [np.zeros((6, 6))])
    with pytest.raises(AdmetricsError, match="expected"):
        am.aupro(np.zeros((2, 3, 6, 6)), np.zeros((2, 3, 6, 6)))
    with pytest.raises(AdmetricsError, match="shape"):
        am.image_auroc([0, 1, 1], [0.1, 0.2])
    with pytest.raises(AdmetricsError, match=r"expected shape \(N,\)"):
        am.image_auroc([[0, 1]], [[0.1, 0.2]])
    metrics = am.AnomalyMetrics()
    with pytest.raises(AdmetricsError, match="3 entries for 2 images"):
        metrics.update(gt, np.zeros(gt.shape), labels=[0, 1, 1])
    with pytest.raises(AdmetricsError, match="1 entries for 2 images"):
        metrics.update(gt, np.zeros(gt.shape), scores=[0.3])
    assert metrics.nbytes == 0  # rejected batches leave no trace


def test_empty_input() -> None:
    with pytest.raises(AdmetricsError, match="empty"):
        am.image_auroc([], [])
    with pytest.raises(AdmetricsError, match="empty"):
        am.pixel_auroc(np.zeros((0, 4, 4)), np.zeros((0, 4, 4)))
    with pytest.raises(AdmetricsError, match="empty"):
        am.aupro([], [])
    with pytest.raises(AdmetricsError, match="empty"):
        am.aupro([np.zeros((0, 3))], [np.zeros((0, 3))])


def test_bad_labels_and_dtypes() -> None:
    with pytest.raises(AdmetricsError, match="0 or 1"):
        am.image_auroc([0, 2], [0.1, 0.2])
    with pytest.raises(AdmetricsError, match="0 or 1"):
        am.image_auroc([0.0, 0.5], [0.1, 0.2])
    with pytest.raises(AdmetricsError, match="dtype"):
        am.image_auroc(["a", "b"], [0.1, 0.2])
    with pytest.raises(AdmetricsError, match="dtype"):
        am.pixel_auroc(_gt(), np.zeros((2, 6, 6), complex))
    with pytest.raises(AdmetricsError, match=r"ragged|convert"):
        am.image_auroc([0, 1], [[0.1], [0.2, 0.3]])


@pytest.mark.parametrize("limit", [0.0, -0.1, 1.5, float("nan"), "x", None])
def test_bad_fpr_limit(limit: float) -> None:
    with pytest.raises(AdmetricsError, match="fpr_limit"):
        am.aupro(_gt(), np.zeros((2, 6, 6)), fpr_limit=limit)


@pytest.mark.parametrize("num", [0, 1, 2.5, True, "x", "5", [5]])
def test_bad_num_thresholds(num) -> None:
    with pytest.raises(AdmetricsError, match="num_thresholds"):
        am.aupro(_gt(), np.zeros((2, 6, 6)), num_thresholds=num)


def test_accepted_layouts_agree() -> None:
    rng = np.random.default_rng(0)
    gt = _gt()
    maps = rng.random(gt.shape).astype(np.float32)
    ref = am.aupro(gt, maps)
    assert am.aupro(gt[:, None], maps[:, None]) == ref  # (N, 1, H, W)
    assert am.aupro(list(gt), list(maps)) == ref
    assert am.aupro([g[None] for g in gt], list(maps)) == ref  # (1, H, W) items
    assert am.aupro(gt.astype(np.uint8) * 255, maps) == ref  # any mask > 0
    assert am.aupro(gt.astype(np.float32) * 0.2, maps.astype(np.float16)) == am.aupro(
        gt, maps.astype(np.float16).astype(np.float32)
    )
    assert am.pixel_auroc(gt[1], maps[1]) == am.pixel_auroc(gt[1:], maps[1:])  # single (H, W)


def test_regions_do_not_connect_across_images_or_diagonal_splits() -> None:
    gt = np.zeros((2, 4, 4), bool)
    gt[0, 3, 3] = True
    gt[1, 0, 0] = True  # would touch gt[0, 3, 3] only if images were stacked spatially
    gt[0, 2, 2] = True  # diagonal neighbour of (3, 3): same 8-connected region
    maps = np.zeros(gt.shape)
    maps[0, 3, 3] = 1.0
    # two regions: {(0,2,2), (0,3,3)} half detected, {(1,0,0)} not detected at the top threshold
    _fpr, pro = am.pro_curve(gt, maps)
    assert pro[1] == pytest.approx(0.25)


def test_inputs_are_not_modified() -> None:
    rng = np.random.default_rng(1)
    gt = _gt()
    maps = rng.random(gt.shape).astype(np.float32)
    gt_copy, maps_copy = gt.copy(), maps.copy()
    am.aupro(gt, maps)
    metrics = am.AnomalyMetrics()
    metrics.update(gt, maps)
    metrics.compute()
    np.testing.assert_array_equal(gt, gt_copy)
    np.testing.assert_array_equal(maps, maps_copy)


def test_torch_tensors_accepted() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    gt = _gt()
    maps = rng.random(gt.shape).astype(np.float32)
    t_maps = torch.from_numpy(maps).requires_grad_(True)
    t_gt = torch.from_numpy(gt)[:, None]
    assert am.aupro(t_gt, t_maps[:, None]) == am.aupro(gt, maps)
    assert am.image_auroc(torch.tensor([0, 1]), torch.tensor([0.2, 0.9])) == 1.0
