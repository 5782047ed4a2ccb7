"""One-shot metrics: image/pixel AUROC and AP, ROC and PRO curves, AUPRO.

All AUROC/AP values are exact (every distinct score is a threshold; tied scores form one
threshold) and equal scikit-learn's ``roc_auc_score`` / ``average_precision_score``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _kernels as K
from . import _ranks as R
from ._curves import aupro_from_state, auroc_from_ranks, cut_curve, quantile_pro_curve
from ._exact import exact_state_from
from ._inputs import check_fpr_limit, check_num_thresholds, image_arrays, require_pixels
from .errors import AdmetricsError

__all__ = [
    "aupro",
    "average_precision",
    "image_auroc",
    "pixel_auroc",
    "pixel_average_precision",
    "pro_curve",
    "roc_curve",
]


def _image_ranks(labels: Any, scores: Any):
    lab, sc = image_arrays(labels, scores)
    neg, pos = sc[~lab], sc[lab]
    groups = R.pos_groups(pos)
    less, less_eq, n_neg = R.neg_ranks(np.sort(neg), groups.u)
    return groups, less, less_eq, n_neg


def _split_sorted(labels: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    lab, sc = image_arrays(labels, scores)
    return np.sort(sc[~lab]), np.sort(sc[lab])


def image_auroc(labels: Any, scores: Any) -> float:
    """Area under the ROC curve of per-sample scores.

    Args:
        labels: ``(N,)`` bool or 0/1 values, 1 = anomalous.
        scores: ``(N,)`` finite scores, higher = more anomalous.

    Returns:
        AUROC in [0, 1]; tied scores count one half (constant scores give exactly 0.5).

    Raises:
        AdmetricsError: no anomalous or no normal sample, NaN/inf scores, non-0/1 labels,
            length mismatch, empty input.

    Example:
        >>> image_auroc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
        0.75
    """
    groups, less, less_eq, n_neg = _image_ranks(labels, scores)
    if groups.u.size == 0:
        raise AdmetricsError("image AUROC is undefined: no anomalous sample (label 1)")
    if n_neg == 0:
        raise AdmetricsError("image AUROC is undefined: no normal sample (label 0)")
    return auroc_from_ranks(groups, less, less_eq, n_neg)


def average_precision(labels: Any, scores: Any) -> float:
    """Average precision, ``sum_k (R_k - R_{k-1}) * P_k`` over distinct thresholds.

    Same definition as ``sklearn.metrics.average_precision_score`` (no interpolation).

    Args:
        labels: ``(N,)`` bool or 0/1 values, 1 = anomalous.
        scores: ``(N,)`` finite scores.

    Returns:
        AP in [0, 1]. Without any normal sample AP is 1.0.

    Raises:
        AdmetricsError: no anomalous sample, or invalid input as in :func:`image_auroc`.

    Example:
        >>> round(average_precision([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]), 4)
        0.8333
    """
    groups, less, _, n_neg = _image_ranks(labels, scores)
    if groups.u.size == 0:
        raise AdmetricsError("average precision is undefined: no anomalous sample (label 1)")
    return R.average_precision(groups, less, n_neg)


def roc_curve(labels: Any, scores: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve at every distinct score (no point dropped), for plotting.

    Returns:
        ``(fpr, tpr, thresholds)``, each of length (distinct scores + 1); the first point is
        (0, 0) at threshold ``+inf``; a sample is positive when ``score >= threshold``.

    Example:
        >>> fpr, tpr, thr = roc_curve([0, 1, 1], [0.2, 0.2, 0.9])
        >>> fpr.tolist(), tpr.tolist(), thr.tolist()
        ([0.0, 0.0, 1.0], [0.0, 0.5, 1.0], [inf, 0.9, 0.2])
    """
    neg, pos = _split_sorted(labels, scores)
    if pos.size == 0 or neg.size == 0:
        raise AdmetricsError("ROC curve is undefined: need both normal and anomalous samples")
    fps, tps, thr = K.roc_points(neg, pos)
    return fps / neg.size, tps / pos.size, thr


def pixel_auroc(masks: Any, maps: Any) -> float:
    """Pixel-level AUROC over all pixels of all images (background included).

    Args:
        masks: ground truth, ``(N, H, W)``, ``(N, 1, H, W)`` or ``(H, W)`` array/tensor, or a list
            of ``(H, W)`` arrays that may differ in size; a pixel is anomalous when ``mask > 0``.
        maps: anomaly maps of the same shape(s), finite, higher = more anomalous.

    Returns:
        Exact AUROC, equal to ``roc_auc_score(masks.ravel() > 0, maps.ravel())``.

    Raises:
        AdmetricsError: no anomalous or no normal pixel, NaN/inf, shape mismatch, empty input.

    Shape:
        masks and maps: ``(N, H, W)`` (or per-image ``(H_i, W_i)`` lists).

    Example:
        >>> import numpy as np
        >>> gt = np.zeros((1, 4, 4), bool); gt[0, 1:3, 1:3] = True
        >>> pixel_auroc(gt, gt * 0.9 + 0.05)
        1.0
    """
    state = exact_state_from(masks, maps, regions=False)
    require_pixels(state.n_neg, state.n_pos, "pixel AUROC")
    return auroc_from_ranks(*state.ranks(weighted=False)[:4])


def pixel_average_precision(masks: Any, maps: Any) -> float:
    """Pixel-level average precision (same inputs as :func:`pixel_auroc`).

    Example:
        >>> import numpy as np
        >>> gt = np.zeros((1, 4, 4), bool); gt[0, 1:3, 1:3] = True
        >>> pixel_average_precision(gt, gt * 0.9 + 0.05)
        1.0
    """
    state = exact_state_from(masks, maps, regions=False)
    if state.n_pos == 0:
        raise AdmetricsError("pixel AP is undefined: no anomalous pixel (every mask is empty)")
    groups, less, _, n_neg, _ = state.ranks(weighted=False)
    return R.average_precision(groups, less, n_neg)


def pro_curve(
    masks: Any,
    maps: Any,
    *,
    num_thresholds: int | None = None,
    fpr_limit: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-region-overlap (PRO) curve.

    Ground-truth regions are the 8-connected components of ``mask > 0`` in each image. At a
    threshold ``t``, PRO is the mean over all regions of all images of the fraction of the region's
    pixels with ``score >= t``; FPR is the fraction of all normal pixels with ``score >= t``.

    Args:
        masks: as in :func:`pixel_auroc`.
        maps: as in :func:`pixel_auroc`.
        num_thresholds: ``None`` for the exact curve; an int for the reference MVTec 3D-AD
            quantile thresholds (see :func:`aupro`).
        fpr_limit: if given, cut the curve at this FPR, with an interpolated end point.

    Returns:
        ``(fpr, pro)`` float64 arrays, FPR non-decreasing. The exact curve is given by its
        corners, from (0, 0) to (1, 1): the points at each distinct anomalous-pixel score (a tie
        with normal pixels is one diagonal step) and the ends of the horizontal runs between them,
        where only normal pixels change side. Drawing straight lines between the returned points
        reproduces the curve through every distinct score exactly, with at most
        2 x (distinct anomalous scores) + 2 points instead of one per distinct score.

    Example:
        >>> import numpy as np
        >>> gt = np.zeros((1, 4, 4), bool); gt[0, 0, 0] = True
        >>> fpr, pro = pro_curve(gt, gt * 1.0)
        >>> fpr.tolist(), pro.tolist()
        ([0.0, 0.0, 1.0], [0.0, 1.0, 1.0])
    """
    num_thresholds = check_num_thresholds(num_thresholds)
    state = exact_state_from(masks, maps)
    require_pixels(state.n_neg, state.n_pos, "PRO curve")
    if num_thresholds is None:
        groups, less, less_eq, n_neg, _ = state.ranks(weighted=True)
        fpr, pro = R.pro_polyline(groups, less, less_eq, n_neg, state.n_regions)
        repeated = np.zeros(fpr.shape[0], bool)
        repeated[1:] = (fpr[1:] == fpr[:-1]) & (pro[1:] == pro[:-1])
        fpr, pro = fpr[~repeated], pro[~repeated]
    else:
        pos, weight = state.pos_and_weight()
        groups = R.pos_groups(pos, weight)
        fpr, pro = quantile_pro_curve(state.sorted_neg(), groups, state.n_regions, num_thresholds)
    if fpr_limit is not None:
        return cut_curve(fpr, pro, check_fpr_limit(fpr_limit))
    return fpr, pro


def aupro(
    masks: Any,
    maps: Any,
    *,
    fpr_limit: float = 0.3,
    num_thresholds: int | None = None,
) -> float:
    """Normalised area under the PRO curve up to ``fpr_limit`` (MVTec AD / 3D-AD AUPRO).

    The PRO curve (see :func:`pro_curve`) is integrated with the trapezoid rule from FPR 0 to
    ``fpr_limit``, the crossing segment interpolated at the limit, and divided by ``fpr_limit``.

    Args:
        masks: as in :func:`pixel_auroc`; regions are 8-connected components of ``mask > 0``.
        maps: as in :func:`pixel_auroc`.
        fpr_limit: integration limit in (0, 1].
        num_thresholds: ``None`` (default): exact, every distinct score is a threshold and ties
            form one threshold. ``100`` reproduces the reference MVTec 3D-AD evaluation code
            (``au_pro_util.calculate_au_pro``): thresholds at equally spaced positions of the
            sorted normal-pixel scores, FPR taken from the position, region pixels counted when
            strictly above the threshold. Use it only for parity with published numbers.

    Returns:
        AUPRO in [0, 1]. Constant maps give ``fpr_limit / 2`` (the diagonal).

    Raises:
        AdmetricsError: no anomalous or no normal pixel, NaN/inf, shape mismatch, empty input,
            ``fpr_limit`` outside (0, 1].

    Example:
        >>> import numpy as np
        >>> gt = np.zeros((2, 8, 8), bool); gt[0, 1:3, 1:3] = True; gt[1, 5:, 5:] = True
        >>> aupro(gt, gt.astype(np.float32))
        1.0
        >>> round(aupro(gt, np.zeros((2, 8, 8))), 6)
        0.15
    """
    limit = check_fpr_limit(fpr_limit)
    num_thresholds = check_num_thresholds(num_thresholds)
    return aupro_from_state(exact_state_from(masks, maps), limit, num_thresholds)
