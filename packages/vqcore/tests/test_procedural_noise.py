"""The torch Perlin noise against depthsim's numba reference, and its properties."""

from __future__ import annotations

import depthsim
import numpy as np
import pytest
import torch
from depthsim.noise import random_gradients as np_gradients
from hypothesis import given, settings
from hypothesis import strategies as st
from vqcore.procedural import fractal_perlin, perlin_from_gradients, perlin_noise, random_gradients


def _torch(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a).float()


@settings(max_examples=40, deadline=None)
@given(
    h=st.integers(1, 70),
    w=st.integers(1, 70),
    ry=st.integers(1, 9),
    rx=st.integers(1, 9),
    n=st.integers(1, 3),
    seed=st.integers(0, 2**31),
)
def test_same_gradients_same_values_as_numba(h, w, ry, rx, n, seed):
    gc, gs = np_gradients(np.random.default_rng(seed), n, ry, rx)
    ref = depthsim.perlin_batch(n, (h, w), (ry, rx), rng=seed)  # draws exactly these gradients
    got = perlin_from_gradients(_torch(gc), _torch(gs), (h, w))
    np.testing.assert_allclose(got.numpy(), ref, atol=5e-6)


def test_per_item_lattices_equal_single_calls():
    g = torch.Generator().manual_seed(3)
    gc, gs = random_gradients(3, 8, 8, generator=g)
    ry, rx = torch.tensor([1, 4, 8]), torch.tensor([8, 2, 1])
    batch = perlin_from_gradients(gc, gs, (40, 24), (ry, rx))
    for k in range(3):
        a, b = int(ry[k]), int(rx[k])
        one = perlin_from_gradients(
            gc[k : k + 1, : a + 1, : b + 1], gs[k : k + 1, : a + 1, : b + 1], (40, 24)
        )
        torch.testing.assert_close(batch[k], one[0])


@settings(max_examples=25, deadline=None)
@given(cells=st.integers(1, 8), per=st.integers(1, 8), seed=st.integers(0, 2**31))
def test_zero_on_lattice_points_and_bounded(cells, per, seed):
    size = cells * per
    x = perlin_noise(2, (size, size), (cells, cells), generator=torch.Generator().manual_seed(seed))
    assert float(x.abs().max()) <= 1.0 + 1e-6
    assert float(x[:, ::per, ::per].abs().max()) == 0.0


def test_generator_makes_it_reproducible_and_seeds_differ():
    a = fractal_perlin(2, (32, 32), (2, 3), octaves=3, generator=torch.Generator().manual_seed(1))
    b = fractal_perlin(2, (32, 32), (2, 3), octaves=3, generator=torch.Generator().manual_seed(1))
    c = fractal_perlin(2, (32, 32), (2, 3), octaves=3, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_fractal_is_the_normalised_octave_sum():
    shape, res = (32, 32), (2, 2)
    got = fractal_perlin(2, shape, res, octaves=2, generator=torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    p0 = perlin_from_gradients(*random_gradients(2, 2, 2, generator=g), shape)
    p1 = perlin_from_gradients(*random_gradients(2, 4, 4, generator=g), shape)
    torch.testing.assert_close(got, (p0 + 0.5 * p1) / 1.5)


def test_per_item_octaves_use_their_own_amplitudes():
    shape = (16, 16)
    octs = torch.tensor([1, 3])
    got = fractal_perlin(2, shape, (2, 2), octaves=octs, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)
    ps = [
        perlin_from_gradients(*random_gradients(2, 2 * 2**o, 2 * 2**o, generator=g), shape)
        for o in range(3)
    ]
    torch.testing.assert_close(got[0], ps[0][0])
    torch.testing.assert_close(got[1], (ps[0][1] + 0.5 * ps[1][1] + 0.25 * ps[2][1]) / 1.75)


def test_bad_arguments_raise_one_line_errors():
    gc, gs = random_gradients(1, 2, 2)
    with pytest.raises(ValueError, match="gradient lattice"):
        perlin_from_gradients(gc, gs, (8, 8), (4, 4))
    with pytest.raises(ValueError, match="gcos/gsin"):
        perlin_from_gradients(gc[0], gs[0], (8, 8))
    with pytest.raises(ValueError, match="res"):
        perlin_noise(1, (8, 8), (0, 2))
