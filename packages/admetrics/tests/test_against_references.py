"""Exactness against scikit-learn, a slow threshold-by-threshold AUPRO and a port of the
reference MVTec 3D-AD quantile AUPRO, written here independently of the package."""

from __future__ import annotations

import itertools
from bisect import bisect

import admetrics as am
import numpy as np
import pytest
from scipy import ndimage
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # noqa: NPY201 (numpy < 2: trapz only)


def blob_masks(
    rng: np.random.Generator, n: int, h: int, w: int, empty_every: int = 3
) -> np.ndarray:
    """Irregular blobs: smoothed noise thresholded high; every ``empty_every``-th image is normal."""
    masks = np.zeros((n, h, w), dtype=bool)
    for i in range(n):
        if i % empty_every == 0:
            continue
        field = ndimage.gaussian_filter(rng.standard_normal((h, w)), sigma=rng.uniform(1.0, 3.0))
        masks[i] = field > np.quantile(field, rng.uniform(0.8, 0.97))
    return masks


def noisy_maps(rng: np.random.Generator, masks: np.ndarray, decimals: int | None = 2) -> np.ndarray:
    maps = 0.35 * masks + rng.random(masks.shape)
    maps = ndimage.uniform_filter(maps, size=(1, 3, 3))
    return np.round(maps, decimals) if decimals is not None else maps


# --- slow, obviously correct references -----------------------------------------------------------


def slow_pro_points(masks: np.ndarray, maps: np.ndarray) -> list[tuple[float, float]]:
    """(FPR, PRO) at every distinct score, from +inf down; positive means score >= threshold."""
    regions = []
    for i, m in enumerate(masks):
        labelled, n = ndimage.label(m > 0, structure=np.ones((3, 3), dtype=int))
        regions += [(i, labelled == k) for k in range(1, n + 1)]
    normal = masks <= 0
    n_normal = normal.sum()
    points = [(0.0, 0.0)]
    for t in sorted(set(maps.ravel().tolist()), reverse=True):
        positive = maps >= t
        fpr = (positive & normal).sum() / n_normal
        pro = np.mean([(positive[i] & r).sum() / r.sum() for i, r in regions])
        points.append((float(fpr), float(pro)))
    return points


def slow_aupro(masks: np.ndarray, maps: np.ndarray, limit: float = 0.3) -> float:
    points = slow_pro_points(masks, maps)
    area = 0.0
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        if x0 >= limit:
            break
        if x1 <= limit:
            area += (x1 - x0) * (y0 + y1) / 2
        else:
            y_at = y0 + (y1 - y0) * (limit - x0) / (x1 - x0)
            area += (limit - x0) * (y0 + y_at) / 2
            break
    return area / limit


class _Component:
    """Reference structure: sorted scores of one gt component, overlap for rising thresholds."""

    def __init__(self, scores: np.ndarray) -> None:
        self.scores = np.sort(scores)
        self.index = 0

    def overlap(self, threshold: float) -> float:
        while self.index < len(self.scores) and self.scores[self.index] <= threshold:
            self.index += 1
        return 1.0 - self.index / len(self.scores)


def _reference_trapezoid(x: list[float], y: list[float], x_max: float) -> float:
    x_arr, y_arr = np.array(x), np.array(y)
    correction = 0.0
    if x_max not in x_arr:
        ins = bisect(x_arr, x_max)
        assert 0 < ins < len(x_arr)
        y_interp = y_arr[ins - 1] + (y_arr[ins] - y_arr[ins - 1]) * (x_max - x_arr[ins - 1]) / (
            x_arr[ins] - x_arr[ins - 1]
        )
        correction = 0.5 * (y_interp + y_arr[ins - 1]) * (x_max - x_arr[ins - 1])
    keep = x_arr <= x_max
    x_arr, y_arr = x_arr[keep], y_arr[keep]
    return float(np.sum(0.5 * (y_arr[1:] + y_arr[:-1]) * (x_arr[1:] - x_arr[:-1])) + correction)


def reference_quantile_aupro(masks, maps, limit: float = 0.3, num_thresholds: int = 100) -> float:
    """Port of the MVTec 3D-AD evaluation code's compute_pro / calculate_au_pro."""
    components = []
    ok_scores = []
    for gt, pred in zip(masks, maps, strict=True):
        labelled, n = ndimage.label(gt, np.ones((3, 3), dtype=int))
        ok_scores.append(pred[labelled == 0])
        components += [_Component(pred[labelled == k + 1]) for k in range(n)]
    ok = np.sort(np.concatenate(ok_scores).astype(np.float64))
    positions = np.linspace(0, len(ok) - 1, num=num_thresholds, dtype=int)
    fprs, pros = [1.0], [1.0]
    for pos in positions:
        threshold = ok[pos]
        fprs.append(1.0 - (pos + 1) / len(ok))
        pros.append(sum(c.overlap(threshold) for c in components) / len(components))
    return _reference_trapezoid(fprs[::-1], pros[::-1], limit) / limit


# --- tests ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_image_auroc_and_ap_match_sklearn_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 400))
    labels = rng.random(n) < rng.uniform(0.1, 0.9)
    labels[:2] = [False, True]
    scores = np.round(rng.random(n) + 0.3 * labels, 1)  # heavy ties
    assert am.image_auroc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-9)
    assert am.average_precision(labels, scores) == pytest.approx(
        average_precision_score(labels, scores), abs=1e-9
    )


def test_roc_curve_matches_sklearn() -> None:
    rng = np.random.default_rng(5)
    labels = rng.random(300) < 0.4
    scores = np.round(rng.random(300), 2)
    fpr, tpr, thr = am.roc_curve(labels, scores)
    sk_fpr, sk_tpr, sk_thr = sk_roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr, atol=1e-12)
    np.testing.assert_allclose(tpr, sk_tpr, atol=1e-12)
    np.testing.assert_array_equal(thr[1:], sk_thr[1:])
    assert thr[0] == np.inf


@pytest.mark.parametrize(("seed", "dtype"), [(0, np.float32), (1, np.float64), (2, np.float32)])
def test_pixel_auroc_and_ap_match_sklearn(seed: int, dtype: type) -> None:
    rng = np.random.default_rng(seed)
    masks = blob_masks(rng, 6, 40, 48)
    maps = noisy_maps(rng, masks, decimals=2).astype(dtype)
    y, s = masks.ravel(), maps.ravel()
    assert am.pixel_auroc(masks, maps) == pytest.approx(roc_auc_score(y, s), abs=1e-9)
    assert am.pixel_average_precision(masks, maps) == pytest.approx(
        average_precision_score(y, s), abs=1e-9
    )


def test_pixel_metrics_on_lists_of_different_sizes() -> None:
    rng = np.random.default_rng(3)
    shapes = [(20, 30), (33, 17), (25, 25)]
    masks = [blob_masks(rng, 2, h, w, empty_every=5)[1] for h, w in shapes]
    maps = [noisy_maps(rng, m[None])[0] for m in masks]
    y = np.concatenate([m.ravel() for m in masks])
    s = np.concatenate([m.ravel() for m in maps])
    assert am.pixel_auroc(masks, maps) == pytest.approx(roc_auc_score(y, s), abs=1e-9)
    assert am.aupro(masks, maps) == pytest.approx(_slow_aupro_list(masks, maps), abs=1e-9)


def _slow_aupro_list(masks: list[np.ndarray], maps: list[np.ndarray], limit: float = 0.3) -> float:
    """slow_aupro for images of different sizes: label each image, then flatten it to a row."""
    width = max(m.size for m in masks)
    labelled_masks, flat_maps = [], []
    offset = 0
    for m, p in zip(masks, maps, strict=True):
        labelled, n = ndimage.label(m > 0, structure=np.ones((3, 3), dtype=int))
        labelled = np.where(labelled > 0, labelled + offset, 0)
        offset += n
        labelled_masks.append(np.pad(labelled.ravel(), (0, width - m.size), constant_values=-1))
        flat_maps.append(np.pad(p.ravel(), (0, width - m.size)))
    lab, sc = np.stack(labelled_masks), np.stack(flat_maps)
    valid = lab >= 0
    normal = lab == 0
    points = [(0.0, 0.0)]
    for t in sorted(set(sc[valid].tolist()), reverse=True):
        positive = (sc >= t) & valid
        fpr = (positive & normal).sum() / normal.sum()
        pro = np.mean(
            [(positive & (lab == k)).sum() / (lab == k).sum() for k in range(1, offset + 1)]
        )
        points.append((float(fpr), float(pro)))
    area = 0.0
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        if x1 <= limit:
            area += (x1 - x0) * (y0 + y1) / 2
        else:
            area += (limit - x0) * (y0 + y0 + (y1 - y0) * (limit - x0) / (x1 - x0)) / 2
            break
    return area / limit


@pytest.mark.parametrize(
    ("seed", "limit", "decimals"),
    [(0, 0.3, 2), (1, 0.3, None), (2, 0.05, 2), (3, 1.0, 2), (4, 0.3, 1), (5, 0.5, 3)],
)
def test_exact_aupro_matches_slow_reference(seed: int, limit: float, decimals: int | None) -> None:
    rng = np.random.default_rng(seed)
    masks = blob_masks(rng, 5, 24, 28)
    maps = noisy_maps(rng, masks, decimals=decimals)
    expected = slow_aupro(masks, maps, limit)
    assert am.aupro(masks, maps, fpr_limit=limit) == pytest.approx(expected, abs=1e-9)
    assert am.aupro(masks, maps.astype(np.float32), fpr_limit=limit) == pytest.approx(
        slow_aupro(masks, maps.astype(np.float32), limit), abs=1e-9
    )


def _on_segment(p, a, b, tol=1e-12) -> bool:
    cross = (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])
    inside = min(a[0], b[0]) - tol <= p[0] <= max(a[0], b[0]) + tol
    return abs(cross) <= tol and inside and min(a[1], b[1]) - tol <= p[1] <= max(a[1], b[1]) + tol


@pytest.mark.parametrize("seed", [11, 12])
def test_exact_pro_curve_is_the_slow_curve(seed: int) -> None:
    rng = np.random.default_rng(seed)
    masks = blob_masks(rng, 4, 20, 20)
    maps = noisy_maps(rng, masks, decimals=2)
    fpr, pro = am.pro_curve(masks, maps)
    corners = list(zip(fpr.tolist(), pro.tolist(), strict=True))
    slow = slow_pro_points(masks, maps)
    assert corners[0] == (0.0, 0.0) and corners[-1] == (1.0, 1.0)
    assert slow[-1] == pytest.approx((1.0, 1.0))
    # every corner is a point of the slow curve, in the same order ...
    k = 0
    for c in corners:
        while k < len(slow) and not np.allclose(slow[k], c, atol=1e-12):
            k += 1
        assert k < len(slow), c
    # ... and every slow point lies on the polyline through the corners, in order
    seg = 0
    for p in slow:
        while not _on_segment(p, corners[seg], corners[min(seg + 1, len(corners) - 1)]):
            seg += 1
            assert seg < len(corners), p
    assert len(corners) <= 2 * len(np.unique(maps[masks])) + 2
    cut_fpr, cut_pro = am.pro_curve(masks, maps, fpr_limit=0.3)
    assert cut_fpr[-1] == 0.3
    assert _trapezoid(cut_pro, cut_fpr) / 0.3 == pytest.approx(am.aupro(masks, maps), abs=1e-12)


@pytest.mark.parametrize(("seed", "num_thresholds"), [(0, 100), (1, 100), (2, 7), (3, 250)])
def test_quantile_mode_matches_reference_port(seed: int, num_thresholds: int) -> None:
    rng = np.random.default_rng(seed)
    masks = blob_masks(rng, 6, 30, 30)
    maps = noisy_maps(rng, masks, decimals=2 if seed % 2 else None).astype(np.float32)
    expected = reference_quantile_aupro(masks, maps, 0.3, num_thresholds)
    got = am.aupro(masks, maps, num_thresholds=num_thresholds)
    assert got == pytest.approx(expected, abs=1e-12)
    fpr, pro = am.pro_curve(masks, maps, num_thresholds=num_thresholds)
    assert fpr.shape == (num_thresholds + 1,)
    assert fpr[-1] == 1.0 and pro[-1] == 1.0


def test_quantile_mode_close_to_exact_without_ties() -> None:
    rng = np.random.default_rng(9)
    masks = blob_masks(rng, 8, 64, 64)
    maps = noisy_maps(rng, masks, decimals=None)
    exact = am.aupro(masks, maps)
    approx = am.aupro(masks, maps, num_thresholds=100)
    assert abs(exact - approx) < 0.01
