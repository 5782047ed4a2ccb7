"""The one ranked nearest-code search (``vqcore.search.ranked_codes``) against the searches it
replaced: the quantizers' former chunked ``nearest_k`` loop, frozen here as the reference."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from vqcore import VectorQuantizer, VectorQuantizerEMA, nearest_codes, ranked_codes
from vqcore.search import DEFAULT_BLOCK_ELEMENTS, row_chunk, squared_distances


def _former_nearest_k(vq, x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    # _QuantizerBase.nearest_k before issue 15 item 3 (its own chunk loop over squared_distances).
    with torch.no_grad():
        flat = x.to(torch.float64 if x.dtype == torch.float64 else torch.float32)
        flat = flat.permute(0, 2, 3, 1).reshape(-1, vq.embedding_dim)
        cb = vq.codebook.detach().to(flat.dtype)
        rows = row_chunk(vq.num_embeddings, DEFAULT_BLOCK_ELEMENTS)
        vals, idxs = [], []
        for s in range(0, flat.shape[0], rows):
            v, i = torch.topk(squared_distances(flat[s : s + rows], cb), k, largest=False)
            vals.append(v)
            idxs.append(i)
    shape = (x.shape[0], x.shape[2], x.shape[3], k)
    return torch.cat(vals).view(shape), torch.cat(idxs).view(shape)


def _codebook(g: torch.Generator, k: int, d: int, ties: bool, dtype: torch.dtype) -> torch.Tensor:
    if ties:  # small integers: exact equal distances (duplicate codes, symmetric ones)
        return torch.randint(-2, 3, (k, d), generator=g).to(dtype)
    return torch.randn(k, d, generator=g, dtype=dtype)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    k_codes=st.integers(1, 40),
    d=st.integers(1, 9),
    ties=st.booleans(),
    double=st.booleans(),
    ema=st.booleans(),
    data=st.data(),
)
def test_quantizer_nearest_k_equals_the_former_loop(
    seed: int, k_codes: int, d: int, ties: bool, double: bool, ema: bool, data
) -> None:
    g = torch.Generator().manual_seed(seed)
    dtype = torch.float64 if double else torch.float32
    vq = (VectorQuantizerEMA if ema else VectorQuantizer)(k_codes, d)
    with torch.no_grad():
        vq.embedding.copy_(_codebook(g, k_codes, d, ties, torch.float32))
    x = (
        torch.randint(-2, 3, (2, d, 3, 4), generator=g).to(dtype)
        if ties
        else torch.randn(2, d, 3, 4, generator=g, dtype=dtype)
    )
    k = data.draw(st.integers(1, k_codes))
    new, old = vq.nearest_k(x, k), _former_nearest_k(vq, x, k)
    assert torch.equal(new[0], old[0]) and torch.equal(new[1], old[1])


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    n=st.integers(1, 60),
    k_codes=st.integers(1, 30),
    d=st.integers(1, 6),
    block=st.integers(1, 300),
    ties=st.booleans(),
    row_norms=st.booleans(),
    data=st.data(),
)
def test_ranked_codes_is_topk_of_the_chunked_distances(
    seed: int, n: int, k_codes: int, d: int, block: int, ties: bool, row_norms: bool, data
) -> None:
    g = torch.Generator().manual_seed(seed)
    cb = _codebook(g, k_codes, d, ties, torch.float32)
    flat = _codebook(g, n, d, ties, torch.float32)
    k = data.draw(st.integers(1, k_codes))
    # The chunk's matmul rounds as the chunk's shape says (a 1-row block is a gemv): the reference
    # ranks the same blocks.
    rows = row_chunk(k_codes, block)
    blocks = [
        squared_distances(flat[s : s + rows], cb, row_norms=row_norms) for s in range(0, n, rows)
    ]
    whole = torch.cat(blocks)
    ref_v, ref_i = (
        torch.cat(t) for t in zip(*(torch.topk(b, k, largest=False) for b in blocks), strict=True)
    )
    torch.testing.assert_close(whole, squared_distances(flat, cb, row_norms=row_norms))
    v, i = ranked_codes(flat, cb, k, row_norms=row_norms, block_elements=block)
    assert torch.equal(v, ref_v) and torch.equal(i, ref_i)
    ranks = torch.randint(0, k, (n,), generator=g)
    rv, ri = ranked_codes(flat, cb, k, ranks=ranks, row_norms=row_norms, block_elements=block)
    assert torch.equal(ri, ref_i.gather(1, ranks[:, None])[:, 0])
    assert torch.equal(rv, ref_v.gather(1, ranks[:, None])[:, 0])
    if row_norms:  # rank 0 is at the distance of the argmin search's code (ties: either code)
        nearest = nearest_codes(flat, cb, block_elements=block)
        assert torch.equal(whole.gather(1, nearest[:, None])[:, 0], ref_v[:, 0])


def test_ranked_codes_rejects_bad_shapes_and_k() -> None:
    with pytest.raises(ValueError, match=r"expects \(N, D\) and \(K, D\)"):
        ranked_codes(torch.zeros(3, 2), torch.zeros(4, 3), 1)
    with pytest.raises(ValueError, match="k=5 outside"):
        ranked_codes(torch.zeros(3, 2), torch.zeros(4, 2), 5)


def test_ranked_codes_skips_codes_of_the_rows_own_group() -> None:
    g = torch.Generator().manual_seed(5)
    flat, cb = torch.randn(13, 3, generator=g), torch.randn(11, 3, generator=g)
    rows, codes = torch.arange(13) % 3, torch.arange(11) % 4
    d, i = ranked_codes(flat, cb, 2, exclude=(rows, codes), block_elements=22)
    ref = torch.cdist(flat.double(), cb.double()) ** 2
    ref[rows[:, None] == codes[None, :]] = float("inf")
    want = ref.topk(2, dim=1, largest=False)
    torch.testing.assert_close(d.double(), want.values, atol=1e-4, rtol=1e-4)
    assert bool((rows[:, None] != codes[i]).all())  # no neighbour from the row's own group
