from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from vqcore import VectorQuantizer, VectorQuantizerEMA, nearest_codes, squared_distances


def _brute_force(flat: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    # Explicit N x K x D difference: the thing the chunked search avoids.
    return ((flat[:, None, :] - codebook[None]) ** 2).sum(-1)


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 70),
    k=st.integers(1, 40),
    d=st.integers(1, 9),
    block=st.integers(1, 200),
    seed=st.integers(0, 2**16),
)
def test_chunked_nearest_equals_brute_force(n: int, k: int, d: int, block: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    flat = torch.randn(n, d, generator=g, dtype=torch.float64)
    cb = torch.randn(k, d, generator=g, dtype=torch.float64)
    brute = _brute_force(flat, cb)
    idx = nearest_codes(flat, cb, block_elements=block)
    # Same minimum distance (ties may pick either code).
    torch.testing.assert_close(brute.gather(1, idx[:, None])[:, 0], brute.min(1).values)
    torch.testing.assert_close(squared_distances(flat, cb), brute)


def test_distances_and_nearest_k_match_brute_force():
    torch.manual_seed(0)
    vq = VectorQuantizerEMA(20, 3)
    x = torch.randn(2, 3, 4, 5)
    flat = x.permute(0, 2, 3, 1).reshape(-1, 3)
    brute = _brute_force(flat, vq.codebook).view(2, 4, 5, 20)
    torch.testing.assert_close(vq.distances(x), brute, atol=1e-4, rtol=1e-5)
    vals, idx = vq.nearest_k(x, 4)
    torch.testing.assert_close(vals, brute.sort(-1).values[..., :4], atol=1e-4, rtol=1e-5)
    assert idx.shape == (2, 4, 5, 4)
    torch.testing.assert_close(idx[..., 0], vq.quantize_indices(x))
    with pytest.raises(ValueError, match="k=21"):
        vq.nearest_k(x, 21)


def test_forward_returns_nearest_codes_and_commitment_loss():
    torch.manual_seed(1)
    vq = VectorQuantizerEMA(16, 4, commitment_cost=0.25).eval()
    x = torch.randn(2, 4, 3, 3)
    out = vq(x)
    flat = x.permute(0, 2, 3, 1).reshape(-1, 4)
    expected_idx = _brute_force(flat, vq.codebook).argmin(1).view(2, 3, 3)
    assert torch.equal(out.indices, expected_idx)
    torch.testing.assert_close(out.quantized, vq.lookup(expected_idx))
    torch.testing.assert_close(out.loss, 0.25 * ((x - out.quantized) ** 2).mean())


def test_ema_update_matches_hand_computation():
    torch.manual_seed(2)
    k, d, decay, eps = 6, 3, 0.9, 1e-5
    vq = VectorQuantizerEMA(k, d, decay=decay, eps=eps)
    emb0 = vq.embedding.double().numpy().copy()
    w0 = vq.ema_weight.double().numpy().copy()
    n0 = np.linspace(0.0, 2.0, k)
    vq.ema_cluster_size.copy_(torch.from_numpy(n0))
    x = torch.randn(2, d, 2, 3)
    out = vq.train()(x)

    flat = x.permute(0, 2, 3, 1).reshape(-1, d).double().numpy()
    idx = ((flat[:, None] - emb0[None]) ** 2).sum(-1).argmin(1)
    onehot = np.eye(k)[idx]
    n = decay * n0 + (1 - decay) * onehot.sum(0)
    total = n.sum()
    n = (n + eps) / (total + k * eps) * total
    w = decay * w0 + (1 - decay) * onehot.T @ flat
    np.testing.assert_array_equal(out.indices.flatten().numpy(), idx)
    np.testing.assert_allclose(vq.ema_cluster_size.numpy(), n, rtol=1e-5)
    np.testing.assert_allclose(vq.ema_weight.numpy(), w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(vq.embedding.numpy(), w / n[:, None], rtol=1e-4, atol=1e-5)
    # The codes returned are the ones *before* the update (reference behaviour).
    np.testing.assert_allclose(
        out.quantized.permute(0, 2, 3, 1).reshape(-1, d).numpy(), emb0[idx], rtol=1e-5, atol=1e-6
    )


def test_eval_mode_never_updates_the_codebook():
    vq = VectorQuantizerEMA(8, 2).eval()
    before = {k: v.clone() for k, v in vq.state_dict().items()}
    vq(torch.randn(3, 2, 4, 4))
    for key, value in vq.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_reference_init():
    torch.manual_seed(3)
    vq = VectorQuantizerEMA(2048, 256)
    assert vq.embedding.std().item() == pytest.approx(1.0, abs=0.01)
    assert vq.ema_weight.std().item() == pytest.approx(1.0, abs=0.01)
    assert not vq.ema_cluster_size.any()
    assert not list(vq.parameters())  # codebook is a buffer: never in the optimizer


@pytest.mark.parametrize("cls", [VectorQuantizerEMA, VectorQuantizer])
def test_straight_through_gradcheck(cls):
    torch.manual_seed(4)
    vq = cls(5, 3).double().eval()
    # Inputs well away from Voronoi boundaries so finite differences keep the same codes.
    x = vq.codebook.detach()[torch.tensor([0, 1, 2, 3])].T.reshape(1, 3, 2, 2) + 1e-2
    x = x.clone().requires_grad_(True)
    if cls is VectorQuantizerEMA:
        # The loss is the commitment term only, smooth in x while the codes stay fixed.
        assert torch.autograd.gradcheck(lambda inp: vq(inp).loss, (x,), eps=1e-6, atol=1e-7)
    else:
        # Stop-gradients make finite differences meaningless here: check the closed form.
        out = vq(x)
        (gx,) = torch.autograd.grad(out.loss, x)
        torch.testing.assert_close(gx, 0.25 * 2 * (x - out.quantized).detach() / x.numel())
    # The straight-through path: the Jacobian of the codes w.r.t. the input is the identity, so a
    # downstream g receives exactly g'(q) (what finite differences of g at q give).
    jac = torch.autograd.functional.jacobian(lambda inp: vq(inp).quantized, x)
    torch.testing.assert_close(jac.reshape(12, 12), torch.eye(12, dtype=torch.float64))
    q = vq(x).quantized.detach().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda z: torch.sin(3 * z).sum(), (q,))
    (g_st,) = torch.autograd.grad(torch.sin(3 * vq(x).quantized).sum(), x)
    torch.testing.assert_close(g_st, 3 * torch.cos(3 * q.detach()))


def test_loss_based_quantizer_trains_its_codebook():
    torch.manual_seed(5)
    vq = VectorQuantizer(4, 2, commitment_cost=0.25)
    x = torch.randn(1, 2, 3, 3, requires_grad=True)
    out = vq(x)
    q = vq.lookup(out.indices)
    expected = ((q - x) ** 2).mean() * 1.25
    torch.testing.assert_close(out.loss, expected)
    out.loss.backward()
    assert vq.embedding.grad is not None and vq.embedding.grad.abs().sum() > 0
    assert float(vq.usage().sum()) > 0


def test_dead_code_restart_moves_codes_onto_inputs():
    torch.manual_seed(6)
    vq = VectorQuantizerEMA(64, 2, restart_dead_codes=True).train()
    x = torch.randn(1, 2, 4, 4) * 0.01 + 5.0  # far from the N(0, 1) codes
    vq(x)
    flat = x.permute(0, 2, 3, 1).reshape(-1, 2)
    dist = _brute_force(vq.codebook, flat).min(1).values
    assert (dist < 1e-6).sum() >= 60  # all but the few live codes now sit on inputs
    assert not vq.dead_codes(1e-3).any()
    assert vq(x).perplexity > 2.0


def test_search_ignores_bf16_autocast():
    torch.manual_seed(7)
    vq = VectorQuantizerEMA(128, 16).eval()
    x = torch.randn(2, 16, 4, 4)
    ref = vq(x).indices
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = vq(x)
    assert torch.equal(out.indices, ref) and out.quantized.dtype == torch.float32


def test_shape_errors_name_the_expected_dims():
    vq = VectorQuantizerEMA(8, 4)
    with pytest.raises(ValueError, match=r"D=4"):
        vq(torch.zeros(1, 3, 2, 2))
    with pytest.raises(ValueError, match=r"\(B, H, W\)"):
        vq.lookup(torch.zeros(2, 2, dtype=torch.long))
