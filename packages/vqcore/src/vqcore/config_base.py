"""What every configuration dataclass of the workspace shares (``ConfigMixin``), and the rules
its presets share (``milestones_at``, ``Setup``/``SETUPS``).

threedsr's configs use this module too (threedsr may import vqcore, never the reverse).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

from .errors import VqcoreError

__all__ = ["SETUPS", "ConfigMixin", "Setup", "milestones_at"]

#: The three input setups: 4-channel [D, R, G, B], depth alone, RGB alone.
Setup = Literal["rgbd", "depth", "rgb"]
SETUPS: tuple[str, ...] = ("rgbd", "depth", "rgb")


def milestones_at(iterations: int, *fractions: float) -> tuple[int, ...]:
    """Learning-rate milestones at ``fractions`` of ``iterations`` (default: 80 %), the
    reference's ``int(0.8 * epochs)``; every preset of both stages uses this rule.

    Example:
        >>> milestones_at(400), milestones_at(300, 0.8, 0.9)
        ((320,), (240, 270))
    """
    return tuple(int(f * int(iterations)) for f in fractions or (0.8,))


class ConfigMixin:
    """``preset`` / ``to_dict`` / ``from_dict`` / ``replace`` for a frozen config dataclass.

    A subclass sets, as needed:

    - ``_error``: the exception type of its package (unknown fields, unknown presets).
    - ``_PRESET_MESSAGE``: the unknown-preset message (``{name}`` and ``{presets}`` filled in).
    - ``_PRESET_DROPS_NONE``: ``preset`` ignores ``None`` overrides (unset CLI flags).
    - ``_NESTED``: field -> config class, rebuilt from a dict by ``from_dict``; ``preset``
      takes a nested config's fields as plain overrides.
    """

    _error: ClassVar[type[Exception]] = VqcoreError
    _PRESETS: ClassVar[tuple[str, ...]] = ("paper", "cpu")
    _PRESET_MESSAGE: ClassVar[str] = "unknown preset {name!r} (expected 'paper' or 'cpu')"
    _PRESET_DROPS_NONE: ClassVar[bool] = True
    #: Preset name -> the classmethod that builds it, where the two differ (a preset may share
    #: its name with a field, e.g. threedsr's ``memory``).
    _PRESET_BUILDERS: ClassVar[dict[str, str]] = {}
    _NESTED: ClassVar[dict[str, type[ConfigMixin]]] = {}

    @classmethod
    def preset(cls, name: str, *args: Any, **overrides: Any) -> Self:
        """The preset ``name`` (``paper`` or ``cpu``): ``cls.<name>(*args, **overrides)``.

        Raises:
            The class's error type for an unknown name.
        """
        if name not in cls._PRESETS:
            raise cls._error(cls._PRESET_MESSAGE.format(name=name, presets=cls._PRESETS))
        if cls._PRESET_DROPS_NONE:
            overrides = {k: v for k, v in overrides.items() if v is not None}
        return getattr(cls, cls._PRESET_BUILDERS.get(name, name))(*args, **overrides)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of str/int/float/bool/None/list/dict (checkpoint- and JSON-safe: safe for
        ``torch.load(weights_only=True)``); nested configs become dicts."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        if not isinstance(data, Mapping):  # dict() of a list failed naming no config
            raise cls._error(
                f"{cls.__name__}.from_dict: expected a mapping of fields, got {data!r}"
            )
        d = dict(data)
        cls._check_known(d)
        for key, value in d.items():
            if key in cls._NESTED and isinstance(value, dict):
                d[key] = cls._NESTED[key].from_dict(value)
            elif isinstance(value, list):
                d[key] = tuple(value)
        return cls(**d)

    def replace(self, **changes: Any) -> Self:
        """A copy with some fields changed; a nested config's fields may be named alone, as in
        :meth:`preset` (``cfg.replace(unet_base=4)``). Unknown names raise the class's error.
        """
        over = self._flat_overrides(changes)
        for name in self._NESTED:
            if name not in changes and isinstance(over.get(name), dict):
                over[name] = getattr(self, name).replace(**over[name])
        self._check_known(over)
        return dataclasses.replace(self, **over)  # type: ignore[type-var]

    @classmethod
    def _with_overrides(cls, base: dict[str, Any], overrides: dict[str, Any]) -> Self:
        """``cls(**base)`` with ``overrides`` applied: a nested config's plain fields change the
        base's part, unknown names raise the class's error (not a TypeError)."""
        over = cls._flat_overrides(overrides)
        for name, part in cls._NESTED.items():
            if name not in overrides and isinstance(over.get(name), dict):
                current = base.get(name) or part()
                over[name] = current.replace(**over[name])
        base = {**base, **over}
        cls._check_known(base)
        return cls(**base)

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]

    @classmethod
    def _check_known(cls, data: dict[str, Any]) -> None:
        unknown = sorted(set(data) - cls.field_names())
        if unknown:
            raise cls._error(f"{cls.__name__}: unknown fields {unknown}")

    @classmethod
    def _flat_overrides(cls, kwargs: dict[str, Any]) -> dict[str, Any]:
        """``kwargs`` with each nested config's field, named alone, gathered under its part
        (``{"unet_base": 4}`` -> ``{"model": {"unet_base": 4}}``): presets take them flat."""
        fields = cls.field_names()
        out: dict[str, Any] = {}
        parts: dict[str, dict[str, Any]] = {}
        for key, value in kwargs.items():
            part = None
            if key not in fields:
                part = next((p for p, c in cls._NESTED.items() if key in c.field_names()), None)
            if part is None:
                out[key] = value
            else:
                parts.setdefault(part, {})[key] = value
        for part, changes in parts.items():
            current = out.get(part)
            if current is None or isinstance(current, dict):
                out[part] = {**(current or {}), **changes}
            else:
                out[part] = dataclasses.replace(current, **changes)
        return out


def _plain(value: Any) -> Any:
    if isinstance(value, ConfigMixin):
        return value.to_dict()
    if isinstance(value, (Path, os.PathLike)):
        return os.fspath(value)
    if isinstance(value, str):
        return str(value)  # a str subclass would not survive torch.load(weights_only=True)
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value
