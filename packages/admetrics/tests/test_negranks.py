"""Chunked normal-score ranks and the floor-pruned AUPRO path against plain references."""

from __future__ import annotations

import admetrics as am
import numpy as np
import pytest
from admetrics import _curves as C
from admetrics import _exact as E
from admetrics import _negranks as N
from admetrics._scan import count_positive, gather_positive
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage
from sklearn.metrics import roc_auc_score

SETTINGS = settings(max_examples=40, deadline=None)


def _reference(neg: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.sort(neg.astype(np.float64))
    u64 = u.astype(np.float64)
    return np.searchsorted(s, u64, side="left"), np.searchsorted(s, u64, side="right")


@st.composite
def scored_pixels(draw: st.DrawFn):
    """Flat scores (float32/float64, optionally quantised to a few levels: heavy ties), a mask
    of some numeric dtype with at least one anomalous pixel, chunk size and worker count."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = draw(st.integers(1, 400))
    values = rng.standard_normal(n)
    levels = draw(st.sampled_from([0, 1, 2, 5, 50]))  # 0: continuous, 1: constant map
    if levels == 1:
        values[:] = 0.25
    elif levels:
        values = np.round(values * levels) / levels
    values = values.astype(draw(st.sampled_from([np.float32, np.float64])))
    anomalous = rng.random(n) < draw(st.floats(0.0, 1.0))
    anomalous[rng.integers(n)] = True
    mask_dtype = draw(st.sampled_from([np.bool_, np.uint8, np.int16, np.float32]))
    # non-bool masks also hold values <= 0 that must count as normal
    unsigned = mask_dtype in (np.bool_, np.uint8)
    normal_values = np.zeros(n) if unsigned else -rng.integers(0, 2, n)
    mask = np.where(anomalous, 2, normal_values).astype(mask_dtype)
    chunk = draw(st.integers(1, 64))
    workers = draw(st.integers(1, 3))
    return values, mask, anomalous, chunk, workers


@SETTINGS
@given(scored_pixels(), st.booleans())
def test_neg_ranks_chunked_matches_sorted_reference(data, use_floor: bool) -> None:
    values, mask, anomalous, chunk, workers = data
    u = np.unique(values[anomalous])
    neg = values[~anomalous]
    floor = float(values[len(values) // 2]) if use_floor else -np.inf
    top = u[np.searchsorted(u, floor, side="left") :]
    less, less_eq, n_neg, below = N.neg_ranks_chunked(
        [(mask, values)], top, floor=floor, chunk=chunk, workers=workers
    )
    ref_less, ref_less_eq = _reference(neg, top)
    np.testing.assert_array_equal(less, ref_less)
    np.testing.assert_array_equal(less_eq, ref_less_eq)
    assert n_neg == neg.size
    assert below == int(np.sum(neg < floor))


@SETTINGS
@given(scored_pixels())
def test_mixed_sources_are_one_multiset(data) -> None:
    """Plain arrays and (mask, scores) pairs, of different dtypes, packed into shared chunks."""
    values, mask, anomalous, chunk, workers = data
    u = np.unique(values[anomalous])
    plain = values[~anomalous][::2].astype(np.float64)
    third = len(values) // 3
    sources = [plain, (mask[third:], values[third:]), np.zeros(0, np.float32)]
    neg = np.concatenate([plain, values[third:][~anomalous[third:]]])
    less, less_eq, n_neg, _ = N.neg_ranks_chunked(sources, u, chunk=chunk, workers=workers)
    ref_less, ref_less_eq = _reference(neg, u)
    np.testing.assert_array_equal(less, ref_less)
    np.testing.assert_array_equal(less_eq, ref_less_eq)
    assert n_neg == neg.size


@pytest.mark.parametrize("seed", range(3))
def test_kernels_match_python_bodies(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = np.round(rng.random(300), 2).astype(np.float32)
    mask = (rng.random(300) < 0.3).astype(np.uint8)
    for floor in (-np.inf, 0.4):
        outs = []
        for impl in (N.gather_normal, N.gather_normal.py_func):
            out = np.empty(250, np.float32)
            kept, below = impl(mask, True, values, 20, 270, floor, out)
            outs.append((kept, below, out[:kept].copy()))
        assert outs[0][:2] == outs[1][:2]
        np.testing.assert_array_equal(outs[0][2], outs[1][2])
        window = values[20:270][mask[20:270] == 0]
        np.testing.assert_array_equal(outs[0][2], window[window >= floor])
        assert outs[0][1] == int(np.sum(window < floor))
    s = np.sort(values)
    u = np.unique(np.round(rng.random(40), 2))
    results = []
    for impl in (N.merge_accumulate, N.merge_accumulate.py_func):
        less = np.full(u.size, 7, np.int64)  # accumulates onto what is there
        less_eq = np.full(u.size, 7, np.int64)
        impl(s, u, less, less_eq)
        results.append((less, less_eq))
    ref_less, ref_less_eq = _reference(values, u)
    for less, less_eq in results:
        np.testing.assert_array_equal(less, ref_less + 7)
        np.testing.assert_array_equal(less_eq, ref_less_eq + 7)
    m3 = (rng.random((3, 5, 7)) * 3 - 1).astype(np.float32)
    for impl in (count_positive, count_positive.py_func):
        np.testing.assert_array_equal(impl(m3), (m3 > 0).reshape(3, -1).sum(1))
    flat, maps = m3.reshape(-1), rng.random(m3.size)
    for impl in (gather_positive, gather_positive.py_func):
        np.testing.assert_array_equal(impl(flat, maps, int((flat > 0).sum())), maps[flat > 0])


def _blobs(seed: int, levels: int | None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.standard_normal((3, 40, 48)), sigma=(0, 2, 2))
    masks = (field > 0.25).astype(np.uint8)
    maps = 0.6 * masks + rng.random(masks.shape)
    if levels:
        maps = np.round(maps * levels) / levels
    return masks, maps.astype(np.float32)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("levels", [None, 3, 30])
@pytest.mark.parametrize("limit", [0.05, 0.3, 0.9, 1.0])
def test_floor_pruned_polyline_gives_the_full_area(seed: int, levels, limit: float) -> None:
    masks, maps = _blobs(seed, levels)
    state = E.exact_state_from(masks, maps)
    x, y = C.exact_pro_polyline(state, limit)
    groups, less, less_eq, n_neg, _ = state.ranks(weighted=True)
    fx, fy = am._ranks.pro_polyline(groups, less, less_eq, n_neg, state.n_regions)
    pruned = C.trapezoid_to_limit(x, y, limit)
    full = C.trapezoid_to_limit(fx, fy, limit)
    assert pruned == pytest.approx(full, abs=1e-12, rel=0)


@pytest.mark.parametrize("guess", ["above_all", "too_high", "below_all"])
def test_floor_guess_that_fails_its_check_falls_back(monkeypatch, guess: str) -> None:
    masks, maps = _blobs(0, None)
    expected = am.aupro(masks, maps, fpr_limit=0.3)
    value = {"above_all": 10.0, "too_high": float(np.quantile(maps, 0.99)), "below_all": -1.0}
    monkeypatch.setattr(E.ExactPixelState, "sample_quantile", lambda self, q: value[guess])
    assert am.aupro(masks, maps, fpr_limit=0.3) == pytest.approx(expected, abs=1e-12, rel=0)


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float64])
def test_masks_are_read_in_their_own_dtype(dtype) -> None:
    masks, maps = _blobs(1, 20)
    odd = masks.astype(dtype) * 3 - (1 - masks).astype(dtype) * (dtype != np.uint8)
    truth = masks > 0
    assert am.pixel_auroc(odd, maps) == pytest.approx(
        roc_auc_score(truth.ravel(), maps.ravel()), abs=1e-12
    )
    assert am.aupro(odd, maps) == am.aupro(truth, maps)
    assert am.aupro(odd, maps, num_thresholds=100) == am.aupro(truth, maps, num_thresholds=100)
