"""The two distance forms of the nearest-code search (issue 25): ``"reference"`` is the authors'
expression bit for bit, ``"fast"`` picks the same code wherever the nearest code is not a
near-tie; both reach the quantizers and the backbone through its config."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from vqcore import (
    BackboneConfig,
    StageOneConfig,
    VectorQuantizer,
    VectorQuantizerEMA,
    VqcoreError,
    build_backbone,
    nearest_codes,
    read_checkpoint,
    reference_distances,
    save_checkpoint,
    train_dada,
)


def _authors(flat: torch.Tensor, emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # Copied from the authors' VectorQuantizerEMA.forward (zalando pytorch-vq-vae, DSR, 3DSR).
    distances = (
        torch.sum(flat**2, dim=1, keepdim=True)
        + torch.sum(emb**2, dim=1)
        - 2 * torch.matmul(flat, emb.t())
    )
    return distances, torch.argmin(distances, dim=1)


def _near_ties(g: torch.Generator, n: int, k: int, d: int, spread: float) -> tuple:
    """Rows on the bisector of a pair of close codes ``c +- delta u`` (all other codes far), so
    the two nearest distances are equal in exact arithmetic and split by rounding alone."""
    cb = 10 * torch.randn(k, d, generator=g)
    c = torch.randn(d, generator=g)
    u = torch.nn.functional.normalize(torch.randn(d, generator=g), dim=0)
    delta = 0.05 + torch.rand((), generator=g)
    cb[0], cb[1] = c + delta * u, c - delta * u
    w = spread * torch.randn(n, d, generator=g)
    w -= (w @ u)[:, None] * u  # perpendicular to u: equidistant from both codes
    return c + w, cb


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    n=st.integers(1, 80),
    k=st.integers(2, 40),
    d=st.integers(1, 12),
    kind=st.sampled_from(["random", "near_tie", "integer"]),
)
def test_reference_form_is_the_authors_expression_bit_for_bit(
    seed: int, n: int, k: int, d: int, kind: str
) -> None:
    g = torch.Generator().manual_seed(seed)
    if kind == "near_tie":
        flat, cb = _near_ties(g, n, k, d, spread=0.3)
    elif kind == "integer":  # exact ties: argmin's first index on both sides
        flat = torch.randint(-2, 3, (n, d), generator=g).float()
        cb = torch.randint(-2, 3, (k, d), generator=g).float()
    else:
        flat, cb = torch.randn(n, d, generator=g), torch.randn(k, d, generator=g)
    dist, idx = _authors(flat, cb)
    assert torch.equal(reference_distances(flat, cb), dist)
    assert torch.equal(nearest_codes(flat, cb, distance="reference"), idx)
    for vq in (VectorQuantizerEMA(k, d, distance="reference"), VectorQuantizer(k, d)):
        vq.set_distance("reference")
        with torch.no_grad():
            vq.embedding.copy_(cb)
        x = flat.T.reshape(1, d, 1, n)  # (B, D, H, W) whose flattened rows are ``flat``
        assert torch.equal(vq.eval()(x).indices.flatten(), idx)
        assert torch.equal(vq.distances(x).reshape(n, k), dist)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    n=st.integers(1, 200),
    k=st.integers(2, 64),
    d=st.integers(1, 16),
    block=st.integers(1, 500),
)
def test_fast_form_picks_the_reference_code_away_from_ties(
    seed: int, n: int, k: int, d: int, block: int
) -> None:
    g = torch.Generator().manual_seed(seed)
    flat, cb = torch.randn(n, d, generator=g), torch.randn(k, d, generator=g)
    fast = nearest_codes(flat, cb, block_elements=block)
    ref = nearest_codes(flat, cb, distance="reference")
    exact = torch.cdist(flat.double(), cb.double()) ** 2
    two = exact.topk(2, dim=1, largest=False).values
    scale = flat.double().square().sum(1) + cb.double().square().sum(1).max()
    clear = (two[:, 1] - two[:, 0]) > 1e-4 * scale  # far above fp32 rounding of either form
    assert torch.equal(fast[clear], ref[clear])
    assert torch.equal(ref[clear], exact.argmin(dim=1)[clear])


def test_near_ties_are_where_the_forms_may_disagree() -> None:
    # Not an equality: a measurement that the constructed rows are real near-ties (both forms
    # land on one of the two tied codes, and the forms' distances differ by rounding only).
    g = torch.Generator().manual_seed(0)
    flat, cb = _near_ties(g, 4000, 64, 32, spread=1.0)
    fast, ref = nearest_codes(flat, cb), nearest_codes(flat, cb, distance="reference")
    assert set(fast.tolist()) <= {0, 1} and set(ref.tolist()) <= {0, 1}
    assert 0 < int((ref == 0).sum()) < len(ref)  # rounding splits the ties both ways


def test_distance_form_validation_and_repr() -> None:
    with pytest.raises(ValueError, match="distance must be one of"):
        nearest_codes(torch.zeros(1, 2), torch.zeros(3, 2), distance="exact")
    with pytest.raises(ValueError, match="distance must be one of"):
        VectorQuantizerEMA(4, 2, distance="exact")
    assert "distance='reference'" in repr(VectorQuantizer(4, 2, distance="reference"))


def test_backbone_config_carries_the_form_to_its_quantizers() -> None:
    assert BackboneConfig.paper("rgbd").vq_distance == "reference"
    assert BackboneConfig.paper("depth", vq_distance="fast").vq_distance == "fast"
    assert BackboneConfig.cpu("rgbd").vq_distance == "fast"
    assert BackboneConfig().vq_distance == "fast"
    # a checkpoint's config written before the field existed: the fast form it ran with
    old = {k: v for k, v in BackboneConfig.paper("depth").to_dict().items() if k != "vq_distance"}
    assert BackboneConfig.from_dict(old).vq_distance == "fast"
    with pytest.raises(VqcoreError, match="vq_distance must be one of"):
        BackboneConfig.cpu("depth", vq_distance="exact")
    tiny = dict(hidden=16, res_hidden=8, num_res_layers=1, num_embeddings=8, embedding_dim=4)
    for form in ("fast", "reference"):
        for quantizer in ("ema", "loss"):
            cfg = BackboneConfig.cpu("depth", vq_distance=form, quantizer=quantizer, **tiny)
            bb = build_backbone(cfg)
            assert bb.vq_top.distance == bb.vq_bot.distance == form


def test_stage_one_presets_and_resuming_a_file_written_before_the_field(
    tmp_path, tiny_stage_one
) -> None:
    assert StageOneConfig.paper("rgbd").backbone.vq_distance == "reference"
    assert StageOneConfig.cpu("rgbd").backbone.vq_distance == "fast"
    cfg = tiny_stage_one("depth", tmp_path, iterations=2)
    train_dada(cfg)
    state = read_checkpoint(tmp_path)
    del state["config"]["vq_distance"]
    save_checkpoint(
        {k: v for k, v in state.items() if k not in ("kind", "format_version")},
        tmp_path / "backbone.pt",
    )
    form = cfg.backbone.replace(vq_distance="reference")
    res = train_dada(cfg.replace(iterations=3, resume=True, backbone=form))
    assert res.steps == 3 and res.model.vq_top.distance == "reference"
    assert read_checkpoint(tmp_path)["config"]["vq_distance"] == "reference"
