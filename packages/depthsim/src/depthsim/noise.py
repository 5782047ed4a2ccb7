"""Public gradient-noise functions: single octave, fractal (octaves) and parallel batches."""

from __future__ import annotations

import math
import numbers

import numpy as np

from depthsim._drivers import perlin_batch_kernel, perlin_batch_serial, run_batch
from depthsim._rng import DepthsimError, RngLike, as_generator, check_count, check_res, check_shape


def random_gradients(
    rng: np.random.Generator, n: int, ry: int, rx: int
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n`` lattices of random unit gradients, angle ~ U(0, 2 pi): (cos, sin), (n, ry+1, rx+1)."""
    theta = 2.0 * np.pi * rng.random((n, ry + 1, rx + 1))
    return np.cos(theta), np.sin(theta)


def _check_persistence(persistence: float, octaves: int) -> float:
    """``persistence`` as given (its own precision), once the weights it yields are finite."""
    # An infinite amplitude, or one whose powers overflow, makes every weight inf/inf = NaN: the
    # output would be all NaN instead of the documented [-1, 1].
    if not isinstance(persistence, numbers.Real):
        raise DepthsimError(f"persistence: expected a number > 0, got {persistence!r}")
    p = float(persistence)
    try:
        finite = p > 0 and math.isfinite(sum(p**o for o in range(octaves)))
    except OverflowError:
        finite = False
    if not finite:
        raise DepthsimError(
            f"persistence: expected a number > 0 whose {octaves} octave amplitudes have a finite "
            f"sum, got {persistence!r}"
        )
    return persistence


def perlin_batch(
    n: int,
    shape: tuple[int, int] | int,
    res: tuple[int, int] | int,
    *,
    rng: RngLike = None,
    octaves: int = 1,
    persistence: float = 0.5,
    lacunarity: int = 2,
) -> np.ndarray:
    """``n`` independent noise images, computed in parallel (numba ``prange`` over the batch).

    All gradients are drawn from ``rng`` before the parallel loop, octave by octave, so the result
    depends only on the seed, never on the number of threads. With ``octaves > 1`` the octaves are
    summed with amplitudes ``persistence**o`` at lattice ``res * lacunarity**o`` and divided by
    the sum of the amplitudes, which keeps the range of a single octave.

    Args:
        n: batch size.
        shape: ``(H, W)`` of each image (any size; ``res`` need not divide it).
        res: ``(ry, rx)`` lattice cells per axis of the first octave.
        rng: Generator, seed or None.
        octaves: number of octaves (1 = plain Perlin noise).
        persistence: amplitude ratio between successive octaves.
        lacunarity: lattice ratio between successive octaves.

    Returns:
        ``(n, H, W)`` float32, values in [-1, 1].

    Example:
        >>> x = perlin_batch(4, (32, 48), (2, 3), rng=0)
        >>> x.shape, x.dtype, bool(abs(x).max() <= 1)
        ((4, 32, 48), dtype('float32'), True)
    """
    n = check_count(n)
    h, w = check_shape(shape)
    ry, rx = check_res(res)
    if not isinstance(octaves, int | np.integer) or octaves < 1:
        raise DepthsimError(f"octaves: expected an int >= 1, got {octaves!r}")
    persistence = _check_persistence(persistence, octaves)
    if not isinstance(lacunarity, int | np.integer) or lacunarity < 1:
        raise DepthsimError(f"lacunarity: expected an int >= 1, got {lacunarity!r}")
    gen = as_generator(rng)
    out = np.zeros((n, h, w), np.float32)
    total = sum(persistence**o for o in range(octaves))
    for o in range(octaves):
        ky, kx = ry * lacunarity**o, rx * lacunarity**o
        gcos, gsin = random_gradients(gen, n, ky, kx)
        rys = np.full(n, ky, np.int64)
        rxs = np.full(n, kx, np.int64)
        run_batch(
            perlin_batch_kernel,
            perlin_batch_serial,
            out,
            gcos,
            gsin,
            rys,
            rxs,
            persistence**o / total,
            o > 0,
        )
    return out


def perlin(
    shape: tuple[int, int] | int, res: tuple[int, int] | int, *, rng: RngLike = None
) -> np.ndarray:
    """Single-octave 2-D gradient (Perlin) noise with quintic fade and random unit gradients.

    Same values as ``perlin_batch(1, shape, res, rng=rng)[0]``.

    Args:
        shape: ``(H, W)``.
        res: ``(ry, rx)`` lattice cells per axis.
        rng: Generator, seed or None.

    Returns:
        ``(H, W)`` float32 in [-1, 1]; zero at every lattice point.

    Example:
        >>> p = perlin((64, 64), (4, 4), rng=1)
        >>> p.shape, float(p[0, 0]), float(p[16, 32])
        ((64, 64), 0.0, 0.0)
    """
    return perlin_batch(1, shape, res, rng=rng)[0]


def fractal_perlin(
    shape: tuple[int, int] | int,
    res: tuple[int, int] | int,
    *,
    octaves: int = 4,
    persistence: float = 0.5,
    lacunarity: int = 2,
    rng: RngLike = None,
) -> np.ndarray:
    """Fractal (multi-octave) Perlin noise, normalised by the sum of octave amplitudes.

    Same values as ``perlin_batch(1, shape, res, octaves=..., rng=rng)[0]``.

    Returns:
        ``(H, W)`` float32 in [-1, 1].

    Example:
        >>> f = fractal_perlin((64, 64), (2, 2), octaves=3, rng=0)
        >>> f.shape, bool(abs(f).max() <= 1)
        ((64, 64), True)
    """
    return perlin_batch(
        1, shape, res, rng=rng, octaves=octaves, persistence=persistence, lacunarity=lacunarity
    )[0]
