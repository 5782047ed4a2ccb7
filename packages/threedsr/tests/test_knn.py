"""The bank's nearest-row search and local scales (threedsr.memory.knn, threedsr.memory.local_scale)
against brute force, and the feature memory's local-scale normalisation: equal to distance / scale
of the nearest row, unchanged by a common rescaling of the features, stored and reloaded, absent
in older states."""

from __future__ import annotations

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from threedsr import DetectorConfig, MemoryConfig, ThreedsrError
from threedsr.memory import FeatureMemory, fit_memory
from threedsr.memory.knn import channel_atoms, nearest_rows, split_bank
from threedsr.memory.local_scale import local_scales
from threedsr_testutil import random_parts, synthetic_class


def _brute_local(bank: torch.Tensor, ids: torch.Tensor | None, k: int) -> torch.Tensor:
    d = torch.cdist(bank.double(), bank.double())
    out = []
    for j in range(bank.shape[0]):
        other = torch.ones(bank.shape[0], dtype=torch.bool)
        other[j] = False
        if ids is not None and not bool((ids == ids[0]).all()):
            other &= ids != ids[j]
        out.append(d[j, other].sort().values[k - 1])
    return torch.stack(out).float()


@settings(max_examples=30, deadline=None)
@given(
    q=st.integers(1, 9),
    n=st.integers(1, 12),
    c=st.integers(1, 5),
    chunk=st.integers(1, 7),
    bank_block=st.one_of(st.none(), st.integers(1, 13)),
    seed=st.integers(0, 2**16),
)
def test_nearest_rows_equals_brute_force(q, n, c, chunk, bank_block, seed) -> None:
    g = torch.Generator().manual_seed(seed)
    query, bank = torch.randn(q, c, generator=g), torch.randn(n, c, generator=g)
    skip = torch.rand(n, generator=g) < 0.3
    skip[0] = False  # at least one row to find
    d, i = nearest_rows(query, bank, skip=skip, chunk=chunk, bank_block=bank_block)
    ref = torch.cdist(query.double(), bank.double())
    ref[:, skip] = float("inf")
    # Squared: the search's fp32 rounding is absolute in d^2 (||x||^2 + ||e||^2 - 2 x.e), so the
    # root of a near-zero distance may be off by ~3e-4 (hypothesis found one).
    best = ref.min(1).values ** 2
    torch.testing.assert_close(d.double() ** 2, best, atol=1e-4, rtol=1e-4)
    # The index found is a nearest row (ties may pick either of equal distances).
    torch.testing.assert_close(ref.gather(1, i[:, None])[:, 0] ** 2, best, atol=1e-4, rtol=1e-4)


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(4, 20),
    scans=st.integers(1, 4),
    k=st.integers(1, 3),
    chunk=st.integers(1, 9),
    bank_block=st.one_of(st.none(), st.integers(1, 21)),
    sorted_ids=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_local_scales_equal_brute_force(n, scans, k, chunk, bank_block, sorted_ids, seed) -> None:
    g = torch.Generator().manual_seed(seed)
    bank = torch.randn(n, 3, generator=g)
    # Interleaved scans exercise the search's sort by scan; sorted ones are how fit_memory stores.
    ids = torch.arange(n) * scans // n if sorted_ids else torch.arange(n) % scans
    if n - int(torch.bincount(ids).max()) < k and scans > 1:
        with pytest.raises(ValueError, match="too few rows"):
            local_scales(bank, ids, k, chunk=chunk, bank_block=bank_block)
        return
    got = local_scales(bank, ids, k, chunk=chunk, bank_block=bank_block)
    want = _brute_local(bank, ids, k)
    want = want.clamp_min(float(want.median()) * 0.01)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


@settings(max_examples=40, deadline=None)
@given(n_parts=st.integers(1, 4), c=st.integers(1, 7), seed=st.integers(0, 2**16))
def test_channel_atoms_cut_every_part_into_disjoint_atoms(n_parts, c, seed) -> None:
    parts = random_parts(torch.Generator().manual_seed(seed), n_parts, c)
    atoms, of_part = channel_atoms(parts)
    covered = [ch for atom in atoms for ch in atom]
    assert len(set(covered)) == len(covered)  # disjoint
    assert set(covered) == set(parts.any(0).nonzero()[:, 0].tolist())
    for p, ids in enumerate(of_part):
        assert sorted(ch for a in ids for ch in atoms[a]) == parts[p].nonzero()[:, 0].tolist()
    # Fewest atoms: two channels share an atom exactly when they belong to the same parts.
    assert len(atoms) == parts.T[parts.any(0)].unique(dim=0).shape[0]


@settings(max_examples=30, deadline=None)
@given(
    q=st.integers(1, 9),
    n=st.integers(1, 12),
    c=st.integers(1, 6),
    n_parts=st.integers(1, 4),
    chunk=st.integers(1, 7),
    bank_block=st.one_of(st.none(), st.integers(1, 13)),
    seed=st.integers(0, 2**16),
)
@example(q=1, n=5, c=2, n_parts=1, chunk=1, bank_block=None, seed=12121)  # d = 1e-4 -> 0
def test_nearest_rows_of_parts_equal_each_part_searched_alone(
    q, n, c, n_parts, chunk, bank_block, seed
) -> None:
    g = torch.Generator().manual_seed(seed)
    query, bank = torch.randn(q, c, generator=g), torch.randn(n, c, generator=g)
    parts = random_parts(g, n_parts, c)
    skip = torch.rand(n, generator=g) < 0.3
    skip[0] = False
    d, i = nearest_rows(query, bank, skip=skip, parts=parts, chunk=chunk, bank_block=bank_block)
    assert d.shape == i.shape == (n_parts, q)
    # A bank split once (what FeatureMemory reuses for a batch) searches the same.
    split = split_bank(bank, channel_atoms(parts))
    d2, i2 = nearest_rows(query, split, skip=skip, chunk=chunk, bank_block=bank_block)
    assert torch.equal(d2, d) and torch.equal(i2, i)
    for p in range(n_parts):
        ref = torch.cdist(query[:, parts[p]].double(), bank[:, parts[p]].double())
        ref[:, skip] = float("inf")
        best = ref.min(1).values ** 2  # squared, as above
        torch.testing.assert_close(d[p].double() ** 2, best, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(
            ref.gather(1, i[p][:, None])[:, 0] ** 2, best, atol=1e-4, rtol=1e-4
        )


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(4, 16),
    scans=st.integers(2, 4),
    n_parts=st.integers(1, 3),
    chunk=st.integers(1, 9),
    bank_block=st.one_of(st.none(), st.integers(1, 17)),
    seed=st.integers(0, 2**16),
)
def test_local_scales_of_parts_equal_each_part_alone(
    n, scans, n_parts, chunk, bank_block, seed
) -> None:
    g = torch.Generator().manual_seed(seed)
    bank = torch.randn(n, 5, generator=g)
    parts = random_parts(g, n_parts, 5)
    ids = torch.arange(n) % scans
    if n - int(torch.bincount(ids).max()) < 2:
        return
    got = local_scales(bank, ids, 2, parts=parts, chunk=chunk, bank_block=bank_block)
    assert got.shape == (n_parts, n)
    for p in range(n_parts):
        want = _brute_local(bank[:, parts[p]], ids, 2)
        want = want.clamp_min(float(want.median()) * 0.01)
        torch.testing.assert_close(got[p], want, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("bank_block", [1, 2, 3, None])
def test_nearest_rows_picks_the_first_of_equal_rows_across_blocks(bank_block) -> None:
    # Rows 1 and 3 are equally near; row 1 must win whichever block each lands in (the exported
    # graph's min over the whole bank picks the first, and the row's index picks its scale).
    bank = torch.tensor([[5.0], [1.0], [7.0], [1.0]])
    d, i = nearest_rows(torch.tensor([[0.0], [1.0]]), bank, bank_block=bank_block)
    assert i.tolist() == [1, 1] and d.tolist() == [1.0, 0.0]
    # A skipped row is never found, even when it is the only exact match.
    skip = torch.tensor([False, True, False, False])
    _, i = nearest_rows(torch.tensor([[1.0]]), bank, skip=skip, bank_block=bank_block)
    assert i.tolist() == [3]


def test_local_scales_leave_the_rows_own_scan_out() -> None:
    # Rows 0 and 1 are one scan (neighbouring cells, nearly the same); the scale of row 0 must
    # come from the other scan's rows, not from its twin.
    bank = torch.tensor([[0.0], [0.01], [2.0], [5.0]])
    ids = torch.tensor([0, 0, 1, 2])
    assert local_scales(bank, ids, 1).tolist() == pytest.approx([2.0, 1.99, 1.99, 3.0])
    # Unknown scans: the nearest other row.
    assert local_scales(bank, None, 1).tolist() == pytest.approx([0.01, 0.01, 1.99, 3.0])


def test_local_scales_errors_and_floor() -> None:
    with pytest.raises(ValueError, match="k must be >= 1"):
        local_scales(torch.zeros(3, 2), None, 0)
    with pytest.raises(ValueError, match="too few rows"):
        local_scales(torch.zeros(2, 2), None, 2)
    # Exact duplicates across scans: the floor (1 % of the median) keeps every scale > 0.
    bank = torch.tensor([[0.0], [0.0], [1.0], [2.0], [4.0]])
    s = local_scales(bank, torch.arange(5), 1)
    assert float(s.min()) == pytest.approx(0.01 * float(s.median()))


def test_memory_distance_is_plain_distance_over_the_nearest_rows_scale() -> None:
    g = torch.Generator().manual_seed(0)
    bank, ids = torch.randn(50, 4, generator=g), torch.arange(50) // 10
    scales = local_scales(bank, ids, 3)
    feats = torch.randn(2, 4, 3, 5, generator=g)
    plain = FeatureMemory(bank, "rgbd", ids).distance(feats)
    scaled = FeatureMemory(bank, "rgbd", ids, local_scale=scales).distance(feats)
    q = feats.permute(0, 2, 3, 1).reshape(-1, 4)
    nearest = torch.cdist(q, bank).argmin(1)
    torch.testing.assert_close(scaled.flatten(), plain.flatten() / scales[nearest])
    # A common rescaling of the features (units) leaves the ratio unchanged.
    again = FeatureMemory(bank * 7.0, "rgbd", ids, local_scale=local_scales(bank * 7.0, ids, 3))
    torch.testing.assert_close(again.distance(feats * 7.0), scaled, rtol=1e-4, atol=1e-5)


def test_local_scale_survives_the_state_and_older_states_stay_plain() -> None:
    g = torch.Generator().manual_seed(1)
    bank, ids = torch.randn(30, 3, generator=g), torch.arange(30) // 5
    mem = FeatureMemory(bank, "rgbd", ids, local_scale=local_scales(bank, ids, 2))
    state = mem.state()
    assert "local_scale" in state
    back = FeatureMemory.from_state(state, "rgbd")
    torch.testing.assert_close(back.local_scale, mem.local_scale)
    state.pop("local_scale")  # a memory written before session 8
    assert FeatureMemory.from_state(state, "rgbd").local_scale is None
    with pytest.raises(ValueError, match="local_scale must be"):
        FeatureMemory(bank, "rgbd", ids, local_scale=torch.ones(3))


def test_fit_memory_with_local_k_scores_good_scans_near_one() -> None:
    """On good scans scored against the memory without their own rows (the calibration's
    leave-one-scan-out), the local-scale distance is of order 1: that is its unit."""
    data = synthetic_class("depth", n=6, seed=2)
    cfg = MemoryConfig(
        scales=(1.0, 2.0), groups=("surface", "interior"), weights=None, local_min_scans=6
    )
    mem = fit_memory(data.x, "depth", cfg.replace(local_k=3))
    assert mem.local_scale is not None and mem.local_scale.shape == (mem.bank.shape[0],)
    plain = fit_memory(data.x, "depth", cfg.replace(local_k=0))
    assert plain.local_scale is None
    # Fewer scans than local_min_scans: plain distances (the scales would be too noisy).
    few = fit_memory(data.x, "depth", cfg.replace(local_k=3, local_min_scans=7))
    assert few.local_scale is None
    torch.testing.assert_close(few.bank, plain.bank)
    x = data.x[:3]
    d = mem(x, exclude=torch.arange(3))
    on = x[:, 0] > 0.05
    assert 0.2 < float(d[on].median()) < 5.0


def test_config_field_and_presets() -> None:
    assert DetectorConfig.for_memory("rgbd").memory.local_k == 3
    assert DetectorConfig.for_memory("depth").memory.local_k == 3
    assert DetectorConfig.for_memory("rgb").memory.local_k == 0  # encoder memory, plain distances
    assert DetectorConfig.cpu("rgbd", method="fused").memory.local_k == 3
    assert DetectorConfig.paper("rgb", method="fused").memory == MemoryConfig.for_setup("rgb")
    with pytest.raises(ThreedsrError, match="local_k must be an int >= 0"):
        DetectorConfig.for_memory("rgbd", local_k=-1)
    assert DetectorConfig.for_memory("rgbd").memory.local_min_scans == 40
    with pytest.raises(ThreedsrError, match="local_min_scans must be an int >= 1"):
        DetectorConfig.for_memory("rgbd", local_min_scans=0)
    cfg = DetectorConfig.for_memory("depth", local_k=5)
    assert DetectorConfig.from_dict(cfg.to_dict()).memory.local_k == 5
