from __future__ import annotations

import depthsim
import numpy as np
import pytest
from depthsim import _drivers as D
from depthsim import _kernels as K
from hypothesis import given, settings
from hypothesis import strategies as st


def test_binary_float32_and_deterministic():
    m = depthsim.anomaly_mask_batch(16, (64, 64), rng=0)
    assert m.shape == (16, 64, 64) and m.dtype == np.float32
    assert set(np.unique(m).tolist()) <= {0.0, 1.0}
    assert np.array_equal(m, depthsim.anomaly_mask_batch(16, (64, 64), rng=0))
    gen = np.random.default_rng(0)
    assert np.array_equal(
        m, np.stack([depthsim.anomaly_mask((64, 64), rng=gen) for _ in range(16)])
    )
    assert 0.0 < m.mean() < 0.5


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), t1=st.floats(0, 1), t2=st.floats(0, 1))
def test_area_decreases_with_threshold(seed, t1, t2):
    lo, hi = min(t1, t2), max(t1, t2)
    a = depthsim.anomaly_mask((32, 32), rng=seed, threshold=lo)
    b = depthsim.anomaly_mask((32, 32), rng=seed, threshold=hi)
    assert np.all(b <= a)  # nested masks, hence area(hi) <= area(lo)


def test_threshold_matches_noise():
    """The mask is exactly |rotated noise| > t for the drawn parameters."""
    gen = np.random.default_rng(4)
    params = depthsim.sample_noise_params(3, gen)
    noise = np.empty((3, 40, 40), np.float32)
    for k in range(3):
        K.noise_item_into(noise[k], params.gcos[k], params.gsin[k], *params.res[k], params.angle[k])
    t = np.array([0.1, 0.3, 0.5])
    m = np.empty_like(noise)
    D.anomaly_mask_kernel(
        m,
        params.gcos,
        params.gsin,
        params.res[:, 0].copy(),
        params.res[:, 1].copy(),
        params.angle,
        t,
    )
    np.testing.assert_array_equal(m, (np.abs(noise) > t[:, None, None]).astype(np.float32))
    m_py = np.empty_like(noise)
    D.anomaly_mask_kernel.py_func(
        m_py,
        params.gcos,
        params.gsin,
        params.res[:, 0].copy(),
        params.res[:, 1].copy(),
        params.angle,
        t,
    )
    np.testing.assert_array_equal(m, m_py)


@pytest.mark.parametrize("bad", [(0.8, 0.4), (0.1,), -0.5])
def test_bad_threshold(bad):
    with pytest.raises(depthsim.DepthsimError, match="threshold"):
        depthsim.anomaly_mask((8, 8), rng=0, threshold=bad)


@pytest.mark.parametrize("bad", ["x", np.array([0.8, 0.4]), np.array([[0.4, 0.8]]), object()])
def test_bad_threshold_of_any_type_names_threshold(bad):
    with pytest.raises(depthsim.DepthsimError, match=r"^threshold: [^\n]*$"):
        depthsim.anomaly_mask((8, 8), rng=0, threshold=bad)


def test_threshold_as_array_equals_tuple():
    a = depthsim.anomaly_mask_batch(3, (32, 32), rng=5, threshold=np.array([0.3, 0.6]))
    b = depthsim.anomaly_mask_batch(3, (32, 32), rng=5, threshold=(0.3, 0.6))
    np.testing.assert_array_equal(a, b)
