"""Hypothesis properties: monotone invariance, permutation invariance, perfect maps, range."""

from __future__ import annotations

import admetrics as am
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

SETTINGS = settings(max_examples=25, deadline=None)


@st.composite
def masks_and_integer_maps(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Blob masks with at least one anomalous and one normal pixel, and small-integer scores
    (many ties; strictly monotone maps of small integers stay distinct in float64)."""
    seed = draw(st.integers(0, 2**32 - 1))
    n = draw(st.integers(1, 4))
    h = draw(st.integers(4, 16))
    w = draw(st.integers(4, 16))
    levels = draw(st.integers(2, 40))
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.standard_normal((n, h, w)), sigma=(0, 1.5, 1.5))
    masks = field > np.quantile(field, draw(st.floats(0.5, 0.95)))
    masks.flat[rng.integers(masks.size)] = True
    normal_idx = rng.integers(masks.size)
    masks.flat[normal_idx] = False
    if masks.all() or not masks.any():
        masks.flat[0] = not masks.flat[0]
    maps = rng.integers(0, levels, size=masks.shape) + masks * draw(st.integers(0, levels))
    return masks, maps.astype(np.float64)


def _all_metrics(masks: np.ndarray, maps: np.ndarray) -> np.ndarray:
    return np.array(
        [
            am.pixel_auroc(masks, maps),
            am.pixel_average_precision(masks, maps),
            am.aupro(masks, maps),
            am.aupro(masks, maps, fpr_limit=1.0),
        ]
    )


@SETTINGS
@given(masks_and_integer_maps(), st.sampled_from(["cube", "exp", "neg_reciprocal", "affine"]))
def test_invariant_to_strictly_monotone_transforms(data, transform: str) -> None:
    masks, maps = data
    f = {
        "cube": lambda x: x**3 - 5.0,
        "exp": lambda x: np.exp(x / 3.0),
        "neg_reciprocal": lambda x: -1.0 / (x + 1.0),
        "affine": lambda x: 0.25 * x - 3.0,
    }[transform]
    np.testing.assert_allclose(_all_metrics(masks, f(maps)), _all_metrics(masks, maps), atol=1e-12)


@SETTINGS
@given(masks_and_integer_maps(), st.integers(0, 2**32 - 1))
def test_invariant_to_image_permutation(data, seed: int) -> None:
    masks, maps = data
    order = np.random.default_rng(seed).permutation(len(masks))
    np.testing.assert_allclose(
        _all_metrics(masks[order], maps[order]), _all_metrics(masks, maps), atol=1e-12
    )


@SETTINGS
@given(masks_and_integer_maps())
def test_values_in_unit_interval(data) -> None:
    masks, maps = data
    values = _all_metrics(masks, maps)
    assert np.all((values >= 0.0) & (values <= 1.0))
    fpr, pro = am.pro_curve(masks, maps)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(pro) >= 0)
    assert fpr[0] == pro[0] == 0.0 and fpr[-1] == pro[-1] == 1.0


@SETTINGS
@given(masks_and_integer_maps(), st.integers(0, 2**32 - 1))
def test_perfect_maps_give_one(data, seed: int) -> None:
    masks, _ = data
    rng = np.random.default_rng(seed)
    maps = np.where(masks, 2.0 + rng.random(masks.shape), rng.random(masks.shape))
    np.testing.assert_array_equal(_all_metrics(masks, maps), 1.0)


@SETTINGS
@given(masks_and_integer_maps())
def test_inverted_maps_give_zero_aupro_and_auroc(data) -> None:
    masks, _ = data
    maps = np.where(masks, 0.0, 1.0)
    assert am.pixel_auroc(masks, maps) == 0.0
    assert am.aupro(masks, maps) == 0.0


@SETTINGS
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 5)), min_size=2, max_size=60))
def test_image_auroc_symmetry(pairs) -> None:
    labels = np.array([p[0] for p in pairs])
    scores = np.array([p[1] for p in pairs], dtype=float)
    if labels.all() or not labels.any():
        return
    # swapping the classes mirrors the ROC curve (exact integer pair counts)
    total = am.image_auroc(labels, scores) + am.image_auroc(~labels, scores)
    assert abs(total - 1.0) <= 1e-15
