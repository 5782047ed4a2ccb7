"""The memory's traced search (threedsr.memory.traced), what exported graphs run: its two-level
minimum against numpy's first-occurrence argmin, its augmented products against the distance,
padding rows never found, and a traced memory whose bank spans several padded blocks against the
eager search."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from threedsr import Detector, MapCalibration, export_detector
from threedsr.export import DYNAMO_MIN_TORCH, _torch_version
from threedsr.memory import MemoryConfig, fit_memory
from threedsr.memory.knn import channel_atoms, nearest_rows
from threedsr.memory.traced import augmented_banks, first_minimum, traced_nearest
from threedsr_testutil import random_parts, tiny_config


@settings(max_examples=60, deadline=None)
@given(
    q=st.integers(1, 6),
    blocks=st.integers(1, 5),
    block=st.integers(1, 6),
    levels=st.integers(1, 4),
    seed=st.integers(0, 2**16),
)
def test_first_minimum_is_the_first_occurrence_of_the_minimum(q, blocks, block, levels, seed):
    # Few distinct values: ties within and across blocks are the rule.
    x = np.random.default_rng(seed).integers(0, levels, (q, blocks * block)).astype(np.float32)
    value, index = first_minimum(torch.from_numpy(x), block)
    assert value.tolist() == x.min(1).tolist()
    assert index.tolist() == x.argmin(1).tolist()


def test_first_minimum_refuses_a_width_that_is_not_whole_blocks() -> None:
    with pytest.raises(ValueError, match="N = 5 is not a multiple of the block 2"):
        first_minimum(torch.zeros(1, 5), 2)
    with pytest.raises(ValueError, match="10 rows a product, blocks of 4"):
        traced_nearest(torch.zeros(1, 2), [torch.zeros(3, 8)], [None], [[0]], 4, 10)


@settings(max_examples=40, deadline=None)
@given(
    q=st.integers(1, 9),
    n=st.integers(1, 40),
    c=st.integers(1, 7),
    n_parts=st.integers(1, 4),
    block=st.integers(1, 9),
    blocks_a_product=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_traced_nearest_equals_each_part_searched_by_brute_force(
    q, n, c, n_parts, block, blocks_a_product, seed
):
    g = torch.Generator().manual_seed(seed)
    query, bank = torch.randn(q, c, generator=g), torch.randn(n, c, generator=g)
    parts = random_parts(g, n_parts, c)
    atoms, of_part = channel_atoms(parts)
    augmented = augmented_banks(bank, atoms, block)
    step = min(block, n)
    assert all(a.shape[1] % step == 0 and a.shape[1] - n < step for a in augmented)
    found = traced_nearest(query, augmented, atoms, of_part, block, block * blocks_a_product)
    for p, (d, i) in enumerate(found):
        ref = torch.cdist(query[:, parts[p]].double(), bank[:, parts[p]].double()) ** 2
        assert bool((i < n).all())  # a padding row is never nearest
        torch.testing.assert_close(d.double(), ref.min(1).values, atol=1e-4, rtol=1e-4)
        # a nearest row, up to the products' fp32 rounding (ties may pick either)
        torch.testing.assert_close(
            ref.gather(1, i[:, None])[:, 0], ref.min(1).values, atol=1e-4, rtol=1e-4
        )


def test_augmented_rows_give_the_distance_less_the_query_norm() -> None:
    g = torch.Generator().manual_seed(0)
    bank, x = torch.randn(10, 3, generator=g), torch.randn(4, 3, generator=g)
    (aug,) = augmented_banks(bank, [None], 4)  # 10 rows padded to 12
    assert aug.shape == (4, 12)
    got = torch.cat([x, torch.ones(4, 1)], 1) @ aug
    want = (bank * bank).sum(1) - 2 * x @ bank.t()
    torch.testing.assert_close(got[:, :10], want)
    assert bool((got[:, 10:] >= 1e29).all())


def _jit_trace(module: torch.nn.Module, x: torch.Tensor) -> torch.nn.Module:
    with warnings.catch_warnings():
        # torch 2.15 deprecates torch.jit (a FutureWarning); the torchscript export format still
        # uses it, so its traced search stays checked while torch ships it.
        warnings.filterwarnings("ignore", r"`torch\.jit\.trace", FutureWarning)
        return torch.jit.trace(module, x, check_trace=False)


def test_a_traced_memory_over_padded_blocks_maps_as_the_eager_one(monkeypatch) -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.rand(6, 4, 64, 64, generator=g)
    x[:, 0] = 0
    x[:, 0, 16:48, 16:48] = 0.5 + 0.1 * torch.rand(6, 32, 32, generator=g)
    cfg = MemoryConfig(modalities="separate+joint", local_min_scans=3)
    monkeypatch.setattr("threedsr.memory.torch_model.MINIMUM_BLOCK", 7)  # when it is made
    mem = fit_memory(x[:4], "rgbd", cfg)
    n = mem.bank.shape[0]
    # Blocks of 7 bank rows, 2 a product: several products, blocks and padding, as a 100k-row
    # bank in products of 4096 rows and blocks of 64.
    assert n > 14 and n % 7
    monkeypatch.setattr("threedsr.memory.torch_model.PRODUCT_ROWS", 14)
    # The object's cells are found when the graph runs: another count, or none at all.
    other = x[4:].clone()
    other[0, 0, 8:56, 8:56] = 0.5 + 0.1 * torch.rand(48, 48, generator=g)
    other[1, 0] = 0
    with torch.no_grad():
        recorded = [_jit_trace(mem, x[4:])]
        if _torch_version() >= DYNAMO_MIN_TORCH:  # what the pt2 and dynamo ONNX exports record
            batch = {0: torch.export.Dim("batch")}
            recorded.append(torch.export.export(mem, (x[4:],), dynamic_shapes=(batch,)).module())
        for graph in recorded:
            torch.testing.assert_close(graph(x[4:]), mem(x[4:]), atol=1e-4, rtol=1e-4)
            got = graph(other)
            torch.testing.assert_close(got, mem(other), atol=1e-4, rtol=1e-4)
            assert bool((got[1] == 0).all()) and bool((got[0] > 0).any())
            torch.testing.assert_close(graph(other[:1]), mem(other[:1]), atol=1e-4, rtol=1e-4)
    # the eager search it must equal, on one part's rows
    atoms, of_part = mem.atoms
    q = torch.randn(5, mem.bank.shape[1])
    d, i = nearest_rows(q, mem.bank, parts=mem.parts)
    found = traced_nearest(q, augmented_banks(mem.bank, atoms, 7), atoms, of_part, 7, 14)
    for p, (dp, ip) in enumerate(found):
        torch.testing.assert_close(dp.sqrt(), d[p], atol=1e-4, rtol=1e-4)
        assert torch.equal(ip, i[p])


def test_an_exported_search_finishes_each_product_before_the_next(monkeypatch, tmp_path) -> None:
    # Every product's nearest rows (both levels' ArgMin) feed the next product, so no runtime
    # can leave them for last and hold every product's distances meanwhile (onnxruntime did:
    # 10.7 GB against 1.3 GB). Only the last product's feed the output alone.
    onnx = pytest.importorskip("onnx")

    g = torch.Generator().manual_seed(3)
    x = torch.rand(4, 4, 64, 64, generator=g)
    x[:, 0] = 0
    x[:, 0, 16:48, 16:48] = 0.5 + 0.1 * torch.rand(4, 32, 32, generator=g)
    monkeypatch.setattr("threedsr.memory.torch_model.MINIMUM_BLOCK", 8)
    mem = fit_memory(x[:3], "rgbd", MemoryConfig(modalities="separate+joint", local_min_scans=2))
    # 4 products of whole blocks of 8 rows: enough for the chain, fewer nodes to record
    rows = 8 * -(-mem.bank.shape[0] // 32)
    monkeypatch.setattr("threedsr.memory.torch_model.PRODUCT_ROWS", rows)
    products = -(-mem.bank.shape[0] // rows)
    assert products >= 3
    cfg = tiny_config("rgbd").replace(method="memory")
    det = Detector(cfg, memory=mem, memory_calibration=MapCalibration(1.0, 0.5), device="cpu")
    export_detector(det, tmp_path / "m.onnx")
    nodes = onnx.load(str(tmp_path / "m.onnx")).graph.node
    producer = {out: node for node in nodes for out in node.output}

    def ancestors(node) -> set[int]:
        seen: set[int] = set()
        stack = list(node.input)
        while stack:
            parent = producer.get(stack.pop())
            if parent is not None and id(parent) not in seen:
                seen.add(id(parent))
                stack.extend(parent.input)
        return seen

    feeding = set().union(*(ancestors(n) for n in nodes if n.op_type == "MatMul"))
    argmins = [n for n in nodes if n.op_type == "ArgMin"]
    parts = mem.parts.shape[0]
    assert len(argmins) == 2 * parts * products
    assert sum(id(n) not in feeding for n in argmins) == 2 * parts
