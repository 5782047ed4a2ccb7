from __future__ import annotations

import pytest
import torch
from vqcore import (
    DADA,
    RGBVQVAE,
    BackboneConfig,
    DepthVQVAE,
    DiscreteAutoencoder,
    VectorQuantizerEMA,
    VqcoreError,
    build_backbone,
    count_parameters,
)


def conv(cin: int, cout: int, k: int, groups: int = 1, bias: bool = True) -> int:
    return cout * (cin // groups) * k * k + (cout if bias else 0)


def res_stack(c: int, rh: int, layers: int, groups: int) -> int:
    return layers * (conv(c, rh, 3, groups, bias=False) + conv(rh, c, 1, groups, bias=False))


def expected_dada(h: int, rh: int, n: int, k: int, d: int) -> dict[str, int]:
    """Spec §1.3, layer by layer (ConvTranspose weights have the same count as a conv)."""
    g = 2
    enc1 = (
        conv(1, h // 4, 1)
        + conv(3, h // 4, 1)
        + conv(h // 2, h // 2, 4, g)
        + conv(h // 2, h, 4, g)
        + conv(h, h, 3, g)
        + res_stack(h, rh, n, g)
    )
    enc2 = conv(h, h, 4, g) + conv(h, h, 3, g) + res_stack(h, rh, n, g)
    pre_vq = conv(h, d, 1, g) + conv(h + d, d, 1, g)
    upsample_t = conv(d, d, 4, g)
    decoder = (
        conv(2 * d, h, 3, g)
        + res_stack(h, rh, n, g)
        + conv(h, h // 2, 4, g)
        + conv(h // 2, h // 4, 4, g)
        + conv(h // 8, 1, 1)
        + conv(h // 8, 3, 1)
    )
    return dict(
        enc1=enc1, enc2=enc2, pre_vq=pre_vq, up=upsample_t, dec=decoder, codebooks=2 * k * d
    )


def expected_plain(c: int, h: int, rh: int, n: int, k: int, d: int) -> int:
    """Spec §1.5: the same layout without groups and without separate input convs."""
    enc1 = conv(c, h // 2, 4) + conv(h // 2, h, 4) + conv(h, h, 3) + res_stack(h, rh, n, 1)
    enc2 = conv(h, h, 4) + conv(h, h, 3) + res_stack(h, rh, n, 1)
    pre_vq = conv(h, d, 1) + conv(h + d, d, 1)
    up = conv(d, d, 4)
    dec = conv(2 * d, h, 3) + res_stack(h, rh, n, 1) + conv(h, h // 2, 4) + conv(h // 2, c, 4)
    return enc1 + enc2 + pre_vq + up + dec


def test_paper_dada_parameter_count_matches_spec_arithmetic():
    model = build_backbone(BackboneConfig.paper("rgbd"), device="meta")
    parts = expected_dada(256, 128, 2, 2048, 256)
    assert count_parameters(model) == sum(parts.values())
    assert (
        count_parameters(model, include_codebooks=False) == sum(parts.values()) - parts["codebooks"]
    )
    # The spec's rounded figures: enc1 ≈1.02 M, enc2 ≈1.15 M, pre-VQ ≈0.10 M, upsample_t ≈0.52 M,
    # decoder ≈1.25 M, total ≈5.1 M excluding the EMA shadow weights.
    for key, approx in dict(enc1=1.02e6, enc2=1.15e6, pre_vq=0.10e6, up=0.52e6, dec=1.25e6).items():
        assert parts[key] == pytest.approx(approx, rel=0.03), key
    assert count_parameters(model) == pytest.approx(5.1e6, rel=0.02)
    assert sum(p.numel() for p in model.encoder_bottom.parameters()) == parts["enc1"]
    assert sum(p.numel() for p in model.decoder.parameters()) == parts["dec"]
    assert sum(p.numel() for p in model.upsample_t.parameters()) == parts["up"]


@pytest.mark.parametrize(("setup", "channels"), [("depth", 1), ("rgb", 3)])
def test_paper_plain_backbone_parameter_count(setup: str, channels: int):
    model = build_backbone(BackboneConfig.paper(setup), device="meta")
    expected = expected_plain(channels, 256, 128, 2, 2048, 256)
    assert count_parameters(model, include_codebooks=False) == expected
    if setup == "depth":
        assert expected == pytest.approx(7.7e6, rel=0.02)  # spec §1.5: ≈7.7 M plus codebooks
    assert count_parameters(model) == expected + 2 * 2048 * 256


def test_tiny_counts_follow_the_same_formula(tiny_backbone):
    cfg = tiny_backbone("rgbd")
    parts = expected_dada(
        cfg.hidden, cfg.res_hidden, cfg.num_res_layers, cfg.num_embeddings, cfg.embedding_dim
    )
    assert count_parameters(build_backbone(cfg)) == sum(parts.values())


@pytest.mark.parametrize(
    ("setup", "cls", "channels"),
    [("rgbd", DADA, 4), ("depth", DepthVQVAE, 1), ("rgb", RGBVQVAE, 3)],
)
def test_shapes_and_contract(setup: str, cls: type, channels: int, tiny_backbone):
    torch.manual_seed(0)
    cfg = tiny_backbone(setup)
    model = build_backbone(cfg)
    assert isinstance(model, cls) and isinstance(model, DiscreteAutoencoder)
    assert (model.in_channels, model.out_channels, model.config) == (channels, channels, cfg)
    assert (model.down_top, model.down_bot) == (8, 4)
    x = torch.rand(2, channels, 32, 24)
    recon, loss, enc = model(x)
    d = cfg.embedding_dim
    assert recon.shape == x.shape and loss.ndim == 0
    assert enc.f1.shape == (2, cfg.hidden, 8, 6)
    assert enc.f_top.shape == enc.q_top.shape == (2, d, 4, 3)
    assert enc.idx_top.shape == (2, 4, 3) and enc.idx_top.dtype == torch.long
    assert enc.f_bot.shape == enc.q_bot.shape == (2, d, 8, 6)
    assert enc.idx_bot.shape == (2, 8, 6)
    # The pieces stage 2 uses reproduce the forward pass.
    model.eval()
    recon, _, enc = model(x)
    torch.testing.assert_close(model.encode_bottom(enc.f1, enc.q_top), enc.f_bot)
    torch.testing.assert_close(model.decode(enc.q_top, enc.q_bot), recon)
    torch.testing.assert_close(model.vq_top.lookup(enc.idx_top), enc.q_top)
    assert model.upsample_t(enc.q_top).shape == enc.q_bot.shape


def test_input_validation_names_dims(tiny_backbone):
    model = build_backbone(tiny_backbone("rgbd"))
    with pytest.raises(ValueError, match=r"C=4"):
        model(torch.zeros(1, 3, 16, 16))
    with pytest.raises(ValueError, match="multiples of 8"):
        model(torch.zeros(1, 4, 20, 16))
    with pytest.raises(ValueError, match="setup='rgbd'"):
        DADA(tiny_backbone("depth"))
    with pytest.raises(VqcoreError, match="setup"):
        BackboneConfig(setup="rgbx")  # type: ignore[arg-type]


def test_dada_output_is_depth_then_rgb(tiny_backbone):
    """Output channel 0 is produced by the depth head, 1..3 by the RGB head (spec §1.3)."""
    torch.manual_seed(1)
    model = build_backbone(tiny_backbone("rgbd")).eval()
    x = torch.rand(1, 4, 16, 16)
    base = model(x)[0]
    with torch.no_grad():
        model.decoder.out_depth.bias += 1.0
    shifted = model(x)[0]
    torch.testing.assert_close(shifted[:, 0], base[:, 0] + 1.0)
    torch.testing.assert_close(shifted[:, 1:], base[:, 1:])


@pytest.mark.parametrize("perturb", ["rgb", "depth"])
def test_grouping_separates_modalities_when_quantisation_is_bypassed(perturb: str, tiny_backbone):
    torch.manual_seed(2)
    model = build_backbone(tiny_backbone("rgbd", init_std=None)).eval()
    x = torch.rand(2, 4, 32, 32)
    y = x.clone()
    changed, kept = (slice(1, 4), slice(0, 1)) if perturb == "rgb" else (slice(0, 1), slice(1, 4))
    y[:, changed] = torch.rand_like(y[:, changed])
    with torch.no_grad():
        out_x, out_y = model.decode_continuous(x), model.decode_continuous(y)
        enc_x, enc_y = model.encode(x, quantize=False), model.encode(y, quantize=False)
    torch.testing.assert_close(out_x[:, kept], out_y[:, kept], rtol=0, atol=1e-6)
    assert (out_x[:, changed] - out_y[:, changed]).abs().max() > 1e-4
    half = model.config.hidden // 2
    feat_kept = slice(0, half) if perturb == "rgb" else slice(half, None)
    torch.testing.assert_close(enc_x.f1[:, feat_kept], enc_y.f1[:, feat_kept], rtol=0, atol=1e-6)


def test_paper_init_is_n_0_002():
    torch.manual_seed(3)
    model = build_backbone(BackboneConfig.paper("rgbd"))
    w = model.encoder_top.conv1.weight
    assert w.std().item() == pytest.approx(0.02, rel=0.05) and abs(w.mean().item()) < 1e-3


@pytest.mark.parametrize("setup", ["rgbd", "depth"])
def test_paper_codebooks_are_the_reference_ema_quantizers(setup: str):
    # spec §1.1 / §1.4: per level 2048 x 256 codes, EMA decay 0.99, Laplace eps 1e-5,
    # commitment 0.25, N(0, 1) init, no dead-code restart, the authors' distance expression.
    model = build_backbone(BackboneConfig.paper(setup), device="meta")
    for vq in (model.vq_top, model.vq_bot):
        assert isinstance(vq, VectorQuantizerEMA)
        assert (vq.num_embeddings, vq.embedding_dim) == (2048, 256)
        assert (vq.decay, vq.eps, vq.commitment_cost) == (0.99, 1e-5, 0.25)
        assert not vq.restart_dead_codes and vq.distance == "reference"
    cfg = BackboneConfig.paper(setup)
    assert (cfg.hidden, cfg.res_hidden, cfg.num_res_layers) == (256, 128, 2)
    assert (model.groups, model.down_top, model.down_bot) == ((2 if setup == "rgbd" else 1), 8, 4)


def test_factory_kwargs_dtype(tiny_backbone):
    model = build_backbone(tiny_backbone("depth"), dtype=torch.float64)
    assert all(p.dtype == torch.float64 for p in model.parameters())
    assert model.vq_top.codebook.dtype == torch.float64
    recon, _, _ = model(torch.rand(1, 1, 16, 16, dtype=torch.float64))
    assert recon.dtype == torch.float64


def test_loss_based_quantizer_option(tiny_backbone):
    model = build_backbone(tiny_backbone("rgb", quantizer="loss"))
    assert model.vq_top.codebook.requires_grad
    _, loss, _ = model(torch.rand(1, 3, 16, 16))
    loss.backward()
    assert model.vq_top.codebook.grad is not None
