"""Random-generator coercion shared by every public function."""

from __future__ import annotations

import numpy as np

RngLike = np.random.Generator | int | np.integer | None


class DepthsimError(ValueError):
    """Invalid argument passed to a depthsim function (one-line message naming the problem)."""


def as_generator(rng: RngLike) -> np.random.Generator:
    """Turn ``rng`` (Generator, integer seed or None) into a ``numpy.random.Generator``.

    A Generator is returned as is (and therefore advanced by the caller's draws); an int seeds a
    fresh PCG64 generator, so the same int always gives the same stream.

    Example:
        >>> int(as_generator(3).integers(100)) == int(as_generator(3).integers(100))
        True
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, int | np.integer):
        if rng is not None and int(rng) < 0:
            raise DepthsimError(f"rng: seed must be non-negative, got {rng}")
        return np.random.default_rng(rng)
    raise DepthsimError(
        f"rng: expected numpy.random.Generator, int or None, got {type(rng).__name__}"
    )


def check_shape(shape: tuple[int, int] | int, name: str = "shape") -> tuple[int, int]:
    """Validate a 2-D image shape ``(H, W)`` (an int means square)."""
    if isinstance(shape, int | np.integer):
        shape = (int(shape), int(shape))
    try:
        h, w = (int(s) for s in shape)
    except (TypeError, ValueError):
        raise DepthsimError(f"{name}: expected (H, W), got {shape!r}") from None
    if h < 1 or w < 1:
        raise DepthsimError(f"{name}: H and W must be >= 1, got {(h, w)}")
    return h, w


def check_res(res: tuple[int, int] | int) -> tuple[int, int]:
    """Validate a lattice resolution ``(ry, rx)`` (cells per axis, an int means both)."""
    if isinstance(res, int | np.integer):
        res = (int(res), int(res))
    try:
        ry, rx = (int(r) for r in res)
    except (TypeError, ValueError):
        raise DepthsimError(f"res: expected (ry, rx) lattice cells per axis, got {res!r}") from None
    if ry < 1 or rx < 1:
        raise DepthsimError(f"res: lattice cells per axis must be >= 1, got {(ry, rx)}")
    return ry, rx


def check_count(n: int) -> int:
    """Validate a batch size."""
    if not isinstance(n, int | np.integer) or int(n) < 0:
        raise DepthsimError(f"n: expected a non-negative int, got {n!r}")
    return int(n)
