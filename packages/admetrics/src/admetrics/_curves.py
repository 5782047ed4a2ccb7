"""Curves and their areas from the exact pixel state: AUROC from ranks, the PRO curve (exact or
at the reference code's thresholds) and the trapezoid area up to an FPR limit."""

from __future__ import annotations

import numpy as np

from . import _ranks as R
from ._exact import ExactPixelState
from ._inputs import require_pixels
from .errors import AdmetricsError

__all__ = [
    "aupro_from_state",
    "auroc_from_ranks",
    "cut_curve",
    "exact_pro_polyline",
    "quantile_pro_curve",
    "trapezoid_to_limit",
]


def auroc_from_ranks(
    groups: R.PosGroups, less: np.ndarray, less_eq: np.ndarray, n_neg: int
) -> float:
    n_pos = int(groups.count.sum())
    return float(R.auroc_numerator(groups, less, less_eq)) / (2.0 * n_pos * n_neg)


def trapezoid_to_limit(x: np.ndarray, y: np.ndarray, limit: float) -> float:
    """Trapezoid area under (x, y) for x <= limit, interpolating y at ``limit``.

    Same rule as the MVTec evaluation code's ``trapezoid(x, y, x_max)``: when ``limit`` is one
    of the x values, no interpolation; otherwise the segment that crosses it is cut there.
    ``x`` must be non-decreasing, start at or below ``limit`` and end at or above it.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    correction = 0.0
    if not np.any(x == limit):
        ins = int(np.searchsorted(x, limit, side="right"))
        if not 0 < ins < len(x):
            raise AdmetricsError(f"fpr_limit={limit} lies outside the curve's FPR range")
        y_interp = y[ins - 1] + (y[ins] - y[ins - 1]) * (limit - x[ins - 1]) / (x[ins] - x[ins - 1])
        correction = 0.5 * (y_interp + y[ins - 1]) * (limit - x[ins - 1])
    keep = x <= limit
    x = x[keep]
    y = y[keep]
    return float(np.sum(0.5 * (y[1:] + y[:-1]) * (x[1:] - x[:-1])) + correction)


def cut_curve(x: np.ndarray, y: np.ndarray, limit: float) -> tuple[np.ndarray, np.ndarray]:
    """The curve up to ``limit``, with an interpolated end point when no point sits there."""
    keep = x <= limit
    if np.any(x == limit):
        return x[keep], y[keep]
    ins = int(np.searchsorted(x, limit, side="right"))
    y_at = y[ins - 1] + (y[ins] - y[ins - 1]) * (limit - x[ins - 1]) / (x[ins] - x[ins - 1])
    return np.append(x[keep], limit), np.append(y[keep], y_at)


def quantile_pro_curve(
    neg: np.ndarray, groups: R.PosGroups, n_regions: int, num_thresholds: int
) -> tuple[np.ndarray, np.ndarray]:
    """PRO curve at the reference MVTec 3D-AD code's thresholds.

    Thresholds are the normal-pixel scores at ``linspace(0, n_normal - 1, num_thresholds)``
    (integer positions, truncated) of their ascending order; at position ``p`` the FPR is taken as
    ``1 - (p + 1) / n_normal`` (ties ignored) and a region pixel counts as detected when its score
    is strictly above the threshold. (1, 1) is added; the curve runs from low to high FPR.
    ``neg`` must be sorted ascending.
    """
    assert groups.weight is not None
    n = neg.shape[0]
    positions = np.linspace(0, n - 1, num=num_thresholds, dtype=int)
    thresholds = neg[positions]
    fpr = 1.0 - (positions + 1) / n
    suffix = np.zeros(groups.u.shape[0] + 1, dtype=np.float64)
    suffix[:-1] = np.cumsum(groups.weight[::-1])[::-1]
    detected = suffix[np.searchsorted(groups.u, thresholds, side="right")] / n_regions
    fprs = np.concatenate(([1.0], fpr))[::-1].copy()
    pros = np.concatenate(([1.0], detected))[::-1].copy()
    return fprs, pros


def exact_pro_polyline(state: ExactPixelState, limit: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact PRO polyline, complete up to FPR ``limit`` (see ``R.pro_polyline``).

    Only thresholds with FPR up to ``limit`` shape the area, so the normal scores below a cut
    ``floor`` whose FPR is still ``>= limit`` are merely counted, not sorted (about ``1 - limit``
    of them). The polyline then ends with the horizontal run from the lowest anomalous score
    above the floor to ``(FPR(floor), PRO there)``: the exact curve continues that run at least
    that far (the next corner belongs to an anomalous score below the floor, so its FPR is
    ``>= FPR(floor) >= limit``), so the area up to ``limit`` is the same. The floor is guessed
    from a strided sample and checked exactly; when the check fails, every score is sorted.
    """
    if limit < 1.0:
        keep = min(1.0, limit + 0.05)  # a margin: the sample includes anomalous pixels
        floor = state.sample_quantile(1.0 - keep)
        groups, less, less_eq, n_neg, below = state.ranks(weighted=True, floor=floor, keep=keep)
        fpr_floor = (n_neg - below) / n_neg
        if below > 0 and groups.u.size > 0 and fpr_floor >= limit:
            # every anomalous score above the floor: the counts are all exact, the curve complete
            complete = int(groups.count.sum()) == state.n_pos
            end = None if complete else fpr_floor
            return R.pro_polyline(groups, less, less_eq, n_neg, state.n_regions, end_fpr=end)
    groups, less, less_eq, n_neg, _ = state.ranks(weighted=True)
    return R.pro_polyline(groups, less, less_eq, n_neg, state.n_regions)


def aupro_from_state(state: ExactPixelState, fpr_limit: float, num_thresholds: int | None) -> float:
    require_pixels(state.n_neg, state.n_pos, "AUPRO")
    if num_thresholds is None:
        x, y = exact_pro_polyline(state, fpr_limit)
        return trapezoid_to_limit(x, y, fpr_limit) / fpr_limit
    pos, weight = state.pos_and_weight()
    groups = R.pos_groups(pos, weight)
    fprs, pros = quantile_pro_curve(state.sorted_neg(), groups, state.n_regions, num_thresholds)
    return trapezoid_to_limit(fprs, pros, fpr_limit) / fpr_limit
