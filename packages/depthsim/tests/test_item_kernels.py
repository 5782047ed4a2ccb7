"""The small per-item kernels, jitted and through ``.py_func``, against numpy references."""

from __future__ import annotations

import numpy as np
import pytest
from depthsim import _kernels as K
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

_IMAGES = arrays(
    np.float32,
    st.tuples(st.integers(1, 9), st.integers(1, 9)),
    elements=st.floats(-4, 4, width=32),
)
_BOTH = pytest.mark.parametrize("jit", [True, False], ids=["jit", "py_func"])


def _kernel(fn, jit: bool):
    return fn if jit else fn.py_func


@_BOTH
@given(t=st.floats(0, 1))
@settings(deadline=None)  # the first jitted call may compile
def test_fade_is_the_quintic_and_flat_at_the_ends(jit, t):
    fade = _kernel(K.fade, jit)
    assert fade(t) == pytest.approx(6 * t**5 - 15 * t**4 + 10 * t**3, abs=1e-12)
    assert fade(0.0) == 0.0 and fade(1.0) == 1.0
    assert fade(min(t + 1e-3, 1.0)) >= fade(t) - 1e-12


@_BOTH
@given(img=_IMAGES, alpha=st.floats(0, 1), beta=st.floats(0, 1), affine=st.booleans())
@settings(max_examples=60, deadline=None)
def test_minmax_affine_matches_numpy(jit, img, alpha, beta, affine):
    ref = img.astype(np.float64)
    span = ref.max() - ref.min()
    p = (ref - ref.min()) / span if span > 1e-12 else np.zeros_like(ref)
    if affine:
        p = alpha * p + beta
    expected = np.clip(p, 0.0, 1.0)
    out = img.copy()
    _kernel(K.minmax_affine_into, jit)(out, alpha, beta, affine)
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert out.min() >= 0.0 and out.max() <= 1.0


@_BOTH
@given(img=_IMAGES, t=st.floats(0, 4, width=32))  # float32 thresholds: numba and numpy
# compare a float32 pixel with a wider threshold differently (float64 vs float32) at the boundary
@settings(max_examples=60, deadline=None)
def test_threshold_abs_matches_numpy(jit, img, t):
    out = img.copy()
    _kernel(K.threshold_abs_into, jit)(out, t)
    np.testing.assert_array_equal(out, (np.abs(img) > np.float32(t)).astype(np.float32))


@given(
    h=st.integers(2, 24),
    w=st.integers(2, 24),
    ry=st.sampled_from([1, 2, 4]),
    rx=st.sampled_from([1, 2, 4]),
    angle=st.one_of(st.just(0.0), st.floats(-90, 90)),
    seed=st.integers(0, 2**16),
)
@settings(max_examples=40, deadline=None)
def test_noise_item_py_func_agrees_and_zero_angle_is_plain_noise(h, w, ry, rx, angle, seed):
    rng = np.random.default_rng(seed)
    theta = rng.uniform(0, 2 * np.pi, (ry + 1, rx + 1))
    gcos, gsin = np.cos(theta), np.sin(theta)
    jitted = np.empty((h, w), np.float32)
    python = np.empty((h, w), np.float32)
    K.noise_item_into(jitted, gcos, gsin, ry, rx, angle)
    K.noise_item_into.py_func(python, gcos, gsin, ry, rx, angle)
    np.testing.assert_allclose(python, jitted, atol=1e-5)
    if angle == 0.0:
        plain = np.empty((h, w), np.float32)
        K.perlin_into(plain, gcos, gsin, ry, rx, 1.0, False)
        np.testing.assert_array_equal(jitted, plain)
