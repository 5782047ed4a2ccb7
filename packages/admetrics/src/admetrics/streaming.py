"""Streaming accumulator: feed batches with ``update``, read every metric with ``compute``."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _ranks as R
from ._binned import BinnedPixelState
from ._curves import aupro_from_state, auroc_from_ranks, trapezoid_to_limit
from ._exact import ExactPixelState, split_batch
from ._inputs import (
    as_numpy,
    check_fpr_limit,
    check_num_thresholds,
    iter_batches,
    label_array,
    require_pixels,
    score_array,
)
from .errors import AdmetricsError
from .functional import average_precision, image_auroc

__all__ = ["AnomalyMetrics"]


class AnomalyMetrics:
    """Image AUROC/AP, pixel AUROC/AP and AUPRO accumulated over batches.

    Exact mode (default) keeps every pixel score: per normal pixel its score (4 bytes for
    float32 maps, 8 for float64), per anomalous pixel its score plus the uint32 area of its
    ground-truth region (8 or 12 bytes), per image a label and a score (9 bytes). ``compute``
    sorts the normal scores chunk by chunk in one 8 M-score buffer per worker thread (the
    ``num_thresholds`` mode instead merges them into one sorted array, kept), needs ~24 bytes
    per anomalous pixel for their sort, and gives results identical to the one-shot functions. Binned mode (``bins=B``) keeps three length-``B``
    histograms (24 * B bytes) whatever the number of pixels, with a stated error bound (see
    ``compute``).

    Args:
        fpr_limit: AUPRO integration limit in (0, 1].
        num_thresholds: ``None`` for exact AUPRO, ``100`` for the reference MVTec 3D-AD quantile
            approximation (exact mode only).
        bins: ``None`` for exact mode, else the number of equal-width score bins.
        score_range: ``(lo, hi)`` covering every score, required in binned mode (e.g. ``(0, 1)``
            for softmax maps); a score outside raises instead of being clipped.

    Example:
        >>> import numpy as np
        >>> metrics = AnomalyMetrics()
        >>> gt = np.zeros((2, 8, 8), bool); gt[1, 2:5, 2:5] = True
        >>> metrics.update(gt, np.linspace(0, 1, 128).reshape(2, 8, 8))
        >>> gt2 = np.zeros((1, 8, 8), bool); gt2[0, :2, :2] = True
        >>> metrics.update(gt2, 0.5 + 0.4 * gt2)
        >>> {k: round(v, 4) for k, v in metrics.compute().items()}
        {'image_auroc': 1.0, 'image_ap': 1.0, 'pixel_auroc': 0.8539, 'pixel_ap': 0.2213, 'aupro': 0.581}
    """

    def __init__(
        self,
        *,
        fpr_limit: float = 0.3,
        num_thresholds: int | None = None,
        bins: int | None = None,
        score_range: tuple[float, float] | None = None,
    ) -> None:
        self.fpr_limit = check_fpr_limit(fpr_limit)
        self.num_thresholds = check_num_thresholds(num_thresholds)
        if bins is not None and self.num_thresholds is not None:
            raise AdmetricsError(
                "num_thresholds (reference quantile mode) needs exact mode, not bins"
            )
        if bins is None and score_range is not None:
            raise AdmetricsError("score_range only applies to binned mode (bins=...)")
        if bins is not None and score_range is None:
            raise AdmetricsError("binned mode needs score_range=(lo, hi) covering every score")
        self.bins = bins
        self.score_range = None if score_range is None else _score_range(score_range)
        self.reset()

    def reset(self) -> None:
        """Forget every update."""
        if self.bins is None:
            self._pixels: ExactPixelState | BinnedPixelState = ExactPixelState()
        else:
            assert self.score_range is not None
            self._pixels = BinnedPixelState(self.bins, *self.score_range)
        self._labels: list[np.ndarray] = []
        self._scores: list[np.ndarray] = []

    @property
    def nbytes(self) -> int:
        """Bytes held by the state (pixel scores or histograms, image labels and scores)."""
        return self._pixels.nbytes + sum(a.nbytes for a in (*self._labels, *self._scores))

    def update(self, masks: Any, maps: Any, labels: Any = None, scores: Any = None) -> None:
        """Add a batch.

        Args:
            masks: ``(N, H, W)`` / ``(N, 1, H, W)`` / ``(H, W)`` array or tensor, or a list of
                ``(H, W)`` masks (sizes may differ); anomalous where ``> 0``.
            maps: anomaly maps, same shape(s), finite.
            labels: ``(N,)`` image labels; default: the image's mask has an anomalous pixel.
            scores: ``(N,)`` image scores; default: the map's maximum.

        Shape:
            maps and masks ``(N, H, W)``; labels and scores ``(N,)``.
        """
        batch_labels: list[np.ndarray] = []
        batch_scores: list[np.ndarray] = []
        splits = []
        for m, s in iter_batches(masks, maps):
            split = split_batch(m, s, copy_normal=True)
            splits.append(split)
            batch_labels.append(split.labels)
            batch_scores.append(split.max_scores)
        n = sum(len(b) for b in batch_labels)
        img_labels = np.concatenate(batch_labels)
        img_scores = np.concatenate(batch_scores)
        if labels is not None:
            img_labels = label_array(as_numpy(labels, "labels").reshape(-1), "labels")
            if img_labels.shape[0] != n:
                raise AdmetricsError(f"labels has {img_labels.shape[0]} entries for {n} images")
        if scores is not None:
            img_scores = score_array(as_numpy(scores, "scores").reshape(-1), "scores")
            if img_scores.shape[0] != n:
                raise AdmetricsError(f"scores has {img_scores.shape[0]} entries for {n} images")
        # validate everything before mutating, so a rejected batch leaves the state unchanged
        if isinstance(self._pixels, BinnedPixelState):
            for split in splits:
                self._pixels.check(split)
        for split in splits:
            self._pixels.add(split)
        self._labels.append(img_labels)
        self._scores.append(img_scores)

    def compute(self) -> dict[str, float]:
        """Return ``image_auroc``, ``image_ap``, ``pixel_auroc``, ``pixel_ap`` and ``aupro``.

        In binned mode the dict also has ``pixel_auroc_bound`` and ``aupro_bound``: guaranteed
        bounds on the absolute difference to the exact values (see :mod:`admetrics._binned`).

        Raises:
            AdmetricsError: nothing was added, or a metric is undefined (e.g. no normal image).
        """
        if not self._labels:
            raise AdmetricsError("compute() called before any update()")
        labels = np.concatenate(self._labels)
        scores = np.concatenate(self._scores)
        out = {
            "image_auroc": image_auroc(labels, scores),
            "image_ap": average_precision(labels, scores),
        }
        pixels = self._pixels
        if isinstance(pixels, BinnedPixelState):
            auroc, auroc_bound = pixels.auroc()
            pro, pro_bound = pixels.aupro(self.fpr_limit)
            out.update(
                pixel_auroc=auroc,
                pixel_ap=pixels.average_precision(),
                aupro=pro,
                pixel_auroc_bound=auroc_bound,
                aupro_bound=pro_bound,
            )
            return out
        require_pixels(pixels.n_neg, pixels.n_pos, "pixel AUROC")
        groups, less, less_eq, n_neg, _ = pixels.ranks(weighted=True)
        out["pixel_auroc"] = auroc_from_ranks(groups, less, less_eq, n_neg)
        out["pixel_ap"] = R.average_precision(groups, less, n_neg)
        if self.num_thresholds is None:
            x, y = R.pro_polyline(groups, less, less_eq, n_neg, pixels.n_regions)
            out["aupro"] = trapezoid_to_limit(x, y, self.fpr_limit) / self.fpr_limit
        else:
            out["aupro"] = aupro_from_state(pixels, self.fpr_limit, self.num_thresholds)
        return out


def _score_range(score_range: object) -> tuple[float, float]:
    # float() of a string or a one-element range failed with errors naming no argument
    try:
        lo, hi = (float(v) for v in score_range)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise AdmetricsError(
            f"score_range must be two numbers (lo, hi), got {score_range!r}"
        ) from None
    return lo, hi
