"""numba kernels for the ROC curve (plotting) and for the binned state's histograms.

The curve kernel walks two ascending arrays, ``neg`` (normal) and ``pos`` (anomalous), from their
high end down, one *distinct* score at a time: all samples tied at a score enter the positive
set together, so ties form a single threshold (one diagonal step of the curve).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["histogram_count", "histogram_update", "roc_points"]


@njit(cache=True, nogil=True)
def roc_points(neg: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative ``(fp, tp, thresholds)`` counts at every distinct score, from (0, 0, +inf)."""
    cap = neg.shape[0] + pos.shape[0] + 1
    fps = np.empty(cap, np.int64)
    tps = np.empty(cap, np.int64)
    thr = np.empty(cap, np.float64)
    fps[0] = 0
    tps[0] = 0
    thr[0] = np.inf
    k = 1
    i = neg.shape[0] - 1
    j = pos.shape[0] - 1
    fp = 0
    tp = 0
    while i >= 0 or j >= 0:
        if i < 0:
            v = pos[j]
        elif j < 0:
            v = neg[i]
        else:
            v = max(neg[i], pos[j])
        while i >= 0 and neg[i] == v:
            fp += 1
            i -= 1
        while j >= 0 and pos[j] == v:
            tp += 1
            j -= 1
        fps[k] = fp
        tps[k] = tp
        thr[k] = v
        k += 1
    return fps[:k], tps[:k], thr[:k]


@njit(cache=True, nogil=True)
def histogram_update(
    values: np.ndarray,
    weights: np.ndarray,
    lo: float,
    hi: float,
    out: np.ndarray,
) -> None:
    """Add ``weights`` into ``out`` at equal-width bins over [lo, hi] (hi goes in the last bin)."""
    n_bins = out.shape[0]
    scale = n_bins / (hi - lo)
    for k in range(values.shape[0]):
        b = int((values[k] - lo) * scale)
        if b >= n_bins:
            b = n_bins - 1
        elif b < 0:
            b = 0
        out[b] += weights[k]


@njit(cache=True, nogil=True)
def histogram_count(values: np.ndarray, lo: float, hi: float, out: np.ndarray) -> None:
    """Count ``values`` into ``out`` at equal-width bins over [lo, hi]."""
    n_bins = out.shape[0]
    scale = n_bins / (hi - lo)
    for k in range(values.shape[0]):
        b = int((values[k] - lo) * scale)
        if b >= n_bins:
            b = n_bins - 1
        elif b < 0:
            b = 0
        out[b] += 1
