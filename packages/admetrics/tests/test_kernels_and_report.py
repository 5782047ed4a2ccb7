"""numba kernels against their pure-Python bodies; the Markdown report."""

from __future__ import annotations

import admetrics as am
import numpy as np
import pytest
from admetrics import _kernels as K


def _sorted_pair(seed: int, dtype=np.float64):
    rng = np.random.default_rng(seed)
    neg = np.sort(np.round(rng.random(300), 2)).astype(dtype)
    pos = np.sort(np.round(rng.random(120) + 0.2, 2)).astype(dtype)
    weight = 1.0 / rng.integers(1, 30, size=pos.shape)
    return neg, pos, weight


@pytest.mark.parametrize("seed", range(3))
def test_kernels_match_python_bodies(seed: int) -> None:
    neg, pos, w = _sorted_pair(seed)
    assert K.auc_ap_sweep(neg, pos) == pytest.approx(K.auc_ap_sweep.py_func(neg, pos), abs=1e-12)
    assert K.pro_sweep(neg, pos, w, 7, 0.3) == pytest.approx(
        K.pro_sweep.py_func(neg, pos, w, 7, 0.3), abs=1e-12
    )
    for a, b in zip(
        K.pro_points(neg, pos, w, 7), K.pro_points.py_func(neg, pos, w, 7), strict=True
    ):
        np.testing.assert_allclose(a, b, atol=1e-12)
    for a, b in zip(K.roc_points(neg, pos), K.roc_points.py_func(neg, pos), strict=True):
        np.testing.assert_array_equal(a, b)
    h1 = np.zeros(10, np.int64)
    h2 = np.zeros(10, np.int64)
    K.histogram_count(neg, 0.0, 1.0, h1)
    K.histogram_count.py_func(neg, 0.0, 1.0, h2)
    np.testing.assert_array_equal(h1, h2)
    smooth = np.random.default_rng(seed).random(500)  # off bin edges, where rounding may differ
    h3 = np.zeros(10, np.int64)
    K.histogram_count(smooth, 0.0, 1.0, h3)
    np.testing.assert_array_equal(h3, np.histogram(smooth, bins=10, range=(0.0, 1.0))[0])
    f1 = np.zeros(10)
    f2 = np.zeros(10)
    K.histogram_update(pos, w, 0.0, 1.2, f1)
    K.histogram_update.py_func(pos, w, 0.0, 1.2, f2)
    np.testing.assert_allclose(f1, f2, atol=1e-12)


def test_python_sweep_gives_exact_auroc_numerator() -> None:
    neg = np.array([0.1, 0.5, 0.5, 0.9])
    pos = np.array([0.5, 0.9])
    twice, ap = K.auc_ap_sweep.py_func(neg, pos)
    # pairs: (0.5 vs .1 .5 .5 .9) -> 1 + .5 + .5 + 0 ; (0.9 vs ...) -> 1 + 1 + 1 + .5 = 5.5
    assert twice == 11
    assert ap == pytest.approx(0.5 + 2 / 5)


def test_pro_sweep_interpolates_at_limit() -> None:
    neg = np.array([0.0, 1.0])  # FPR jumps 0 -> 0.5 -> 1
    pos = np.array([1.0])
    # curve: (0,0) -> (0.5, 1) [tie at 1.0] -> (1, 1); limit 0.25 cuts the first segment at y=0.5
    assert K.pro_sweep.py_func(neg, pos, np.array([1.0]), 1, 0.25) == pytest.approx(0.25)
    assert K.pro_sweep(neg, pos, np.array([1.0]), 1, 0.25) == pytest.approx(0.25)


def test_format_report_with_reference_and_missing_values() -> None:
    per_class = {
        "bagel": {"image_auroc": 0.9, "pixel_auroc": 0.95, "aupro": 0.8},
        "foam": {"image_auroc": 0.7, "pixel_auroc": 0.97},
    }
    reference = {"bagel": {"image_auroc": 0.945, "aupro": 0.981}}
    table = am.format_report(per_class, reference=reference, percent=True, digits=3)
    lines = table.splitlines()
    assert lines[0] == (
        "| class | I-AUROC | I-AUROC (ref) | P-AUROC | P-AUROC (ref) | AUPRO | AUPRO (ref) |"
    )
    assert lines[2] == "| bagel | 90.0 | 94.5 | 95.0 | — | 80.0 | 98.1 |"
    assert lines[3] == "| foam | 70.0 | — | 97.0 | — | — | — |"
    assert lines[4] == "| **mean** | **80.0** | — | **96.0** | — | — | — |"


def test_format_report_rejects_empty() -> None:
    with pytest.raises(am.AdmetricsError, match="empty"):
        am.format_report({})
