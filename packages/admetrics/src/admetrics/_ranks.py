"""Exact ROC/PR/PRO statistics without sorting the normal scores.

Every metric here only needs, for each *distinct anomalous score* ``u``, how many normal scores
are below it (``less``) and at most it (``less_eq``): between two consecutive anomalous scores
the ROC and PRO curves move horizontally (only normal pixels change side), so their areas follow
exactly from the curve points at the anomalous scores.

Those counts come from a bucketed rank: ``B`` equal-width bins over the score range (a monotone
map of the value, so bins are value intervals) are marked when they hold an anomalous score. One
linear pass counts the normal scores of unmarked bins per bin and gathers those of marked bins,
which alone are sorted. Anomalous pixels are a small fraction of all pixels in anomaly detection,
so this replaces a sort of every normal score by one pass plus a sort of a small subset.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numba import njit

__all__ = ["PosGroups", "neg_ranks", "pos_groups"]


@njit(cache=True, nogil=True, inline="always")
def _bin(v: float, lo: float, scale: float, n_bins: int) -> int:
    b = int((v - lo) * scale)
    if b < 0:
        return 0
    if b >= n_bins:
        return n_bins - 1
    return b


@njit(cache=True, nogil=True)
def bin_index(values: np.ndarray, lo: float, scale: float, n_bins: int) -> np.ndarray:
    out = np.empty(values.shape[0], np.int64)
    for k in range(values.shape[0]):
        out[k] = _bin(values[k], lo, scale, n_bins)
    return out


@njit(cache=True, nogil=True)
def split_marked(
    values: np.ndarray,
    mask: np.ndarray,
    lo: float,
    scale: float,
    counts: np.ndarray,
    out: np.ndarray,
    start: int,
) -> int:
    """One pass: values whose bin is marked (``counts[bin] < 0``) go to ``out[start:]``; the
    others are counted in ``counts[bin]``. Returns the new end of ``out``.

    ``mask`` (same length as ``values``, or empty for none) skips the values where it is True.
    Marking through the count array keeps one random memory access per value.
    """
    n_bins = counts.shape[0]
    has_mask = mask.shape[0] > 0
    k = start
    for i in range(values.shape[0]):
        if has_mask and mask[i]:
            continue
        v = values[i]
        b = _bin(v, lo, scale, n_bins)
        c = counts[b]
        if c < 0:
            out[k] = v
            k += 1
        else:
            counts[b] = c + 1
    return k


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


def _n_bins(n_neg: int) -> int:
    # ~8 normal scores per bin: bins holding an anomalous score stay small to sort, while the
    # count array (8 bytes per bin) stays at 1 byte per normal score.
    return int(min(max(n_neg // 8, 1), 1 << 24))


def neg_ranks(
    neg_sources: Sequence[np.ndarray | tuple[np.ndarray, np.ndarray]],
    n_neg: int,
    u: np.ndarray,
    lo: float,
    hi: float,
) -> tuple[np.ndarray, np.ndarray]:
    """For ascending distinct ``u``: (#normal < u, #normal <= u), exactly.

    ``neg_sources`` holds 1-D arrays of normal scores, or ``(mask, maps)`` pairs of flat arrays
    whose normal scores are those where ``mask`` is False; ``n_neg`` is their total count.
    ``lo``/``hi`` must bound every normal score and every ``u``.
    """
    if u.size == 0 or n_neg == 0:
        return np.zeros(u.size, np.int64), np.zeros(u.size, np.int64)
    n_bins = _n_bins(n_neg) if hi > lo else 1
    scale = n_bins / (hi - lo) if hi > lo else 0.0
    u_bins = bin_index(u, lo, scale, n_bins)
    counts = np.zeros(n_bins, np.int32 if n_neg < 2**31 else np.int64)
    counts[u_bins] = -1  # marked: their normal scores are gathered, not counted
    dtype = u.dtype
    # capacity for the worst case; untouched pages of np.empty cost no memory
    gathered = np.empty(n_neg, dtype)
    end = 0
    no_mask = np.zeros(0, np.bool_)
    for source in neg_sources:
        if isinstance(source, tuple):
            end = split_marked(source[1], source[0], lo, scale, counts, gathered, end)
        else:
            end = split_marked(source, no_mask, lo, scale, counts, gathered, end)
    gathered = gathered[:end]
    gathered.sort()
    counts[u_bins] = 0
    below = np.zeros(n_bins + 1, np.int64)
    np.cumsum(counts, out=below[1:])
    base = below[u_bins]
    less_g, less_eq_g = merge_ranks(gathered, u)
    return base + less_g, base + less_eq_g


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
    groups: PosGroups, less: np.ndarray, less_eq: np.ndarray, n_neg: int, n_regions: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exact PRO curve reduced to its corners: (0, 0), then per distinct anomalous score (high to
    low) the horizontal run's end and the tie's diagonal step, then (1, 1)."""
    assert groups.weight is not None
    pro_after = np.minimum(np.cumsum(groups.weight[::-1]) / n_regions, 1.0)
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
    x[-1] = 1.0
    y[-1] = pro_after[-1]
    return x, y
