"""numba kernels against their pure-Python bodies; the Markdown report."""

from __future__ import annotations

from pathlib import Path

import admetrics as am
import numpy as np
import pytest
from admetrics import _kernels as K
from admetrics import _ranks as Rk
from admetrics._scan import scan_regions
from scipy import ndimage


def _sorted_pair(seed: int, dtype=np.float64):
    rng = np.random.default_rng(seed)
    neg = np.sort(np.round(rng.random(300), 2)).astype(dtype)
    pos = np.sort(np.round(rng.random(120) + 0.2, 2)).astype(dtype)
    weight = 1.0 / rng.integers(1, 30, size=pos.shape)
    return neg, pos, weight


@pytest.mark.parametrize("seed", range(3))
def test_kernels_match_python_bodies(seed: int) -> None:
    neg, pos, w = _sorted_pair(seed)
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


@pytest.mark.parametrize("seed", range(3))
def test_merge_ranks_matches_searchsorted_and_python_body(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = np.sort(np.round(rng.random(400), 2))
    u = np.unique(np.round(rng.random(50), 2))
    for impl in (Rk.merge_ranks, Rk.merge_ranks.py_func):
        less, less_eq = impl(values, u)
        np.testing.assert_array_equal(less, np.searchsorted(values, u, side="left"))
        np.testing.assert_array_equal(less_eq, np.searchsorted(values, u, side="right"))


def test_rank_statistics_small_example() -> None:
    neg = np.array([0.1, 0.5, 0.5, 0.9])
    groups = Rk.pos_groups(np.array([0.5, 0.9]))
    less, less_eq, n_neg = Rk.neg_ranks(neg, groups.u)
    assert n_neg == 4
    assert less.tolist() == [1, 3] and less_eq.tolist() == [3, 4]
    # pairs: 0.5 beats 0.1 and ties two 0.5s -> 2 ; 0.9 beats three and ties one -> 3.5
    assert Rk.auroc_numerator(groups, less, less_eq) == 11
    assert Rk.average_precision(groups, less, 4) == pytest.approx((0.5 + 2 / 5) / 2)


def _blob_batch(seed: int, n: int = 4, h: int = 23, w: int = 31) -> np.ndarray:
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.standard_normal((n, h, w)), sigma=(0, 1, 1))
    return field > rng.uniform(0.0, 0.6)


@pytest.mark.parametrize("seed", range(6))
def test_scan_regions_matches_ndimage_label(seed: int) -> None:
    mask = _blob_batch(seed)
    if seed == 0:
        mask[:] = np.random.default_rng(0).random(mask.shape) < 0.5  # speckle: many diagonals
    maps = np.random.default_rng(seed).random(mask.shape).astype(np.float32)
    n_pos = int(mask.sum())
    structure = np.ones((3, 3), int)
    expected = np.concatenate(
        [ndimage.label(m, structure=structure)[0][m] + 1000 * i for i, m in enumerate(mask)]
    )
    expected_n = sum(ndimage.label(m, structure=structure)[1] for m in mask)
    for impl in (scan_regions, scan_regions.py_func):
        pos, region, n_regions = impl(mask, maps, n_pos)
        np.testing.assert_array_equal(pos, maps[mask])
        assert n_regions == expected_n
        # same partition of the anomalous pixels: the id pairs form a bijection
        pairs = set(zip(region.tolist(), expected.tolist(), strict=True))
        assert len(pairs) == n_regions == len({a for a, _ in pairs}) == len({b for _, b in pairs})


def test_scan_regions_handles_empty_and_full_masks() -> None:
    empty = np.zeros((2, 5, 6), bool)
    pos, region, n = scan_regions(empty, np.ones((2, 5, 6)), 0)
    assert pos.size == 0 and region.size == 0 and n == 0
    full = np.ones((2, 5, 6), bool)
    pos, region, n = scan_regions(full, np.ones((2, 5, 6)), full.size)
    assert n == 2 and np.array_equal(np.bincount(region), [30, 30])


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


def test_readme_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = readme.split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(code, "README.md", "exec"), {})
    assert "| **mean** |" in capsys.readouterr().out


def test_gather_unmasked_matches_boolean_indexing() -> None:
    rng = np.random.default_rng(4)
    values = rng.random(300).astype(np.float32)
    mask = rng.random(300) < 0.3
    for impl in (Rk.gather_unmasked, Rk.gather_unmasked.py_func):
        out = np.full(400, -1.0, np.float32)
        end = impl(mask, values, out, 5)
        assert end == 5 + int((~mask).sum())
        np.testing.assert_array_equal(out[5:end], values[~mask])
