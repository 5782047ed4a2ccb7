"""Stage-2 anomaly masks (reference spec 3.3): thresholded |rotated Perlin noise|."""

from __future__ import annotations

import numpy as np

from depthsim._drivers import anomaly_mask_kernel, anomaly_mask_serial, run_batch
from depthsim._rng import DepthsimError, RngLike, as_generator, check_count, check_shape
from depthsim.simulate import _sample


def _threshold_range(threshold: float | tuple[float, float]) -> tuple[float, float]:
    # a numpy array or a string reached float() and failed with an error naming no argument
    try:
        values = np.asarray(threshold, dtype=np.float64)
    except (TypeError, ValueError):
        raise DepthsimError(
            f"threshold: expected a number or (low, high), got {threshold!r}"
        ) from None
    if values.ndim > 0:
        if values.shape != (2,) or not (0 <= values[0] <= values[1]):
            raise DepthsimError(
                f"threshold: expected (low, high) with 0 <= low <= high, got {threshold!r}"
            )
        return float(values[0]), float(values[1])
    t = float(values)
    if not t >= 0:
        raise DepthsimError(f"threshold: expected >= 0, got {threshold!r}")
    return t, t


def anomaly_mask_batch(
    n: int,
    shape: tuple[int, int] | int,
    *,
    rng: RngLike = None,
    threshold: float | tuple[float, float] = (0.4, 0.8),
) -> np.ndarray:
    """``n`` anomaly masks, in parallel and independent of the thread count.

    Per item: Perlin noise with the depth simulator's scale and rotation recipe (lattice
    ``2**a x 2**b``, a, b ~ U{0..5}; rotation U(-90, 90) degrees, bilinear, zero fill), then
    ``|noise| > t`` with t ~ U(threshold) (a float fixes t). The foreground product and the 50 %
    zeroing of spec 3.3 are the caller's job. Item k equals the k-th of successive
    :func:`anomaly_mask` calls on one shared Generator.

    Returns:
        ``(n, H, W)`` float32 of {0, 1}.

    Example:
        >>> m = anomaly_mask_batch(2, (64, 64), rng=0)
        >>> m.shape, sorted(set(m.ravel().tolist())) <= [0.0, 1.0]
        ((2, 64, 64), True)
    """
    n = check_count(n)
    h, w = check_shape(shape)
    gen = as_generator(rng)
    lo, hi = _threshold_range(threshold)
    params, u = _sample(n, gen, 5, 90.0, 1)
    t = lo + (hi - lo) * u[:, 0]
    out = np.empty((n, h, w), np.float32)
    run_batch(
        anomaly_mask_kernel,
        anomaly_mask_serial,
        out,
        params.gcos,
        params.gsin,
        np.ascontiguousarray(params.res[:, 0]),
        np.ascontiguousarray(params.res[:, 1]),
        params.angle,
        t,
    )
    return out


def anomaly_mask(
    shape: tuple[int, int] | int,
    *,
    rng: RngLike = None,
    threshold: float | tuple[float, float] = (0.4, 0.8),
) -> np.ndarray:
    """One anomaly mask; equals ``anomaly_mask_batch(1, shape, rng=rng, threshold=...)[0]``.

    Args:
        shape: ``(H, W)``.
        rng: Generator, seed or None.
        threshold: ``(low, high)`` range of t, or a fixed t.

    Returns:
        ``(H, W)`` float32 of {0, 1}.

    Example:
        >>> m = anomaly_mask((64, 64), rng=3, threshold=0.5)
        >>> m.dtype, bool(((m == 0) | (m == 1)).all())
        (dtype('float32'), True)
    """
    return anomaly_mask_batch(1, shape, rng=rng, threshold=threshold)[0]
