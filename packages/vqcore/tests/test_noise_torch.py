"""vqcore.noise_torch against depthsim's numba Perlin noise and rotation."""

from __future__ import annotations

import depthsim
import numpy as np
import pytest
import torch
from depthsim.noise import random_gradients
from hypothesis import given, settings
from hypothesis import strategies as st
from vqcore.noise_torch import perlin_noise, random_perlin, rotate_about_centre


def _torch_perlin(seed: int, n: int, shape: tuple[int, int], res: tuple[int, int]) -> np.ndarray:
    gc, gs = random_gradients(np.random.default_rng(seed), n, *res)
    ry = torch.full((n,), res[0])
    rx = torch.full((n,), res[1])
    return perlin_noise(torch.from_numpy(gc), torch.from_numpy(gs), ry, rx, shape).numpy()


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    ry=st.integers(1, 9),
    rx=st.integers(1, 9),
)
def test_perlin_equals_depthsim_for_the_same_gradients(seed, h, w, ry, rx) -> None:
    ref = depthsim.perlin_batch(2, (h, w), (ry, rx), rng=seed)
    np.testing.assert_allclose(_torch_perlin(seed, 2, (h, w), (ry, rx)), ref, atol=2e-6)


def test_items_of_a_batch_keep_their_own_lattice() -> None:
    # Lattices padded to the largest: item k reads only its own [:ry+1, :rx+1] corners.
    shape = (24, 40)
    pieces, gcs, gss = [], [], []
    for k, res in enumerate(((1, 1), (4, 2), (8, 8))):
        gc, gs = random_gradients(np.random.default_rng(k), 1, *res)
        pad = [(0, 0), (0, 8 - res[0]), (0, 8 - res[1])]
        gcs.append(np.pad(gc, pad, constant_values=7.0))  # junk outside the lattice
        gss.append(np.pad(gs, pad, constant_values=7.0))
        pieces.append(depthsim.perlin_batch(1, shape, res, rng=k)[0])
    out = perlin_noise(
        torch.from_numpy(np.concatenate(gcs)),
        torch.from_numpy(np.concatenate(gss)),
        torch.tensor([1, 4, 8]),
        torch.tensor([1, 2, 8]),
        shape,
    )
    np.testing.assert_allclose(out.numpy(), np.stack(pieces), atol=2e-6)


@pytest.mark.parametrize("shape", [(64, 80), (33, 17)])
def test_rotated_thresholded_noise_equals_depthsim_masks(shape) -> None:
    # depthsim's anomaly_mask_batch, item by item: lattice 2**a x 2**b, gradients, angle, then
    # the threshold uniform (unused with a fixed threshold). Same draws -> same masks.
    n, seed, t = 8, 3, 0.5
    gen = np.random.default_rng(seed)
    mine = []
    for _ in range(n):
        a, b = gen.integers(0, 6, size=2)
        ry, rx = 2 ** int(a), 2 ** int(b)
        th = torch.from_numpy(2 * np.pi * gen.random((1, ry + 1, rx + 1)))
        angle = torch.tensor([float(gen.uniform(-90, 90))])
        gen.random(1)
        noise = perlin_noise(th.cos(), th.sin(), torch.tensor([ry]), torch.tensor([rx]), shape)
        mine.append((rotate_about_centre(noise, angle).abs() > t).float()[0].numpy())
    ref = depthsim.anomaly_mask_batch(n, shape, rng=seed, threshold=t)
    # Bilinear weights rounded differently may flip a pixel sitting on the threshold.
    assert (np.stack(mine) != ref).mean() < 1e-3
    assert ref.mean() > 0.01


def test_rotation_by_90_degrees_is_a_transpose_of_a_square() -> None:
    x = torch.rand(2, 9, 9)
    # Positive angles turn content clockwise on screen (depthsim's convention).
    torch.testing.assert_close(
        rotate_about_centre(x, torch.tensor([90.0, 90.0])),
        torch.rot90(x, -1, (1, 2)),
        atol=1e-5,
        rtol=0,
    )


def test_random_perlin_is_reproducible_and_bounded() -> None:
    a = random_perlin(6, (32, 32), generator=torch.Generator().manual_seed(5))
    b = random_perlin(6, (32, 32), generator=torch.Generator().manual_seed(5))
    c = random_perlin(6, (32, 32), generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert float(a.abs().max()) <= 1.0 and float(a.abs().max()) > 0.05
