from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from threedsr.dsr.anomaly_generator import (
    MODE_BOTH,
    MODE_HI,
    MODE_LO,
    FeatureAnomalyGenerator,
    blocky_mask,
    patch_shuffle,
)
from threedsr.dsr.code_sampling import code_rank_bounds, sample_codes
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


def _former_sample_codes(
    features, codebook, cell_mask, strengths, *, exclude_nearest, generator, block_elements
):
    # sample_codes before issue 15 item 3 (its own addmm/topk loop), the reference of the port to
    # vqcore.search.ranked_codes.
    b, d, h, w = features.shape
    k = codebook.shape[0]
    cb = codebook.to(features.dtype)
    cb_sq = (cb * cb).sum(dim=1)
    strengths = [float(s) for s in np.asarray(torch.as_tensor(strengths).cpu())]
    indices = torch.full((b, h * w), -1, dtype=torch.long, device=features.device)
    flat_all = features.permute(0, 2, 3, 1).reshape(b, h * w, d)
    mask_flat = cell_mask.reshape(b, h * w)
    for i in range(b):
        cells = mask_flat[i].nonzero(as_tuple=True)[0]
        if cells.numel() == 0:
            continue
        lo, hi = code_rank_bounds(strengths[i], k, exclude_nearest)
        ranks = torch.randint(lo, hi, (cells.numel(),), generator=generator, device=features.device)
        rows = max(1, block_elements // k)
        for start in range(0, cells.numel(), rows):
            part = cells[start : start + rows]
            x = flat_all[i, part]
            dist = torch.addmm(cb_sq.unsqueeze(0), x, cb.t(), alpha=-2.0)
            _, order = torch.topk(dist, hi, dim=1, largest=False, sorted=True)
            indices[i, part] = order.gather(1, ranks[start : start + rows, None]).squeeze(1)
    codes = torch.zeros(b, h * w, d, dtype=features.dtype, device=features.device)
    chosen = indices >= 0
    codes[chosen] = cb[indices[chosen]]
    return codes.view(b, h, w, d).permute(0, 3, 1, 2), indices.view(b, h, w)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    b=st.integers(1, 3),
    k=st.integers(1, 80),
    d=st.integers(1, 6),
    block=st.sampled_from([1, 7, 64, 500, 1 << 22]),
    ex=st.floats(0.0, 0.3),
    ties=st.booleans(),
    density=st.floats(0.0, 1.0),
)
def test_sample_codes_equals_the_former_search(
    seed: int, b: int, k: int, d: int, block: int, ex: float, ties: bool, density: float
) -> None:
    g = torch.Generator().manual_seed(seed)
    if ties:  # small integers: exact equal distances, so topk's order of equals is compared too
        codebook = torch.randint(-2, 3, (k, d), generator=g).float()
        feats = torch.randint(-2, 3, (b, d, 4, 5), generator=g).float()
    else:
        codebook = torch.randn(k, d, generator=g)
        feats = torch.randn(b, d, 4, 5, generator=g)
    mask = torch.rand(b, 4, 5, generator=g) < density
    strengths = torch.rand(b, generator=g).numpy()
    g_new, g_old = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
    new = sample_codes(
        feats,
        codebook,
        mask,
        strengths,
        exclude_nearest=ex,
        generator=g_new,
        block_elements=block,
    )
    old = _former_sample_codes(
        feats,
        codebook,
        mask,
        strengths,
        exclude_nearest=ex,
        generator=g_old,
        block_elements=block,
    )
    assert torch.equal(new[0], old[0]) and torch.equal(new[1], old[1])
    assert torch.equal(g_new.get_state(), g_old.get_state())  # same draws
