"""How a run's settings differ from those a folder's run was made with, in one short line: what
a refused ``--out`` names (:func:`threedsr_cli.runs.claim_run`)."""

from __future__ import annotations

from typing import Any

__all__ = ["describe_settings_diff"]


def describe_settings_diff(old: Any, new: Any) -> str:
    """The settings that differ, nested keys dotted, values cut short; many differences are
    summarised by their names.

    Example:
        >>> old, new = {"a": 1, "p": {"x": 1, "y": 2}}, {"a": 1, "p": {"x": 3, "y": 2}}
        >>> describe_settings_diff(old, new)
        'p.x 1 -> 3'
    """
    diffs = _diff_pairs(old, new, "")
    text = ", ".join(f"{k} {_short(a)} -> {_short(b)}" for k, a, b in diffs)
    if len(text) <= 200:
        return text
    names = ", ".join(k for k, _, _ in diffs[:4])
    return f"{names} and {len(diffs) - 4} more settings" if len(diffs) > 4 else names


def _diff_pairs(old: Any, new: Any, prefix: str) -> list[tuple[str, Any, Any]]:
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return [(prefix, old, new)]
    pairs = []
    for k in sorted(set(old) | set(new), key=str):
        if old.get(k) != new.get(k):
            pairs += _diff_pairs(old.get(k), new.get(k), f"{prefix}.{k}" if prefix else str(k))
    return pairs


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
