from __future__ import annotations

import depthsim
import numpy as np
import pytest
from depthsim import _drivers as D
from depthsim import _kernels as K
from hypothesis import given, settings
from hypothesis import strategies as st


def test_shapes_ranges_and_determinism():
    d = depthsim.simulate_depth_batch(16, (64, 80), rng=0)
    assert d.shape == (16, 64, 80) and d.dtype == np.float32
    assert np.isfinite(d).all() and d.min() >= 0.0 and d.max() <= 1.0
    assert np.array_equal(d, depthsim.simulate_depth_batch(16, (64, 80), rng=0))
    assert np.array_equal(d[0], depthsim.simulate_depth((64, 80), rng=0))
    gen = np.random.default_rng(0)
    serial = np.stack([depthsim.simulate_depth((64, 80), rng=gen) for _ in range(16)])
    assert np.array_equal(d, serial)


def test_alpha_beta_bounds():
    d, p = depthsim.simulate_depth_batch(64, (48, 48), rng=1, return_params=True)
    lo, hi = d.min(axis=(1, 2)), d.max(axis=(1, 2))
    assert np.all(hi - lo <= p.alpha + 1e-6)
    assert np.all(lo >= p.beta - 1e-6)
    np.testing.assert_allclose(hi - lo, p.alpha, atol=1e-5)  # min-max reaches both ends
    assert np.all((p.alpha >= 0) & (p.alpha <= 1) & (p.beta >= 0) & (p.beta <= 1 - p.alpha))


def test_parameter_distribution():
    p = depthsim.sample_depth_params(4000, rng=0)
    assert set(np.unique(p.noise.res).tolist()) == {1, 2, 4, 8, 16, 32}
    assert -90 <= p.noise.angle.min() < -85 and 85 < p.noise.angle.max() <= 90
    assert abs(p.alpha.mean() - 0.5) < 0.03
    assert abs(p.beta.mean() - 0.25) < 0.03  # E[u (1 - alpha)] = 1/4


def test_no_affine_gives_full_range():
    d = depthsim.simulate_depth_batch(8, (32, 32), rng=2, affine=False)
    np.testing.assert_allclose(d.min(axis=(1, 2)), 0.0, atol=1e-6)
    np.testing.assert_allclose(d.max(axis=(1, 2)), 1.0, atol=1e-6)


def test_rotation_matches_scipy_bilinear_zero_fill():
    ndimage = pytest.importorskip("scipy.ndimage")
    src = depthsim.perlin((33, 40), (3, 4), rng=0)
    angle = 27.0
    out = np.empty_like(src)
    K.rotate_bilinear_into(src, angle, out)
    th = np.deg2rad(angle)
    # output (row, col) -> input (row, col): our inverse map written in (y, x) order.
    mat = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    centre = np.array([(33 - 1) / 2, (40 - 1) / 2])
    ref = ndimage.affine_transform(
        src.astype(np.float64),
        mat,
        offset=centre - mat @ centre,
        order=1,
        mode="grid-constant",
        cval=0.0,
    )
    np.testing.assert_allclose(out, ref, atol=1e-5)


def test_rotation_by_90_is_rot90_and_0_is_identity():
    src = depthsim.perlin((32, 32), (4, 4), rng=1)
    out = np.empty_like(src)
    K.rotate_bilinear_into(src, 0.0, out)
    np.testing.assert_array_equal(out, src)
    K.rotate_bilinear_into(src, 90.0, out)
    np.testing.assert_allclose(out, np.rot90(src, k=-1), atol=1e-5)


@settings(max_examples=20, deadline=None)
@given(
    h=st.integers(2, 16),
    w=st.integers(2, 16),
    angle=st.floats(-90, 90),
    seed=st.integers(0, 2**32 - 1),
)
def test_rotate_py_func_agrees_and_stays_in_hull(h, w, angle, seed):
    src = np.random.default_rng(seed).random((h, w)).astype(np.float32)
    a = np.empty_like(src)
    b = np.empty_like(src)
    K.rotate_bilinear_into(src, angle, a)
    K.rotate_bilinear_into.py_func(src, angle, b)
    np.testing.assert_allclose(a, b, atol=1e-6)
    # Bilinear with zero fill is a convex combination of source values and 0.
    assert a.min() >= min(0.0, src.min()) - 1e-6 and a.max() <= src.max() + 1e-6


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), affine=st.booleans())
def test_simulate_kernel_py_func_agrees(seed, affine):
    p = depthsim.sample_depth_params(2, rng=seed)
    args = (
        p.noise.gcos,
        p.noise.gsin,
        np.ascontiguousarray(p.noise.res[:, 0]),
        np.ascontiguousarray(p.noise.res[:, 1]),
        p.noise.angle,
        p.alpha,
        p.beta,
        affine,
    )
    a = np.empty((2, 12, 14), np.float32)
    b = np.empty((2, 12, 14), np.float32)
    D.simulate_depth_kernel(a, *args)
    D.simulate_depth_kernel.py_func(b, *args)
    np.testing.assert_allclose(a, b, atol=1e-5)


@settings(max_examples=25, deadline=None)
@given(
    alpha=st.floats(0, 1),
    u=st.floats(0, 1),
    seed=st.integers(0, 2**32 - 1),
)
def test_minmax_affine_property(alpha, u, seed):
    beta = u * (1 - alpha)
    img = (np.random.default_rng(seed).normal(size=(9, 7)) * 5).astype(np.float32)
    K.minmax_affine_into(img, alpha, beta, True)
    assert img.min() >= beta - 1e-6 and img.max() <= beta + alpha + 1e-6
    np.testing.assert_allclose(img.max() - img.min(), alpha, atol=1e-5)


def test_constant_input_gives_finite_output():
    img = np.full((5, 5), 3.0, np.float32)
    K.minmax_affine_into(img, 0.5, 0.25, True)
    assert np.isfinite(img).all() and np.all(img == 0.25)
