"""Streaming == one-shot; binned mode within its stated bound."""

from __future__ import annotations

import admetrics as am
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage


def _data(seed: int, n: int = 9, h: int = 24, w: int = 20, decimals: int | None = 2):
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.standard_normal((n, h, w)), sigma=(0, 2, 2))
    masks = field > 0.35
    masks[::3] = False  # normal images
    maps = ndimage.uniform_filter(0.4 * masks + rng.random(masks.shape), size=(1, 3, 3))
    if decimals is not None:
        maps = np.round(maps, decimals)
    return masks, (maps / maps.max()).astype(np.float32)


def _one_shot(masks, maps, labels=None, scores=None, fpr_limit=0.3, num_thresholds=None):
    labels = masks.reshape(len(masks), -1).any(1) if labels is None else labels
    scores = maps.reshape(len(maps), -1).max(1) if scores is None else scores
    return {
        "image_auroc": am.image_auroc(labels, scores),
        "image_ap": am.average_precision(labels, scores),
        "pixel_auroc": am.pixel_auroc(masks, maps),
        "pixel_ap": am.pixel_average_precision(masks, maps),
        "aupro": am.aupro(masks, maps, fpr_limit=fpr_limit, num_thresholds=num_thresholds),
    }


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**16), st.lists(st.integers(1, 4), min_size=1, max_size=5))
def test_streaming_equals_one_shot(seed: int, batch_sizes: list[int]) -> None:
    masks, maps = _data(seed)
    metrics = am.AnomalyMetrics()
    start = 0
    for size in [*batch_sizes, len(masks)]:
        stop = min(start + size, len(masks))
        if stop > start:
            metrics.update(masks[start:stop], maps[start:stop])
        start = stop
    got = metrics.compute()
    expected = _one_shot(masks, maps)
    assert got.keys() == expected.keys()
    for key in expected:
        assert got[key] == pytest.approx(expected[key], abs=1e-12), key
    assert metrics.compute() == got  # compute is repeatable (state consolidated, not consumed)


def test_streaming_with_explicit_labels_scores_and_quantile_mode() -> None:
    masks, maps = _data(1)
    labels = np.arange(len(masks)) % 2
    scores = maps.mean(axis=(1, 2))
    metrics = am.AnomalyMetrics(num_thresholds=100, fpr_limit=0.2)
    metrics.update(masks[:4], maps[:4], labels[:4], scores[:4])
    metrics.update(list(masks[4:]), list(maps[4:]), labels=labels[4:], scores=scores[4:])
    got = metrics.compute()
    expected = _one_shot(masks, maps, labels, scores, fpr_limit=0.2, num_thresholds=100)
    for key in expected:
        assert got[key] == pytest.approx(expected[key], abs=1e-12), key


def test_reset_and_update_after_compute() -> None:
    masks, maps = _data(2)
    metrics = am.AnomalyMetrics()
    metrics.update(masks[:5], maps[:5])
    metrics.compute()
    metrics.update(masks[5:], maps[5:])
    assert metrics.compute()["aupro"] == pytest.approx(am.aupro(masks, maps), abs=1e-12)
    metrics.reset()
    with pytest.raises(am.AdmetricsError, match="before any update"):
        metrics.compute()


def test_exact_state_memory_per_pixel() -> None:
    masks, maps = _data(3)
    metrics = am.AnomalyMetrics()
    metrics.update(masks, maps)
    n_anomalous = int(masks.sum())
    pixel_bytes = 4 * masks.size + 4 * n_anomalous  # float32 score + uint32 area per anomalous px
    image_bytes = len(masks) * (1 + 8)
    assert metrics.nbytes == pixel_bytes + image_bytes


@pytest.mark.parametrize(("seed", "bins"), [(0, 16), (1, 64), (2, 1000), (3, 7)])
def test_binned_within_stated_bound(seed: int, bins: int) -> None:
    masks, maps = _data(seed, n=12, decimals=None)
    exact = am.AnomalyMetrics()
    binned = am.AnomalyMetrics(bins=bins, score_range=(0.0, 1.0))
    for i in range(0, len(masks), 5):
        exact.update(masks[i : i + 5], maps[i : i + 5])
        binned.update(masks[i : i + 5], maps[i : i + 5])
    e, b = exact.compute(), binned.compute()
    assert abs(b["pixel_auroc"] - e["pixel_auroc"]) <= b["pixel_auroc_bound"] + 1e-12
    assert abs(b["aupro"] - e["aupro"]) <= b["aupro_bound"] + 1e-12
    # a-priori bound: eps = largest fraction of normal pixels in one bin
    counts = np.histogram(maps[~masks], bins=bins, range=(0.0, 1.0))[0]
    eps = counts.max() / counts.sum()
    assert b["pixel_auroc_bound"] <= eps / 2 + 1e-12
    assert b["aupro_bound"] <= eps / 0.3 + 1e-12
    assert binned.nbytes == 24 * bins + 9 * len(masks)
    assert b["image_auroc"] == e["image_auroc"]


def test_binned_is_exact_with_one_distinct_score_per_bin() -> None:
    masks, maps = _data(4, decimals=None)
    quantised = (np.minimum(np.floor(maps * 20), 19) + 0.5) / 20  # bin centres
    exact = am.AnomalyMetrics()
    binned = am.AnomalyMetrics(bins=20, score_range=(0.0, 1.0))
    exact.update(masks, quantised)
    binned.update(masks, quantised)
    e, b = exact.compute(), binned.compute()
    for key in ("pixel_auroc", "pixel_ap", "aupro"):
        assert b[key] == pytest.approx(e[key], abs=1e-12), key


def test_binned_rejects_out_of_range_scores_without_changing_state() -> None:
    masks, maps = _data(5)
    binned = am.AnomalyMetrics(bins=10, score_range=(0.0, 0.5))
    with pytest.raises(am.AdmetricsError, match="outside score_range"):
        binned.update(masks, maps)
    assert binned.nbytes == 240


def test_constructor_errors() -> None:
    with pytest.raises(am.AdmetricsError, match="score_range"):
        am.AnomalyMetrics(bins=10)
    with pytest.raises(am.AdmetricsError, match="binned mode"):
        am.AnomalyMetrics(score_range=(0, 1))
    with pytest.raises(am.AdmetricsError, match="exact mode"):
        am.AnomalyMetrics(bins=10, score_range=(0, 1), num_thresholds=100)
    with pytest.raises(am.AdmetricsError, match="bins"):
        am.AnomalyMetrics(bins=0, score_range=(0, 1))
    with pytest.raises(am.AdmetricsError, match="score_range"):
        am.AnomalyMetrics(bins=4, score_range=(1, 1))
    with pytest.raises(am.AdmetricsError, match="fpr_limit"):
        am.AnomalyMetrics(fpr_limit=0)
    for bad in ((1.0,), ("lo", "hi"), 1.0, (0, 1, 2)):
        with pytest.raises(am.AdmetricsError, match=r"^score_range must be two numbers"):
            am.AnomalyMetrics(bins=4, score_range=bad)


@pytest.mark.parametrize("bins", [None, 32])
def test_compute_returns_plain_floats_in_both_modes(bins: int | None) -> None:
    # Binned AUPRO and its bound were numpy scalars, printed as np.float64(...) beside floats.
    masks, maps = _data(6, n=6, decimals=None)
    kw = {} if bins is None else {"bins": bins, "score_range": (0.0, 1.0)}
    metrics = am.AnomalyMetrics(**kw)
    metrics.update(masks, maps)
    out = metrics.compute()
    assert {k: type(v) for k, v in out.items()} == {k: float for k in out}
