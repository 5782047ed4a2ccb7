"""One detector's colour scale for anomaly maps (:mod:`threedsr_cli.overlays` draws on it): its
calibrated display scale, or the whole (0, 1) range of a map when it has none."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["FALLBACK_SCALE", "MapScale", "display_scale", "score_text"]


#: The fallback colour scale of a detector without a calibrated display scale: every threedsr map
#: is a softmax probability (or the logistic-squashed fusion with the feature memory), so it lies
#: in (0, 1) and [0, 1] is its whole range, the same for every scan and every call.
FALLBACK_SCALE = (0.0, 1.0)


def score_text(value: float, digits: int = 4) -> str:
    """``value`` with ``digits`` significant digits, or as many more as it takes not to print a
    score below 1 as "1": a memory map is a logistic, and a class whose good scans score high
    on it (CandyCane's threshold: 0.9999864) would read "threshold 1".

    Example:
        >>> score_text(0.9999864), score_text(0.42), score_text(1.0)
        ('0.99999', '0.42', '1')
    """
    value = float(value)
    text = f"{value:.{digits}g}"
    while float(text) == 1.0 != value and digits < 9:
        digits += 1
        text = f"{value:.{digits}g}"
    return text


@dataclass(frozen=True)
class MapScale:
    """One detector's colour scale for anomaly maps: ``low`` (transparent) to ``high``.

    Fixed by the detector, never by the maps being drawn, so a scan gets the same picture alone or
    among others. ``source`` is ``"detector"`` (a calibrated display scale) or ``"fixed"``
    (:data:`FALLBACK_SCALE`); ``calibration`` says on what the detector calibrated it.
    """

    low: float
    high: float
    threshold: float | None = None
    source: str = "fixed"
    calibration: str | None = None

    @property
    def range(self) -> tuple[float, float]:
        return (self.low, self.high)


def _field(display: Any, name: str) -> Any:
    """An attribute of the display scale, or its key (a sidecar may hold it as a plain dict)."""
    if isinstance(display, Mapping):
        return display.get(name)
    return getattr(display, name, None)


def display_scale(detector: Any) -> MapScale:
    """The colour scale of ``detector``'s maps (a ``threedsr.Detector`` or ``OnnxDetector``).

    Its ``display`` (``low``, ``high``, ``threshold``, ``source``: calibrated on good validation
    scans) when it has one; otherwise :data:`FALLBACK_SCALE`, the whole (0, 1) range of a map,
    with no threshold. Never the min-max of the maps at hand: that would paint a lone good scan
    red edge to edge and give a scan another picture in other company.

    Example:
        >>> display_scale(object())
        MapScale(low=0.0, high=1.0, threshold=None, source='fixed', calibration=None)
    """
    display = getattr(detector, "display", None)
    if display is None:
        return MapScale(*FALLBACK_SCALE)
    threshold = _field(display, "threshold")
    calibration = _field(display, "source")
    return MapScale(
        float(_field(display, "low")),
        float(_field(display, "high")),
        None if threshold is None else float(threshold),
        "detector",
        None if calibration is None else str(calibration),
    )
