"""What every configuration dataclass of the workspace shares (``ConfigMixin``), and the rules
its presets share (``milestones_at``, ``Setup``/``SETUPS``).

threedsr's configs use this module too (threedsr may import vqcore, never the reverse).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import warnings
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

from .errors import VqcoreError

__all__ = ["SETUPS", "ConfigMixin", "Setup", "milestones_at", "renamed_fields"]

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
    - ``_NESTED``: field -> config class, rebuilt from a dict by ``from_dict``.
    - ``_ALIASES``: former name -> current name. A plain name is a renamed field (a deprecated
      keyword and property); a dotted ``"part.field"`` is a field that moved into the nested
      config ``part`` (a deprecated keyword and property too, but ``preset`` takes it as a plain
      override). ``from_dict`` migrates both silently: they are how older files were written.
    """

    _error: ClassVar[type[Exception]] = VqcoreError
    _PRESETS: ClassVar[tuple[str, ...]] = ("paper", "cpu")
    _PRESET_MESSAGE: ClassVar[str] = "unknown preset {name!r} (expected 'paper' or 'cpu')"
    _PRESET_DROPS_NONE: ClassVar[bool] = True
    _NESTED: ClassVar[dict[str, type[ConfigMixin]]] = {}
    _ALIASES: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # A read-only, warning property per former name (the dataclass ignores unannotated
        # attributes, so these never become fields).
        for old, new in cls.__dict__.get("_ALIASES", {}).items():
            setattr(cls, old, _alias_property(cls.__name__, old, new))

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
        return getattr(cls, name)(*args, **overrides)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of str/int/float/bool/None/list/dict (checkpoint- and JSON-safe: safe for
        ``torch.load(weights_only=True)``); nested configs become dicts."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Inverse of :meth:`to_dict`; former names are migrated, unknown keys are an error."""
        d = cls._resolve(dict(data), warn=False)
        cls._check_known(d)
        for key, value in d.items():
            if key in cls._NESTED and isinstance(value, dict):
                d[key] = cls._NESTED[key].from_dict(value)
            elif isinstance(value, list):
                d[key] = tuple(value)
        return cls(**d)

    def replace(self, **changes: Any) -> Self:
        """A copy with some fields changed (former names accepted, with a DeprecationWarning)."""
        return dataclasses.replace(self, **type(self)._resolve(changes, base=self))  # type: ignore[type-var]

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]

    @classmethod
    def _check_known(cls, data: dict[str, Any]) -> None:
        unknown = sorted(set(data) - cls.field_names())
        if unknown:
            raise cls._error(f"{cls.__name__}: unknown fields {unknown}")

    @classmethod
    def _resolve(
        cls,
        kwargs: dict[str, Any],
        *,
        base: Any = None,
        warn: bool = True,
        flat_ok: bool = False,
    ) -> dict[str, Any]:
        """``kwargs`` with former names mapped to the current ones.

        Args:
            kwargs: keyword arguments (or a stored dict).
            base: the config whose nested parts a moved name changes (``replace``); without it
                the change starts from the keyword's own part or the part's defaults.
            warn: DeprecationWarning for each former name (not for files: ``from_dict``).
            flat_ok: the names of nested fields are plain overrides (``preset``): no warning
                for a moved name, and a nested config's field may be named alone.
        """
        if not cls._ALIASES and not flat_ok:
            return dict(kwargs)
        fields = cls.field_names()
        out: dict[str, Any] = {}
        parts: dict[str, dict[str, Any]] = {}
        for key, value in kwargs.items():
            target = cls._ALIASES.get(key, key)
            if target == key and key not in fields and flat_ok:
                target = next(
                    (f"{p}.{key}" for p, c in cls._NESTED.items() if key in c.field_names()), key
                )
            if target != key and warn and not (flat_ok and "." in target):
                warnings.warn(
                    f"{cls.__name__}: {key!r} is deprecated, use {target!r}",
                    DeprecationWarning,
                    stacklevel=3,
                )
            part, _, name = target.rpartition(".")
            if part:
                parts.setdefault(part, {})[name] = value
            elif target != key and target in kwargs:
                raise cls._error(f"{cls.__name__}: give {key!r} or {target!r}, not both")
            else:
                out[target] = value
        for part, changes in parts.items():
            current = out.get(part, getattr(base, part, None))
            if current is None or isinstance(current, dict):
                out[part] = {**(current or {}), **changes}
            else:
                out[part] = dataclasses.replace(current, **changes)
        return out


def renamed_fields(cls: type) -> type:
    """Class decorator (after ``@dataclass``): the constructor accepts the former names of
    ``cls._ALIASES`` too, with a DeprecationWarning."""
    init = cls.__init__

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **cls._resolve(kwargs))  # type: ignore[attr-defined]

    cls.__init__ = __init__  # type: ignore[misc]
    return cls


def _alias_property(owner: str, old: str, new: str) -> property:
    def get(self: Any) -> Any:
        warnings.warn(f"{owner}.{old} is deprecated, use .{new}", DeprecationWarning, stacklevel=2)
        value = self
        for name in new.split("."):
            value = getattr(value, name)
        return value

    get.__doc__ = f"Deprecated: :attr:`{new}`."
    return property(get)


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
