"""Exact ROC/PR/PRO statistics from the distinct anomalous scores.

Every metric here only needs, for each *distinct anomalous score* ``u``, how many normal scores
are below it (``less``) and at most it (``less_eq``): between two consecutive anomalous scores
the ROC and PRO curves move horizontally (only normal pixels change side), so their areas follow
exactly from the curve points at the anomalous scores.

Those counts come from one sort of the normal scores (numpy's SIMD sort) and a linear merge
with the distinct anomalous scores, so every metric costs one sort of the normal pixels, one
sort of the (few) anomalous pixels with their region weights, and linear passes; no argsort of
all pixels, no per-threshold loop, and integer pair counts for AUROC.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["PosGroups", "neg_ranks", "pos_groups"]


@njit(cache=True, nogil=True)
def merge_ranks(sorted_values: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For ascending ``u``: counts of ``sorted_values`` below and at-or-below each (a merge)."""
    less = np.empty(u.shape[0], np.int64)
    less_eq = np.empty(u.shape[0], np.int64)
    n = sorted_values.shape[0]
    j = 0
    for k in range(u.shape[0]):
        target = u[k]
        while j < n and sorted_values[j] < target:
            j += 1
        less[k] = j
        while j < n and sorted_values[j] == target:
            j += 1
        less_eq[k] = j
    return less, less_eq


class PosGroups:
    """Distinct anomalous scores ``u`` (ascending) with their counts and summed weights."""

    __slots__ = ("count", "u", "weight")

    def __init__(self, u: np.ndarray, count: np.ndarray, weight: np.ndarray | None) -> None:
        self.u = u
        self.count = count
        self.weight = weight


def pos_groups(pos: np.ndarray, weight: np.ndarray | None = None) -> PosGroups:
    """Group anomalous scores by distinct value (ties are one threshold)."""
    if weight is None:
        s = np.sort(pos)
        w = None
    else:
        order = np.argsort(pos)
        s = pos[order]
        w = weight[order]
    if s.size == 0:
        return PosGroups(s, np.zeros(0, np.int64), None if w is None else np.zeros(0))
    starts = np.flatnonzero(np.concatenate(([True], s[1:] != s[:-1])))
    count = np.diff(np.append(starts, s.size)).astype(np.int64)
    wsum = None if w is None else np.add.reduceat(w, starts)
    return PosGroups(s[starts], count, wsum)


@njit(cache=True, nogil=True)
def gather_unmasked(mask: np.ndarray, values: np.ndarray, out: np.ndarray, start: int) -> int:
    """Copy the normal ``values`` (``mask > 0`` False; flat arrays, mask of any numeric dtype)
    into ``out[start:]``; return the new end."""
    k = start
    for i in range(values.shape[0]):
        if not mask[i] > 0:
            out[k] = values[i]
            k += 1
    return k


def neg_ranks(sorted_neg: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """For ascending distinct ``u``: (#normal < u, #normal <= u, #normal), exactly."""
    less, less_eq = merge_ranks(sorted_neg, u.astype(sorted_neg.dtype, copy=False))
    return less, less_eq, sorted_neg.shape[0]


def auroc_numerator(groups: PosGroups, less: np.ndarray, less_eq: np.ndarray) -> int:
    """Twice the number of (anomalous, normal) pairs ranked correctly, ties counting one half."""
    return int(np.sum(groups.count * (less + less_eq)))


def average_precision(groups: PosGroups, less: np.ndarray, n_neg: int) -> float:
    """Step AP over distinct thresholds, summed from the highest threshold down."""
    count = groups.count[::-1]
    tp = np.cumsum(count)
    fp = n_neg - less[::-1]
    return float(np.sum(count * (tp / (tp + fp)))) / float(tp[-1])


def pro_polyline(
    groups: PosGroups,
    less: np.ndarray,
    less_eq: np.ndarray,
    n_neg: int,
    n_regions: int,
    *,
    end_fpr: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact PRO curve reduced to its corners: (0, 0), then per distinct anomalous score (high to
    low) the horizontal run's end and the tie's diagonal step, then (1, 1).

    ``end_fpr``: ``groups`` holds only the highest distinct anomalous scores (a top part, with
    their exact counts); the last run then ends at ``(end_fpr, PRO)`` instead of (1, 1).
    """
    assert groups.weight is not None
    pro_after = np.minimum(np.cumsum(groups.weight[::-1]) / n_regions, 1.0)
    if end_fpr is None:
        pro_after[-1] = 1.0  # every region pixel is detected: exactly 1, whatever the rounding
    pro_before = np.concatenate(([0.0], pro_after[:-1]))
    fpr_before = (n_neg - less_eq[::-1]) / n_neg
    fpr_after = (n_neg - less[::-1]) / n_neg
    k = pro_after.shape[0]
    x = np.empty(2 * k + 2)
    y = np.empty(2 * k + 2)
    x[0] = y[0] = 0.0
    x[1:-1:2] = fpr_before
    y[1:-1:2] = pro_before
    x[2:-1:2] = fpr_after
    y[2:-1:2] = pro_after
    x[-1] = 1.0 if end_fpr is None else end_fpr
    y[-1] = pro_after[-1]
    return x, y
