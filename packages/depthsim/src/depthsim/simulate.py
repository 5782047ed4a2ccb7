"""The 3DSR stage-1 depth simulator (reference spec 2.2), batched and parallel."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from depthsim._drivers import run_batch, simulate_depth_kernel, simulate_depth_serial
from depthsim._rng import DepthsimError, RngLike, as_generator, check_count, check_shape


@dataclass(frozen=True)
class NoiseParams:
    """Random draws behind a batch of rotated single-octave noise images.

    Attributes:
        res: ``(n, 2)`` int64 lattice cells ``(ry, rx)`` = ``(2**a, 2**b)``.
        angle: ``(n,)`` rotation in degrees.
        gcos, gsin: ``(n, L, L)`` unit gradients, ``L = 2**max_exponent + 1`` (only the first
            ``ry + 1`` x ``rx + 1`` corners of item k are drawn and used).
    """

    res: np.ndarray
    angle: np.ndarray
    gcos: np.ndarray
    gsin: np.ndarray

    def __len__(self) -> int:
        return len(self.angle)


@dataclass(frozen=True)
class DepthParams:
    """Random draws of :func:`simulate_depth_batch`: noise parameters plus the affine map.

    ``alpha ~ U(0, 1)`` and ``beta = u * (1 - alpha)`` with ``u ~ U(0, 1)``, so the depth of item k
    lies in ``[beta[k], beta[k] + alpha[k]]`` within ``[0, 1]``.
    """

    noise: NoiseParams
    alpha: np.ndarray
    beta: np.ndarray

    def __len__(self) -> int:
        return len(self.alpha)


def _check_recipe(max_exponent: int, max_angle: float) -> None:
    if not isinstance(max_exponent, int | np.integer) or not 0 <= max_exponent <= 10:
        raise DepthsimError(f"max_exponent: expected an int in 0..10, got {max_exponent!r}")
    # a string reached the comparison (TypeError), inf the uniform draw (OverflowError)
    if not isinstance(max_angle, numbers.Real) or not (0 <= max_angle < math.inf):
        raise DepthsimError(f"max_angle: expected a finite number >= 0 degrees, got {max_angle!r}")


def _draw_noise_item(
    gen: np.random.Generator, max_exponent: int, max_angle: float
) -> tuple[int, int, np.ndarray, float]:
    """One item's lattice (2**a, 2**b), gradient angles (ry+1, rx+1) and rotation angle."""
    a, b = gen.integers(0, max_exponent + 1, size=2)
    ry, rx = 2 ** int(a), 2 ** int(b)
    theta = 2.0 * np.pi * gen.random((ry + 1, rx + 1))
    return ry, rx, theta, float(gen.uniform(-max_angle, max_angle))


def _sample(
    n: int, gen: np.random.Generator, max_exponent: int, max_angle: float, extra: int
) -> tuple[NoiseParams, np.ndarray]:
    """Draw item by item (noise, then ``extra`` uniforms), so that batch k equals the k-th single
    call on a shared generator, whatever the batch size."""
    lattice = 2**max_exponent + 1
    res = np.empty((n, 2), np.int64)
    angle = np.empty(n)
    theta = np.zeros((n, lattice, lattice))
    extras = np.empty((n, extra))
    for k in range(n):
        ry, rx, th, angle[k] = _draw_noise_item(gen, max_exponent, max_angle)
        res[k] = ry, rx
        theta[k, : ry + 1, : rx + 1] = th
        extras[k] = gen.random(extra)
    return NoiseParams(res=res, angle=angle, gcos=np.cos(theta), gsin=np.sin(theta)), extras


def sample_noise_params(
    n: int, rng: RngLike = None, *, max_exponent: int = 5, max_angle: float = 90.0
) -> NoiseParams:
    """Draw per item: lattice exponents a, b ~ U{0..max_exponent}, unit gradients with angles
    ~ U(0, 2 pi), rotation ~ U(-max_angle, max_angle) degrees."""
    n = check_count(n)
    _check_recipe(max_exponent, max_angle)
    return _sample(n, as_generator(rng), max_exponent, max_angle, 0)[0]


def sample_depth_params(
    n: int, rng: RngLike = None, *, max_exponent: int = 5, max_angle: float = 90.0
) -> DepthParams:
    """Draw the parameters of ``n`` simulated depth maps (per item: noise, then alpha and u)."""
    n = check_count(n)
    _check_recipe(max_exponent, max_angle)
    noise, extras = _sample(n, as_generator(rng), max_exponent, max_angle, 2)
    alpha = extras[:, 0]
    return DepthParams(noise=noise, alpha=alpha, beta=extras[:, 1] * (1.0 - alpha))


def render_depth(
    params: DepthParams, shape: tuple[int, int] | int, *, affine: bool = True
) -> np.ndarray:
    """Render depth maps from drawn parameters (deterministic; parallel over the batch).

    Returns:
        ``(n, H, W)`` float32 in [0, 1].
    """
    h, w = check_shape(shape)
    nz = params.noise
    out = np.empty((len(params), h, w), np.float32)
    run_batch(
        simulate_depth_kernel,
        simulate_depth_serial,
        out,
        nz.gcos,
        nz.gsin,
        np.ascontiguousarray(nz.res[:, 0]),
        np.ascontiguousarray(nz.res[:, 1]),
        nz.angle.astype(np.float64),
        params.alpha.astype(np.float64),
        params.beta.astype(np.float64),
        bool(affine),
    )
    return out


def simulate_depth_batch(
    n: int,
    shape: tuple[int, int] | int,
    *,
    rng: RngLike = None,
    affine: bool = True,
    return_params: bool = False,
) -> np.ndarray | tuple[np.ndarray, DepthParams]:
    """``n`` simulated depth maps (3DSR stage 1, spec 2.2), in parallel and thread-count independent.

    Parameters are drawn item by item, so item k equals the k-th of successive
    :func:`simulate_depth` calls on one shared Generator.

    Per item: single-octave Perlin noise on a ``2**a x 2**b`` lattice (a, b ~ U{0..5}), rotated by
    U(-90, 90) degrees (bilinear, zero fill), min-max normalised to P, then
    ``D = alpha * P + beta`` with alpha ~ U(0, 1), beta = u (1 - alpha), u ~ U(0, 1), clipped to
    [0, 1]. ``affine=False`` returns P (the paper's ablation).

    Args:
        n: batch size.
        shape: ``(H, W)``.
        rng: Generator, seed or None.
        affine: apply the random affine map (default) or return P.
        return_params: also return the :class:`DepthParams` that were drawn.

    Returns:
        ``(n, H, W)`` float32 in [0, 1] (and the params when asked).

    Example:
        >>> d, p = simulate_depth_batch(3, (64, 64), rng=0, return_params=True)
        >>> d.shape, bool((d.max(axis=(1, 2)) - d.min(axis=(1, 2)) <= p.alpha + 1e-6).all())
        ((3, 64, 64), True)
    """
    params = sample_depth_params(n, rng)
    out = render_depth(params, shape, affine=affine)
    return (out, params) if return_params else out


def simulate_depth(
    shape: tuple[int, int] | int,
    *,
    rng: RngLike = None,
    affine: bool = True,
    return_params: bool = False,
) -> np.ndarray | tuple[np.ndarray, DepthParams]:
    """One simulated depth map; equals ``simulate_depth_batch(1, shape, rng=rng, ...)[0]``.

    Returns:
        ``(H, W)`` float32 in [0, 1] (and the :class:`DepthParams` of length 1 when asked).

    Example:
        >>> d = simulate_depth((32, 32), rng=0, affine=False)
        >>> float(d.min()), float(d.max())
        (0.0, 1.0)
    """
    out, params = simulate_depth_batch(1, shape, rng=rng, affine=affine, return_params=True)
    return (out[0], params) if return_params else out[0]
