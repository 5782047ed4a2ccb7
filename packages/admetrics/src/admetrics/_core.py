"""Functional core shared by the one-shot functions and the streaming :class:`AnomalyMetrics`.

State is a multiset of scores split by ground truth:

* exact: normal-pixel scores (``neg``), anomalous-pixel scores (``pos``) and, per anomalous pixel,
  the area of the 8-connected ground-truth region it belongs to (``area``, uint32);
* binned (see ``_binned``): three fixed-size histograms.

Regions never span images, so a region's area is final when its image is added: PRO(t) is
``sum(1 / area over anomalous pixels >= t) / n_regions`` and no per-region state is needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import _ranks as R
from ._inputs import check_finite, iter_batches
from ._negranks import CHUNK, neg_ranks_chunked
from ._scan import count_positive, gather_positive, scan_regions
from .errors import AdmetricsError

NegSource = np.ndarray | tuple[np.ndarray, np.ndarray]


@dataclass
class BatchSplit:
    neg: NegSource  # normal scores, or (flat mask, flat maps) with normal where mask is False
    n_neg: int
    pos: np.ndarray
    area: np.ndarray  # uint32 area of the region of each anomalous pixel
    n_regions: int
    labels: np.ndarray  # (n,) bool: image has an anomalous pixel
    max_scores: np.ndarray  # (n,) float64: per-image maximum score
    lo: float
    hi: float


def split_batch(
    masks: np.ndarray, maps: np.ndarray, *, copy_normal: bool, regions: bool = True
) -> BatchSplit:
    """Split one (n, H, W) batch into normal/anomalous scores and region areas.

    ``copy_normal=False`` keeps references to the batch instead of copying its normal scores
    (one-shot use, where the caller's arrays outlive the computation). ``regions=False`` skips
    the labelling (every area is then 1; only for metrics that ignore regions). The mask is read
    in its own dtype (anomalous where ``> 0``): no boolean copy of it is made.
    """
    lo, hi = check_finite(maps, "maps")
    masks = np.ascontiguousarray(masks)
    maps = np.ascontiguousarray(maps)
    n = masks.shape[0]
    per_image = count_positive(masks)
    n_pos = int(per_image.sum())
    flat_mask = masks.reshape(-1)
    flat_maps = maps.reshape(-1)
    if regions:
        pos, region, n_regions = scan_regions(masks, maps, n_pos)
        areas = np.bincount(region, minlength=n_regions).astype(np.uint32)[region]
    else:
        pos = gather_positive(flat_mask, flat_maps, n_pos)
        n_regions = 0
        areas = np.ones(n_pos, np.uint32)
    if copy_normal:
        neg: NegSource = flat_maps[~(flat_mask > 0)]
        max_scores = maps.reshape(n, -1).max(axis=1).astype(np.float64)
    else:
        neg = (flat_mask, flat_maps)
        max_scores = np.full(n, np.nan)  # one-shot pixel metrics never read image scores
    return BatchSplit(
        neg, masks.size - n_pos, pos, areas, int(n_regions), per_image > 0, max_scores, lo, hi
    )


@dataclass
class ExactPixelState:
    """All pixel scores, kept exactly (score bytes per pixel, + 4 per anomalous pixel)."""

    neg_sources: list[NegSource] = field(default_factory=list)
    pos_chunks: list[np.ndarray] = field(default_factory=list)
    area_chunks: list[np.ndarray] = field(default_factory=list)
    n_neg: int = 0
    n_regions: int = 0
    lo: float = np.inf
    hi: float = -np.inf
    _neg_sorted: bool = False

    def add(self, split: BatchSplit) -> None:
        self._neg_sorted = False
        self.neg_sources.append(split.neg)
        self.pos_chunks.append(split.pos)
        self.area_chunks.append(split.area)
        self.n_neg += split.n_neg
        self.n_regions += split.n_regions
        self.lo = min(self.lo, split.lo)
        self.hi = max(self.hi, split.hi)

    @property
    def nbytes(self) -> int:
        held = [s for s in self.neg_sources if not isinstance(s, tuple)]
        return sum(a.nbytes for a in (*held, *self.pos_chunks, *self.area_chunks))

    @property
    def n_pos(self) -> int:
        return sum(c.shape[0] for c in self.pos_chunks)

    def dtype(self) -> np.dtype:
        values = [s[1] if isinstance(s, tuple) else s for s in self.neg_sources]
        return np.result_type(*values, *self.pos_chunks, np.float32)

    def pos_and_weight(self) -> tuple[np.ndarray, np.ndarray]:
        dtype = self.dtype()
        pos = np.concatenate(self.pos_chunks).astype(dtype, copy=False)
        area = np.concatenate(self.area_chunks)
        return pos, 1.0 / area.astype(np.float64)

    def sorted_neg(self) -> np.ndarray:
        """Every normal score, ascending; consolidated in place so later calls reuse it.

        The state is a multiset, so replacing its chunks by one sorted array changes nothing
        but the cost of the next ``compute``.
        """
        if self._neg_sorted and len(self.neg_sources) == 1:
            return self.neg_sources[0]  # type: ignore[return-value]
        dtype = self.dtype()
        if len(self.neg_sources) == 1 and not isinstance(self.neg_sources[0], tuple):
            merged = self.neg_sources[0].astype(dtype, copy=False)
        else:
            merged = np.empty(self.n_neg, dtype)
            end = 0
            for source in self.neg_sources:
                if isinstance(source, tuple):
                    end = R.gather_unmasked(
                        source[0], source[1].astype(dtype, copy=False), merged, end
                    )
                else:
                    merged[end : end + source.shape[0]] = source
                    end += source.shape[0]
        self.neg_sources = [merged]
        merged.sort()  # numpy's SIMD sort, in place
        self._neg_sorted = True
        return merged

    def ranks(
        self, *, weighted: bool, floor: float = -np.inf, keep: float = 1.0
    ) -> tuple[R.PosGroups, np.ndarray, np.ndarray, int, int]:
        """Distinct anomalous scores and the exact normal-score counts below each.

        With a finite ``floor`` only the anomalous scores ``>= floor`` are returned (with
        their counts), and normal scores below it are counted, never sorted. Returns
        ``(groups, less, less_eq, n_neg, n_below_floor)``. ``keep``: the expected fraction of
        normal scores at or above the floor; chunks are read ``1 / keep`` times longer so that
        each sorts about ``CHUNK`` scores.
        """
        pos, weight = self.pos_and_weight()
        if np.isfinite(floor):  # the groups above the floor do not depend on those below it
            top = pos >= np.float64(floor)  # a float64 scalar: compared exactly, not in float32
            pos, weight = pos[top], weight[top]
        groups = R.pos_groups(pos, weight if weighted else None)
        if not np.isfinite(floor) and groups.u.size:
            floor = float(groups.u[0])  # normal scores below every anomalous one: count only
        less, less_eq, n_neg, below = neg_ranks_chunked(
            self.neg_sources, groups.u, floor=floor, chunk=int(CHUNK / keep)
        )
        return groups, less, less_eq, n_neg, below

    def sample_quantile(self, q: float, size: int = 1 << 18) -> float:
        """The ``q`` quantile of an evenly strided sample of every stored score (normal and
        anomalous), to guess a cut that keeps about ``1 - q`` of the normal scores."""
        arrays = [s[1] if isinstance(s, tuple) else s for s in self.neg_sources]
        total = sum(a.shape[0] for a in arrays)
        stride = max(1, total // size)
        sample = np.concatenate([a[::stride] for a in arrays])
        return float(np.quantile(sample, q, method="lower"))


def require_pixels(n_neg: int, n_pos: int, what: str) -> None:
    if n_pos == 0:
        raise AdmetricsError(f"{what} is undefined: no anomalous pixel (every mask is empty)")
    if n_neg == 0:
        raise AdmetricsError(f"{what} is undefined: no normal pixel (every mask is full)")


def auroc_from_ranks(
    groups: R.PosGroups, less: np.ndarray, less_eq: np.ndarray, n_neg: int
) -> float:
    n_pos = int(groups.count.sum())
    return float(R.auroc_numerator(groups, less, less_eq)) / (2.0 * n_pos * n_neg)


def check_fpr_limit(fpr_limit: float) -> float:
    try:
        limit = float(fpr_limit)
    except (TypeError, ValueError):
        limit = float("nan")
    if not (0.0 < limit <= 1.0):
        raise AdmetricsError(f"fpr_limit must be in (0, 1], got {fpr_limit!r}")
    return limit


def check_num_thresholds(num_thresholds: int | None) -> int | None:
    if num_thresholds is None:
        return None
    try:
        bad = (
            isinstance(num_thresholds, bool)
            or int(num_thresholds) != num_thresholds
            or num_thresholds < 2
        )
    except (TypeError, ValueError):
        bad = True
    if bad:
        raise AdmetricsError(
            f"num_thresholds must be None (exact) or an int >= 2, got {num_thresholds!r}"
        )
    return int(num_thresholds)


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


def exact_state_from(masks: object, maps: object, *, regions: bool = True) -> ExactPixelState:
    state = ExactPixelState()
    for m, s in iter_batches(masks, maps):
        state.add(split_batch(m, s, copy_normal=False, regions=regions))
    return state
