"""The single exception type admetrics raises for bad input or undefined metrics."""

from __future__ import annotations

__all__ = ["AdmetricsError"]


class AdmetricsError(ValueError):
    """A metric cannot be computed from the given input.

    Raised for malformed input (shape mismatch, NaN/inf scores, non-binary labels, empty input)
    and for metrics that are undefined on the data (e.g. AUROC without any anomalous sample).
    It subclasses :class:`ValueError`, so ``except ValueError`` also catches it.
    """
