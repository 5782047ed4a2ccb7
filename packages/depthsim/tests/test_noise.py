from __future__ import annotations

import math
import os

import depthsim
import numba
import numpy as np
import pytest
from depthsim import _drivers as D
from depthsim import _kernels as K
from depthsim.noise import random_gradients
from hypothesis import given, settings
from hypothesis import strategies as st


def rand_perlin_2d_np(shape, res, gcos, gsin):
    """The reference repository's vectorised Perlin noise with injected gradients.

    Same arithmetic as ``rand_perlin_2d_np`` of DRAEM / 3DSR (mgrid lattice coordinates, repeated
    gradient tiles, quintic fade), restricted like the original to shapes divisible by ``res``.
    """
    delta = (res[0] / shape[0], res[1] / shape[1])
    d = (shape[0] // res[0], shape[1] // res[1])
    grid = np.mgrid[0 : res[0] : delta[0], 0 : res[1] : delta[1]].transpose(1, 2, 0) % 1
    gradients = np.stack((gcos, gsin), axis=-1)

    def tile(s1, s2):
        g = gradients[s1[0] : s1[1], s2[0] : s2[1]]
        return np.repeat(np.repeat(g, d[0], axis=0), d[1], axis=1)

    def dot(grad, shift):
        g = grid[: shape[0], : shape[1]]
        return (np.stack((g[..., 0] + shift[0], g[..., 1] + shift[1]), axis=-1) * grad).sum(axis=-1)

    n00 = dot(tile([0, -1], [0, -1]), [0, 0])
    n10 = dot(tile([1, None], [0, -1]), [-1, 0])
    n01 = dot(tile([0, -1], [1, None]), [0, -1])
    n11 = dot(tile([1, None], [1, None]), [-1, -1])
    t = grid[: shape[0], : shape[1]]
    t = 6 * t**5 - 15 * t**4 + 10 * t**3

    def lerp(a, b, x):
        return a + x * (b - a)

    return math.sqrt(2) * lerp(lerp(n00, n10, t[..., 0]), lerp(n01, n11, t[..., 0]), t[..., 1])


PERLIN_SLOPE_BOUND = math.sqrt(2) * (1 + 2 * 1.875 * math.sqrt(2))
"""Upper bound of |d noise / d x| in lattice units.

noise = sqrt2 * sum_c w_c n_c with sum_c w_c = 1, |dn_c/dx| <= 1 (unit gradients), |n_c| <= sqrt2 in
the cell, and sum_c |dw_c/dx| = 2 fade'(t) <= 2 * 1.875.
"""


def test_shape_dtype_range_and_lattice_zeros():
    p = depthsim.perlin((64, 96), (4, 6), rng=0)
    assert p.shape == (64, 96) and p.dtype == np.float32
    assert np.isfinite(p).all() and np.abs(p).max() <= 1.0
    assert np.all(p[::16, ::16] == 0.0)  # gradient noise vanishes on the lattice
    assert p.std() > 0.1


def test_determinism_and_single_equals_batch():
    a = depthsim.perlin((32, 32), (2, 4), rng=7)
    assert np.array_equal(a, depthsim.perlin((32, 32), (2, 4), rng=7))
    assert not np.array_equal(a, depthsim.perlin((32, 32), (2, 4), rng=8))
    assert np.array_equal(a, depthsim.perlin_batch(3, (32, 32), (2, 4), rng=7)[0])
    f = depthsim.fractal_perlin((32, 32), (2, 2), octaves=3, rng=1)
    assert np.array_equal(f, depthsim.perlin_batch(1, (32, 32), (2, 2), octaves=3, rng=1)[0])


@pytest.mark.parametrize(
    ("shape", "res"), [((64, 64), (4, 4)), ((48, 96), (3, 8)), ((32, 16), (1, 1))]
)
def test_matches_reference_numpy_implementation(shape, res):
    gen = np.random.default_rng(0)
    gcos, gsin = random_gradients(gen, 1, *res)
    expected = rand_perlin_2d_np(shape, res, gcos[0], gsin[0])
    out = np.empty(shape, np.float32)
    K.perlin_into(out, gcos[0], gsin[0], res[0], res[1], 1.0, False)
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_batch_equals_serial_draws_and_thread_count():
    gen = np.random.default_rng(3)
    serial = np.stack([depthsim.perlin((40, 40), (5, 2), rng=gen) for _ in range(6)])
    batch = depthsim.perlin_batch(6, (40, 40), (5, 2), rng=3)
    assert np.array_equal(serial, batch)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = depthsim.simulate_depth_batch(8, (256, 256), rng=5)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = depthsim.simulate_depth_batch(8, (256, 256), rng=5)
    finally:
        numba.set_num_threads(before)
    assert D.use_parallel(one) and np.array_equal(one, many)


@pytest.mark.parametrize("name", ["perlin_batch", "simulate_depth", "anomaly_mask"])
def test_driver_twins_share_one_body_and_keep_separate_caches(name):
    """Both twins compile one Python body; only the parallel one is parallel, and their names
    (numba's on-disk cache key, with the line) differ so neither loads the other's machine code."""
    par, ser = getattr(D, f"{name}_kernel"), getattr(D, f"{name}_serial")
    assert par.py_func.__code__ is ser.py_func.__code__
    assert par.targetoptions.get("parallel") is True
    assert not ser.targetoptions.get("parallel")
    assert par.py_func.__qualname__ != ser.py_func.__qualname__


def test_serial_and_parallel_drivers_agree():
    gen = np.random.default_rng(2)
    gcos, gsin = random_gradients(gen, 5, 8, 8)
    ry = np.array([1, 2, 4, 8, 8], np.int64)
    rx = np.array([8, 4, 2, 1, 8], np.int64)
    a = np.zeros((5, 30, 20), np.float32)
    b = np.zeros((5, 30, 20), np.float32)
    D.perlin_batch_kernel(a, gcos, gsin, ry, rx, 1.0, False)
    D.perlin_batch_serial(b, gcos, gsin, ry, rx, 1.0, False)
    assert np.array_equal(a, b)
    p = depthsim.sample_depth_params(5, rng=1)
    args = (
        p.noise.gcos,
        p.noise.gsin,
        p.noise.res[:, 0].copy(),
        p.noise.res[:, 1].copy(),
        p.noise.angle,
    )
    D.simulate_depth_kernel(a, *args, p.alpha, p.beta, True)
    D.simulate_depth_serial(b, *args, p.alpha, p.beta, True)
    assert np.array_equal(a, b)
    t = np.full(5, 0.3)
    D.anomaly_mask_kernel(a, *args, t)
    D.anomaly_mask_serial(b, *args, t)
    assert np.array_equal(a, b)


def test_fractal_normalised_range():
    f = depthsim.perlin_batch(4, (64, 64), (2, 2), octaves=5, persistence=0.7, rng=2)
    assert np.abs(f).max() <= 1.0 and f.std() > 0.05


@pytest.mark.parametrize("bad", [{"shape": (0, 4)}, {"res": (0, 2)}, {"octaves": 0}, {"n": -1}])
def test_bad_arguments_raise(bad):
    kwargs = {"n": 2, "shape": (8, 8), "res": (2, 2)} | bad
    octaves = kwargs.pop("octaves", 1)
    with pytest.raises(depthsim.DepthsimError):
        depthsim.perlin_batch(kwargs["n"], kwargs["shape"], kwargs["res"], rng=0, octaves=octaves)


@pytest.mark.parametrize(
    ("persistence", "octaves"), [(math.inf, 2), (1e200, 3), (-0.5, 2), (math.nan, 2), ("0.5", 2)]
)
def test_bad_persistence_raises_instead_of_nan(persistence, octaves):
    with pytest.raises(depthsim.DepthsimError, match=r"^persistence: [^\n]*$"):
        depthsim.fractal_perlin((8, 8), (2, 2), octaves=octaves, persistence=persistence, rng=0)


@settings(max_examples=40, deadline=None)
@given(
    persistence=st.floats(1e-6, 1e6) | st.floats(1e-6, 1e6).map(np.float32),
    octaves=st.integers(1, 6),
)
def test_accepted_persistence_gives_finite_noise_in_range(persistence, octaves):
    f = depthsim.fractal_perlin((16, 16), (2, 2), octaves=octaves, persistence=persistence, rng=0)
    assert np.isfinite(f).all() and np.abs(f).max() <= 1.0


@pytest.mark.parametrize("max_angle", ["90", math.inf, -1.0, math.nan, None])
@pytest.mark.parametrize("sampler", ["sample_noise_params", "sample_depth_params"])
def test_bad_max_angle_names_it(sampler, max_angle):
    with pytest.raises(depthsim.DepthsimError, match=r"^max_angle: [^\n]*$"):
        getattr(depthsim, sampler)(2, rng=0, max_angle=max_angle)


def test_bad_rng_raises():
    with pytest.raises(depthsim.DepthsimError, match="rng"):
        depthsim.perlin((8, 8), (2, 2), rng="seed")  # type: ignore[arg-type]


@settings(max_examples=25, deadline=None)
@given(
    h=st.integers(4, 24),
    w=st.integers(4, 24),
    ry=st.integers(1, 6),
    rx=st.integers(1, 6),
    seed=st.integers(0, 2**32 - 1),
)
def test_py_func_agrees_with_jit_and_slope_bound(h, w, ry, rx, seed):
    gcos, gsin = random_gradients(np.random.default_rng(seed), 1, ry, rx)
    jit = np.empty((h, w), np.float32)
    py = np.empty((h, w), np.float32)
    K.perlin_into(jit, gcos[0], gsin[0], ry, rx, 1.0, False)
    K.perlin_into.py_func(py, gcos[0], gsin[0], ry, rx, 1.0, False)
    np.testing.assert_allclose(jit, py, atol=1e-6)
    assert np.abs(jit).max() <= 1.0 + 1e-6
    # Smoothness: a one-pixel step moves res/size lattice units, so the change is bounded by it.
    assert np.abs(np.diff(jit, axis=1)).max(initial=0) <= PERLIN_SLOPE_BOUND * rx / w + 1e-5
    assert np.abs(np.diff(jit, axis=0)).max(initial=0) <= PERLIN_SLOPE_BOUND * ry / h + 1e-5


def test_slope_scales_with_resolution():
    """Coarser lattices give smoother noise: mean pixel step grows with res."""
    steps = [
        np.abs(np.diff(depthsim.perlin_batch(8, 128, r, rng=0), axis=2)).mean() for r in (2, 8, 32)
    ]
    assert steps[0] < steps[1] < steps[2]


def test_batch_kernel_py_func_agrees():
    gen = np.random.default_rng(1)
    gcos, gsin = random_gradients(gen, 3, 4, 4)
    ry = np.array([1, 2, 4], np.int64)
    rx = np.array([4, 2, 1], np.int64)
    a = np.zeros((3, 12, 10), np.float32)
    b = np.zeros((3, 12, 10), np.float32)
    D.perlin_batch_kernel(a, gcos, gsin, ry, rx, 0.5, True)
    D.perlin_batch_kernel.py_func(b, gcos, gsin, ry, rx, 0.5, True)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_concurrent_calls_from_threads_match_sequential():
    """Several Python threads may call the batch functions at once (the workqueue layer would
    abort on concurrent parallel launches); results equal the sequential ones."""
    from concurrent.futures import ThreadPoolExecutor

    seeds = list(range(6))
    expected = [depthsim.simulate_depth_batch(8, (256, 256), rng=s) for s in seeds]
    with ThreadPoolExecutor(max_workers=3) as pool:
        got = list(pool.map(lambda s: depthsim.simulate_depth_batch(8, (256, 256), rng=s), seeds))
    for e, g in zip(expected, got, strict=True):
        assert np.array_equal(e, g)


def _child_batch(seed: int) -> np.ndarray:
    return depthsim.simulate_depth_batch(8, (256, 256), rng=seed)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_workers_after_parallel_use():
    """DataLoader-style fork after the thread pool started: children fall back to the serial
    drivers instead of being terminated by OpenMP, with identical results."""
    import multiprocessing as mp

    expected = [depthsim.simulate_depth_batch(8, (256, 256), rng=s) for s in (0, 1)]
    with mp.get_context("fork").Pool(2) as pool:
        got = pool.map_async(_child_batch, [0, 1]).get(timeout=120)
    for e, g in zip(expected, got, strict=True):
        assert np.array_equal(e, g)
