"""Choosing an image-score threshold from anomaly-free validation scans, after the fact.

A detector written by :func:`~threedsr.train_detector` carries its own calibrated threshold
(:class:`~threedsr.calibration.DisplayScale`); this chooses one again, on other good scans or by
another rule (``max`` flags none of them, ``quantile`` accepts a fraction as normal). It is a rule
over scores, so a caller that already holds scores (the CLI's ``predict``) needs no detector."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from threedsr.errors import ThreedsrError, require_detector
from threedsr.inference import Detector
from threedsr.sample_predictions import predict_samples

__all__ = ["choose_threshold", "flagged_at"]


def choose_threshold(
    detector: Detector | None = None,
    samples: Iterable[Any] | None = None,
    *,
    scores: Sequence[float] | np.ndarray | None = None,
    method: str = "max",
    quantile: float = 0.99,
    margin: float = 0.0,
) -> float:
    """An image-score threshold from anomaly-free validation samples.

    ``method="max"``: the largest validation score (no validation sample flagged) plus ``margin``;
    ``method="quantile"``: the ``quantile`` of validation scores (accepts that fraction as normal).
    Pass either ``detector`` + ``samples`` or precomputed ``scores``.

    Example:
        >>> choose_threshold(scores=[0.1, 0.3, 0.2])
        0.3
        >>> round(choose_threshold(scores=np.linspace(0, 1, 101), method="quantile", quantile=0.9), 6)
        0.9
    """
    if scores is None:
        if detector is None or samples is None:
            raise ThreedsrError("choose_threshold: pass detector and samples, or scores")
        require_detector(detector, "choose_threshold")
        scores = [p.score for p in predict_samples(detector, samples)]
    arr = np.asarray(scores, dtype=np.float64)
    if arr.size == 0:
        raise ThreedsrError("choose_threshold: no validation scores")
    if not np.isfinite(arr).all():
        raise ThreedsrError("choose_threshold: validation scores contain NaN or inf")
    if not math.isfinite(margin):
        raise ThreedsrError(f"choose_threshold: margin must be finite, got {margin}")
    if method == "max":
        return float(arr.max() + margin)
    if method == "quantile":
        if not 0.0 <= quantile <= 1.0:
            raise ThreedsrError(f"choose_threshold: quantile must be in [0, 1], got {quantile}")
        return float(np.quantile(arr, quantile) + margin)
    raise ThreedsrError(f"choose_threshold: unknown method {method!r} (max or quantile)")


def flagged_at(
    labels: Sequence[int] | np.ndarray,
    scores: Sequence[float] | np.ndarray,
    threshold: float,
    source: str | None = None,
) -> dict[str, Any]:
    """How many good and defective scans score above ``threshold``: what ``predict`` would
    call anomalous, the operating point that the threshold-free AUROC does not show.

    Example:
        >>> flagged_at([0, 0, 1, 1], [0.2, 0.6, 0.5, 0.9], 0.55, "validation")
        {'threshold': 0.55, 'source': 'validation', 'good_flagged': 1, 'n_good': 2, \
'defective_flagged': 1, 'n_defective': 2}
    """
    lab = np.asarray(labels).astype(bool)
    sc = np.asarray(scores, dtype=np.float64)
    if lab.ndim != 1 or lab.shape != sc.shape:
        # numpy broadcast a length-1 side over the other, or raised its own ValueError.
        raise ThreedsrError(
            f"flagged_at: labels and scores must be two equal-length 1-D sequences, got "
            f"shapes {lab.shape} and {sc.shape}"
        )
    if not math.isfinite(threshold):
        # Nothing scores above NaN: every scan would read as passed.
        raise ThreedsrError(f"flagged_at: threshold must be finite, got {threshold}")
    above = sc > threshold
    return {
        "threshold": float(threshold),
        "source": source,
        "good_flagged": int((above & ~lab).sum()),
        "n_good": int((~lab).sum()),
        "defective_flagged": int((above & lab).sum()),
        "n_defective": int(lab.sum()),
    }
