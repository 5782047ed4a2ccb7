"""Binned pixel state: fixed-size histograms, memory independent of the number of pixels.

With ``B`` equal-width bins over a known score range ``[lo, hi]``, the binned ROC and PRO curves
are the exact curves evaluated at the bin edges (every bin edge is a threshold, scores inside a
bin act as one tie). Between two consecutive edges the exact curve is a monotone path inside the
box spanned by the two edge points, while the binned curve is the box diagonal, so the area
error per box is at most half the box area (the whole clipped box for the box crossing the FPR
limit). Summing gives the a-posteriori bounds this module returns:

* ``|AUROC_binned - AUROC_exact| <= sum_b n_b p_b / (2 N P)``
* ``|AUPRO_binned - AUPRO_exact| <= (sum_{b below limit} dFPR_b dPRO_b / 2
  + dFPR_c' dPRO_c) / fpr_limit``

and, a priori, if no bin holds more than a fraction ``eps`` of the normal pixels, both bounds
are at most ``eps / 2`` and ``eps / fpr_limit`` respectively.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import _kernels as K
from ._exact import BatchSplit
from ._inputs import require_pixels
from .errors import AdmetricsError


@dataclass
class BinnedPixelState:
    bins: int
    lo: float
    hi: float
    neg_hist: np.ndarray = field(init=False)
    pos_hist: np.ndarray = field(init=False)
    pro_hist: np.ndarray = field(init=False)
    n_regions: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.bins, bool) or int(self.bins) != self.bins or self.bins < 1:
            raise AdmetricsError(f"bins must be a positive int, got {self.bins!r}")
        if not (np.isfinite(self.lo) and np.isfinite(self.hi) and self.hi > self.lo):
            raise AdmetricsError(
                f"score_range must be finite (lo, hi) with hi > lo, got ({self.lo}, {self.hi})"
            )
        self.neg_hist = np.zeros(self.bins, np.int64)
        self.pos_hist = np.zeros(self.bins, np.int64)
        self.pro_hist = np.zeros(self.bins, np.float64)

    @property
    def nbytes(self) -> int:
        return self.neg_hist.nbytes + self.pos_hist.nbytes + self.pro_hist.nbytes

    def check(self, split: BatchSplit) -> None:
        """Raise when the batch has scores outside the histogram range."""
        if split.neg.size + split.pos.size and (split.lo < self.lo or split.hi > self.hi):
            raise AdmetricsError(
                f"maps: scores span [{split.lo}, {split.hi}] outside score_range=({self.lo}, {self.hi})"
            )

    def add(self, split: BatchSplit) -> None:
        self.check(split)
        K.histogram_count(split.neg, self.lo, self.hi, self.neg_hist)
        K.histogram_count(split.pos, self.lo, self.hi, self.pos_hist)
        K.histogram_update(
            split.pos, 1.0 / split.area.astype(np.float64), self.lo, self.hi, self.pro_hist
        )
        self.n_regions += split.n_regions

    def _descending(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.neg_hist[::-1], self.pos_hist[::-1], self.pro_hist[::-1]

    def auroc(self) -> tuple[float, float]:
        """(AUROC, error bound)."""
        n, p, _ = self._descending()
        N, P = int(n.sum()), int(p.sum())
        require_pixels(N, P, "pixel AUROC")
        tp_before = np.concatenate(([0], np.cumsum(p)[:-1]))
        twice = float(np.sum(n * (2 * tp_before + p)))
        denom = 2.0 * N * P
        return twice / denom, float(np.sum(n * p)) / denom

    def average_precision(self) -> float:
        n, p, _ = self._descending()
        P = int(p.sum())
        if P == 0:
            raise AdmetricsError("pixel AP is undefined: no anomalous pixel (every mask is empty)")
        tp = np.cumsum(p)
        fp = np.cumsum(n)
        hit = p > 0
        return float(np.sum(p[hit] * (tp[hit] / (tp[hit] + fp[hit])))) / P

    def aupro(self, fpr_limit: float) -> tuple[float, float]:
        """(AUPRO, error bound)."""
        n, p, w = self._descending()
        N, P = int(n.sum()), int(p.sum())
        require_pixels(N, P, "AUPRO")
        x = np.concatenate(([0.0], np.cumsum(n) / N))
        y = np.concatenate(([0.0], np.minimum(np.cumsum(w) / self.n_regions, 1.0)))
        dx = np.diff(x)
        dy = np.diff(y)
        below = x[1:] <= fpr_limit
        area = float(np.sum(0.5 * dx[below] * (y[1:][below] + y[:-1][below])))
        bound = float(np.sum(0.5 * dx[below] * dy[below]))
        c = int(np.count_nonzero(below))  # first segment that ends beyond the limit
        if c < dx.shape[0] and x[c] < fpr_limit:
            part = fpr_limit - x[c]
            y_lim = y[c] + dy[c] * part / dx[c]
            area += 0.5 * part * (y[c] + y_lim)
            bound += part * dy[c]
        return float(area / fpr_limit), float(bound / fpr_limit)
