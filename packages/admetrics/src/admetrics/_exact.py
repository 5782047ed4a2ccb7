"""The exact pixel state, shared by the one-shot functions and the streaming
:class:`AnomalyMetrics`.

State is a multiset of scores split by ground truth:

* exact: normal-pixel scores (``neg``), anomalous-pixel scores (``pos``) and, per anomalous pixel,
  the area of the 8-connected ground-truth region it belongs to (``area``, uint32);
* binned (see ``_binned``): three fixed-size histograms.

Both states take a batch as :func:`split_batch` cuts it. Regions never span images, so a region's
area is final when its image is added: PRO(t) is ``sum(1 / area over anomalous pixels >= t) /
n_regions`` and no per-region state is needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import _ranks as R
from ._inputs import check_finite, iter_batches
from ._negranks import CHUNK, NegSource, neg_ranks_chunked
from ._scan import count_positive, gather_positive, scan_regions

__all__ = ["BatchSplit", "ExactPixelState", "exact_state_from", "split_batch"]


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


def exact_state_from(masks: object, maps: object, *, regions: bool = True) -> ExactPixelState:
    state = ExactPixelState()
    for m, s in iter_batches(masks, maps):
        state.add(split_batch(m, s, copy_normal=False, regions=regions))
    return state
