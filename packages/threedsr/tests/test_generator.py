from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from threedsr.generator import (
    MODE_BOTH,
    MODE_HI,
    MODE_LO,
    FeatureAnomalyGenerator,
    blocky_mask,
    code_rank_bounds,
    patch_shuffle,
    sample_codes,
)
from threedsr_testutil import tiny_backbone


@settings(max_examples=25, deadline=None)
@given(s=st.floats(0.0, 1.0), k=st.integers(2, 4096), ex=st.floats(0.0, 0.5))
def test_rank_bounds_never_empty_and_follow_reference(s: float, k: int, ex: float) -> None:
    lo, hi = code_rank_bounds(s, k, ex)
    assert 0 <= lo < hi <= k - 1 or (k == 2 and hi == 1)
    assert hi == max(1, min(int(s * k) + 1, k - 1))
    if int(k * ex) < hi:
        assert lo == int(k * ex)


def _ranks(features: torch.Tensor, codebook: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    b, d, h, w = features.shape
    flat = features.permute(0, 2, 3, 1).reshape(-1, d).double()
    dist = torch.cdist(flat, codebook.double()) ** 2
    chosen = dist.gather(1, idx.reshape(-1, 1))
    return (dist < chosen).sum(dim=1).view(b, h, w)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), s=st.floats(0.1, 1.0), block=st.sampled_from([64, 1 << 22]))
def test_sampled_codes_respect_strength_rank_bounds_and_mask(
    seed: int, s: float, block: int
) -> None:
    g = torch.Generator().manual_seed(seed)
    k = 200
    codebook = torch.randn(k, 6, generator=g)
    feats = torch.randn(2, 6, 5, 7, generator=g)
    mask = torch.rand(2, 5, 7, generator=g) < 0.5
    codes, idx = sample_codes(
        feats, codebook, mask, np.array([s, 1.0]), generator=g, block_elements=block
    )
    assert ((idx >= 0) == mask).all()
    assert (codes[~mask[:, None].expand_as(codes)] == 0).all()
    ranks = _ranks(feats, codebook, idx.clamp_min(0))
    for i, strength in enumerate([s, 1.0]):
        lo, hi = code_rank_bounds(strength, k)
        r = ranks[i][mask[i]]
        assert ((r >= lo) & (r < hi)).all(), (lo, hi, r)
    got = codes.permute(0, 2, 3, 1)[mask]
    assert torch.equal(got, codebook[idx[mask]])


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 1000),
    patch=st.sampled_from([1, 2, 4]),
    gh=st.integers(1, 3),
    gw=st.integers(1, 3),
)
def test_patch_shuffle_is_a_permutation_of_tiles(seed: int, patch: int, gh: int, gw: int) -> None:
    h, w = gh * patch, gw * patch
    x = torch.arange(2 * 3 * h * w, dtype=torch.float32).view(2, 3, h, w)
    y = patch_shuffle(x, patch, np.random.default_rng(seed))
    assert torch.equal(y.flatten().sort().values, x.flatten().sort().values)
    for b in range(2):
        tiles_x = {
            tuple(x[b, :, i : i + patch, j : j + patch].flatten().tolist())
            for i in range(0, h, patch)
            for j in range(0, w, patch)
        }
        tiles_y = {
            tuple(y[b, :, i : i + patch, j : j + patch].flatten().tolist())
            for i in range(0, h, patch)
            for j in range(0, w, patch)
        }
        assert tiles_x == tiles_y  # whole tiles move, channels stay together


def test_blocky_mask_granularity() -> None:
    m = torch.zeros(1, 1, 32, 32)
    m[0, 0, 9, 17] = 1
    b8 = blocky_mask(m, 8)
    assert b8.sum() == 64 and b8[0, 0, 8:16, 16:24].all()
    assert blocky_mask(m, 4).sum() == 16


@pytest.mark.parametrize("setup", ["rgbd", "depth"])
def test_generator_touches_only_masked_cells(setup: str) -> None:
    bb = tiny_backbone(setup)
    c = 4 if setup == "rgbd" else 1
    x = torch.rand(16, c, 64, 64)
    mask = torch.zeros(16, 1, 64, 64)
    mask[:, :, 16:40, 24:48] = 1
    mask[3] = 0  # an anomaly-free sample
    gen = FeatureAnomalyGenerator(shuffle_prob=0.5)
    out = gen(bb, x, mask, rng=np.random.default_rng(0), generator=torch.Generator().manual_seed(0))
    enc = bb.encode(x)
    assert torch.equal(out.q_top, enc.q_top) and torch.equal(out.q_bot, enc.q_bot)
    m_lo = torch.nn.functional.max_pool2d(mask, 8) > 0
    m_hi = torch.nn.functional.max_pool2d(mask, 4) > 0
    mode = out.mode.numpy()
    assert set(mode.tolist()) <= {MODE_BOTH, MODE_LO, MODE_HI}
    for i in range(16):
        top_changed = (out.q_top_anom[i] != enc.q_top[i]).any(0)
        bot_changed = (out.q_bot_anom[i] != enc.q_bot[i]).any(0)
        assert not top_changed[~m_lo[i, 0]].any()
        if mode[i] == MODE_HI:
            assert not top_changed.any()
            assert not bot_changed[~m_hi[i, 0]].any()
        if mode[i] == MODE_LO:
            assert not bot_changed.any()  # fine level stays the clean Q2
        gt_ratio = 4 if mode[i] == MODE_HI else 8
        assert torch.equal(out.gt[i : i + 1], blocky_mask(mask[i : i + 1], gt_ratio))
    assert torch.equal(out.q_top_anom[3], enc.q_top[3]) and torch.equal(
        out.q_bot_anom[3], enc.q_bot[3]
    )
    assert out.gt[3].sum() == 0


def test_modes_frequencies() -> None:
    bb = tiny_backbone("depth")
    gen = FeatureAnomalyGenerator()
    x = torch.rand(400, 1, 64, 64)
    out = gen(bb, x, torch.zeros(400, 1, 64, 64), rng=1)
    freq = np.bincount(out.mode.numpy(), minlength=3) / 400
    assert freq[MODE_BOTH] == pytest.approx(0.5, abs=0.08)
    assert freq[MODE_LO] == pytest.approx(0.25, abs=0.07)
    assert freq[MODE_HI] == pytest.approx(0.25, abs=0.07)


def test_generator_is_deterministic() -> None:
    bb = tiny_backbone("rgbd")
    x = torch.rand(4, 4, 64, 64)
    mask = (torch.rand(4, 1, 64, 64) > 0.5).float()
    gen = FeatureAnomalyGenerator()
    a = gen(bb, x, mask, rng=5, generator=torch.Generator().manual_seed(1))
    b = gen(bb, x, mask, rng=5, generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
