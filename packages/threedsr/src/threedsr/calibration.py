"""Scales fixed by the detector: the good-scan statistics that fuse two maps, and the display
scale that colours every map of a detector the same way, calibrated on validation good scans."""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from threedsr.config_checks import is_finite_real
from threedsr.smoothing import smooth_maps

__all__ = ["DisplayScale", "MapCalibration", "display_scale", "finish_maps", "fuse_maps"]


class _Stats(NamedTuple):
    mean: float
    std: float


class MapCalibration(_Stats):
    """Mean and standard deviation of a map's pixels on good scans.

    Both must be finite and ``std >= 0``: a NaN or infinite one turns every map NaN or
    constant without a word (a checkpoint's, or a fit that went wrong). A zero ``std`` is a
    fit on maps that were constant; :meth:`normalise` floors it.

    Example:
        >>> MapCalibration(0.2, float("nan"))
        Traceback (most recent call last):
        ...
        ValueError: MapCalibration: std must be a finite number >= 0, got nan
    """

    __slots__ = ()

    def __new__(cls, mean: float, std: float) -> MapCalibration:
        for name, value in (("mean", mean), ("std", std)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(
                    f"MapCalibration: {name} must be a real number, got {type(value).__name__}"
                )
        if not is_finite_real(mean):
            raise ValueError(f"MapCalibration: mean must be a finite number, got {mean!r}")
        if not (is_finite_real(std) and std >= 0):
            raise ValueError(f"MapCalibration: std must be a finite number >= 0, got {std!r}")
        return super().__new__(cls, float(mean), float(std))

    def normalise(self, m: Tensor) -> Tensor:
        return (m - self.mean) / max(self.std, 1e-8)


def fuse_maps(
    heads_map: Tensor,
    memory: Tensor,
    heads_cal: MapCalibration,
    memory_cal: MapCalibration,
    weight: float,
    *,
    squash: bool = True,
) -> Tensor:
    """``weight * z(memory) + (1 - weight) * z(heads)``, each z-scored with good scans' pixel
    statistics, then squashed by a logistic so the map stays in (0, 1) like a probability map
    (``squash=False``: the logit itself, for :func:`finish_maps` to squash after smoothing).
    The memory alone is ``weight=1`` (its heads' term then vanishes).

    Example:
        >>> m = torch.tensor([1.0]); cal = MapCalibration(1.0, 1.0)
        >>> float(fuse_maps(m, m, cal, cal, 0.5)), float(fuse_maps(2 * m, m, cal, cal, 1.0, squash=False))
        (0.5, 0.0)
    """
    z = weight * memory_cal.normalise(memory)
    if weight < 1.0:
        z = z + (1.0 - weight) * heads_cal.normalise(heads_map)
    return torch.sigmoid(z) if squash else z


def finish_maps(
    pre: Tensor, squash_after: bool, smoothing: str, size: int, sigma: float
) -> tuple[Tensor, Tensor]:
    """The smoothed map and the raw map of a method's pre-smoothing map ``pre``.

    ``squash_after``: ``pre`` is a logit (:func:`fuse_maps` with ``squash=False``), smoothed
    first and squashed after, so that the image score (the smoothed map's maximum) ranks as the
    smoothed logit does. Squashed first, the box average of values near 1 measures how much of
    the window lies on the object more than how abnormal it is (package README, row 40).

    Example:
        >>> z = torch.full((1, 3, 3), 2.0)
        >>> smoothed, raw = finish_maps(z, True, "none", 1, 4.0)
        >>> torch.allclose(smoothed, torch.sigmoid(z)), torch.equal(smoothed, raw)
        (True, True)
    """
    smoothed = smooth_maps(pre, smoothing, size, sigma)
    if squash_after:
        return torch.sigmoid(smoothed), torch.sigmoid(pre)
    return smoothed, pre


class DisplayScale(NamedTuple):
    """How a detector's maps are coloured, the same for every scan and every call.

    ``low`` is where good scans' object pixels sit (their 95th percentile), ``threshold`` the
    calibrated image-score threshold (the largest good validation score), and ``high`` puts the
    threshold two thirds up the colour bar, so a good scan stays in the lower part and a defect
    above the threshold is in the top third.

    Attributes:
        low, high: the colour scale's ends.
        threshold: the image-score threshold.
        source: the scans it was calibrated on (``validation`` or ``training``).
    """

    low: float
    high: float
    threshold: float
    source: str

    def normalise(self, m: np.ndarray) -> np.ndarray:
        """``m`` mapped to [0, 1] (``low`` -> 0, ``high`` -> 1, clipped)."""
        span = max(self.high - self.low, 1e-12)
        return np.clip((np.asarray(m, np.float64) - self.low) / span, 0.0, 1.0)

    def state(self) -> dict[str, Any]:
        return self._asdict()

    @classmethod
    def from_state(cls, state: dict[str, Any] | None) -> DisplayScale | None:
        return None if not state else cls(**state)


def display_scale(maps: np.ndarray, foreground: np.ndarray | None, source: str) -> DisplayScale:
    """The display scale of a detector from its smoothed maps of good scans.

    Args:
        maps: (N, H, W) smoothed maps of good scans (validation scans: never seen in training).
        foreground: (N, H, W) bool object pixels, or None (every pixel).
        source: where the scans come from.

    Example:
        >>> s = display_scale(np.linspace(0, 1, 100).reshape(1, 10, 10), None, "validation")
        >>> round(s.low, 3), s.threshold, round(s.high, 3)
        (0.95, 1.0, 1.025)
    """
    maps = np.asarray(maps, np.float64)
    pixels = maps[foreground] if foreground is not None and foreground.any() else maps.ravel()
    low = float(np.quantile(pixels, 0.95))
    threshold = float(maps.reshape(len(maps), -1).max(axis=1).max())
    high = low + 1.5 * max(threshold - low, 1e-6)
    return DisplayScale(low, high, threshold, source)
