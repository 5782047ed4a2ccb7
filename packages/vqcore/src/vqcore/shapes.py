"""One tensor shape check for every module of the project (as kornia's ``KORNIA_CHECK_SHAPE``).

Example:
    >>> import torch
    >>> check_shape(torch.zeros(2, 4, 8, 8), ("B", "C=4", "H", "W"), multiple=8, name="DADA")
    >>> check_shape(torch.zeros(2, 3, 8, 8), ("B", 4, "H", "W"), name="DADA")
    Traceback (most recent call last):
    ...
    vqcore.shapes.ShapeError: DADA: expected input (B, 4, H, W), got (2, 3, 8, 8)
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

__all__ = ["ShapeError", "check_shape"]


class ShapeError(ValueError):
    """A tensor does not have the shape a module accepts.

    A ``ValueError`` (what the five hand-written checks raised before) for compatibility. Inside a
    library it means a caller passed the wrong tensor: a bug, not the user's input. A library that
    checks the user's own data re-raises it as its one-line error type (e.g. ``ThreedsrError``);
    the CLI reports a bare ``ShapeError`` as an internal error (exit 1), not as bad input.
    """


def _fixed(dim: int | str) -> int | None:
    """The size a dimension must have: ``4`` and ``"C=4"`` -> 4, ``"B"`` -> None (free)."""
    if isinstance(dim, int):
        return dim
    _, eq, value = dim.partition("=")
    return int(value) if eq else None


def check_shape(
    x: Tensor,
    dims: Sequence[int | str],
    *,
    multiple: int = 1,
    name: str = "input",
    what: str = "input ",
    context: str = "",
) -> None:
    """Raise :class:`ShapeError` unless ``x`` has ``len(dims)`` dimensions, each named int of
    ``dims`` equal to its size (strings are free dimensions), and the last two sizes multiples of
    ``multiple``.

    Args:
        x: the tensor.
        dims: e.g. ``("B", 4, "H", "W")``; a named fixed size is written ``"C=4"``.
        multiple: H and W (the last two dimensions) must be multiples of it.
        name: who checks (the message starts with it).
        what: the word before the expected shape (``"input "``; ``""`` for none).
        context: words after the expected shape (e.g. ``" for setup 'rgbd'"``).
    """
    shape = tuple(x.shape)
    if len(shape) != len(dims) or any(
        (want := _fixed(d)) is not None and shape[i] != want for i, d in enumerate(dims)
    ):
        expected = "(" + ", ".join(str(d) for d in dims) + ")"
        raise ShapeError(f"{name}: expected {what}{expected}{context}, got {shape}")
    if multiple > 1 and (shape[-2] % multiple or shape[-1] % multiple):
        raise ShapeError(f"{name}: H and W must be multiples of {multiple}, got {shape[-2:]}")
