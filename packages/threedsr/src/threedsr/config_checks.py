"""Field checks shared by the config dataclasses: a value of the wrong type or range fails at
construction, in one line naming the config and the field, instead of deep in training (a
TypeError from a comparison, a zero-width layer, NaN weights)."""

from __future__ import annotations

import math
import numbers
from typing import Any

from threedsr.errors import ThreedsrError

__all__ = ["check_bool", "check_int", "check_number", "check_range", "is_finite_real"]


def is_finite_real(value: Any) -> bool:
    """A finite real number (numpy's too), not a bool: NaN passes every failed comparison."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _fail(owner: str, field: str, why: str, value: Any) -> ThreedsrError:
    return ThreedsrError(f"{owner}: {field} must be {why}, got {value!r}")


def check_int(owner: str, field: str, value: Any, low: int, *, optional: bool = False) -> None:
    """An int (numpy ints too, never a bool) >= ``low``; ``None`` when ``optional``.

    Example:
        >>> check_int("ModelConfig", "unet_base", 0, 1)
        Traceback (most recent call last):
        ...
        threedsr.errors.ThreedsrError: ModelConfig: unet_base must be an int >= 1, got 0
    """
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise _fail(owner, field, f"an int >= {low}", value)


def check_number(
    owner: str,
    field: str,
    value: Any,
    low: float,
    high: float = math.inf,
    *,
    open_low: bool = False,
    optional: bool = False,
) -> None:
    """A finite real number in ``[low, high]`` (``(low, high]`` when ``open_low``).

    Example:
        >>> check_number("LossConfig", "focal_gamma", -1.0, 0.0)
        Traceback (most recent call last):
        ...
        threedsr.errors.ThreedsrError: LossConfig: focal_gamma must be a finite number >= 0.0, got -1.0
    """
    if value is None and optional:
        return
    ok = is_finite_real(value) and (value > low if open_low else value >= low) and value <= high
    if not ok:
        bound = f"> {low}" if open_low else f">= {low}"
        why = f"a finite number {bound}" + ("" if high == math.inf else f" and <= {high}")
        raise _fail(owner, field, why, value)


def check_range(owner: str, field: str, value: Any, low: float, high: float = math.inf) -> None:
    """Two finite numbers ``(lo, hi)`` with ``low <= lo <= hi <= high``.

    Example:
        >>> check_range("AnomalyConfig", "mask_threshold", (0.8, 0.4), 0.0)
        Traceback (most recent call last):
        ...
        threedsr.errors.ThreedsrError: AnomalyConfig: mask_threshold must be (lo, hi) with 0.0 <= lo <= hi, got (0.8, 0.4)
    """
    try:
        lo, hi = (float(v) for v in value)
        ok = math.isfinite(lo) and math.isfinite(hi) and low <= lo <= hi <= high
    except (TypeError, ValueError):
        ok = False
    if not ok:
        upper = "" if high == math.inf else f" <= {high}"
        raise _fail(owner, field, f"(lo, hi) with {low} <= lo <= hi{upper}", value)


def check_bool(owner: str, field: str, value: Any, *, optional: bool = False) -> None:
    """True or False (``None`` when ``optional``): ``bool("no")`` is True."""
    if value is None and optional:
        return
    if not isinstance(value, bool):
        raise _fail(owner, field, "True or False" + (" or None" if optional else ""), value)
