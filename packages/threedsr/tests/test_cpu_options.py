"""The cpu preset's documented departures: decoder copy, residual SRM, split and depth anomalies."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from threedsr import (
    AnomalyConfig,
    DetectorConfig,
    ModelConfig,
    ThreeDSR,
    ThreedsrError,
    train_detector,
)
from threedsr.dsr.anomaly_generator import DEPTH_ONLY, JOINT, RGB_ONLY, FeatureAnomalyGenerator
from threedsr.dsr.augment import deform_depth, paint_rgb
from threedsr.dsr.host_batch import generate_anomalies, image_space_anomalies
from threedsr.dsr.modules import GeneralDecoderCopy, SubspaceRestriction
from threedsr_testutil import synthetic_class, tiny_backbone, tiny_config


def test_residual_srm_starts_as_identity_and_reference_does_not() -> None:
    x = torch.randn(2, 8, 8, 8)
    assert torch.equal(SubspaceRestriction(8, 4, residual=True)(x), x)
    assert not torch.allclose(SubspaceRestriction(8, 4)(x), x, atol=1e-3)


@pytest.mark.parametrize("setup", ["rgbd", "depth", "rgb"])
def test_decoder_copy_with_residual_srm_reproduces_general_reconstruction(setup: str) -> None:
    bb = tiny_backbone(setup)
    model = ThreeDSR(bb, ModelConfig.cpu(object_decoder="general_copy", srm_residual=True))
    assert isinstance(model.object_decoder, GeneralDecoderCopy)
    x = synthetic_class(setup, n=2).x
    with torch.no_grad():
        out = model.eval()(x)
    torch.testing.assert_close(out.object_recon, out.general_recon)
    # A copy: training it must not move the frozen general decoder.
    trainable = {id(p) for p in model.object_decoder.parameters() if p.requires_grad}
    assert trainable and not trainable & {id(p) for p in bb.decoder.parameters()}
    assert not any(p.requires_grad for p in bb.parameters())


@pytest.mark.parametrize("setup", ["rgbd", "depth", "rgb"])
def test_decoder_copy_takes_the_concatenated_codes_like_object_decoder(setup: str) -> None:
    """One tensor [upsampled top | bottom], as ObjectDecoder takes: for DADA the halves are split
    and interleaved per group, bit-identical to the older two-tensor call (deprecated) and to the
    backbone's own decode."""
    bb = tiny_backbone(setup)
    dec = GeneralDecoderCopy(bb)
    assert dec.groups == bb.groups == (2 if setup == "rgbd" else 1)
    g = torch.Generator().manual_seed(0)
    d = bb.config.embedding_dim
    q_top, q_bot = torch.randn(2, d, 4, 4, generator=g), torch.randn(2, d, 8, 8, generator=g)
    with torch.no_grad():
        up = bb.upsample_t(q_top)
        new = dec(torch.cat((up, q_bot), dim=1))
        with pytest.warns(DeprecationWarning, match="one tensor"):
            old = dec(up, q_bot)
        general = bb.decode(q_top, q_bot)
    assert torch.equal(new, old)
    assert torch.equal(new, general)
    with pytest.raises(ValueError, match="GeneralDecoderCopy"):
        dec(up)


def test_model_config_rejects_unknown_object_decoder() -> None:
    with pytest.raises(ThreedsrError, match="object_decoder"):
        ModelConfig(object_decoder="resnet")  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [dict(modality_split_prob=1.5), dict(depth_anomaly_prob=-0.1)])
def test_detector_config_rejects_bad_probabilities(bad: dict[str, float]) -> None:
    with pytest.raises(ThreedsrError, match=next(iter(bad))):
        DetectorConfig.preset("cpu", **bad)


def test_modality_split_confines_anomalies_to_one_stream() -> None:
    bb = tiny_backbone("rgbd")
    data = synthetic_class("rgbd", n=8)
    gen = FeatureAnomalyGenerator(modality_split_prob=1.0, shuffle_prob=0.0)
    out = gen(bb, data.x, data.foreground, rng=3)
    half = out.q_top.shape[1] // 2
    kinds = set(out.modality.tolist())
    assert kinds <= {DEPTH_ONLY, RGB_ONLY} and len(kinds) == 2
    with torch.no_grad():
        clean = bb.decode(out.q_top, out.q_bot)
        anom = bb.decode(out.q_top_anom, out.q_bot_anom)
    for i, kind in enumerate(out.modality.tolist()):
        kept = slice(half, None) if kind == DEPTH_ONLY else slice(None, half)
        changed = slice(None, half) if kind == DEPTH_ONLY else slice(half, None)
        assert torch.equal(out.q_top_anom[i, kept], out.q_top[i, kept])
        assert torch.equal(out.q_bot_anom[i, kept], out.q_bot[i, kept])
        assert not (
            torch.equal(out.q_bot_anom[i, changed], out.q_bot[i, changed])
            and torch.equal(out.q_top_anom[i, changed], out.q_top[i, changed])
        )
        # The grouped general decoder keeps the streams apart: the other modality's output
        # is untouched, exactly as a real depth-only or colour-only defect.
        same = slice(1, None) if kind == DEPTH_ONLY else slice(0, 1)
        torch.testing.assert_close(anom[i, same], clean[i, same], atol=1e-5, rtol=0)


def test_modality_split_is_a_no_op_for_single_stream_backbones() -> None:
    bb = tiny_backbone("depth")
    data = synthetic_class("depth", n=4)
    split = FeatureAnomalyGenerator(modality_split_prob=1.0)(
        bb, data.x, data.foreground, rng=1, generator=torch.Generator().manual_seed(1)
    )
    plain = FeatureAnomalyGenerator()(
        bb, data.x, data.foreground, rng=1, generator=torch.Generator().manual_seed(1)
    )
    assert set(split.modality.tolist()) == {JOINT}
    torch.testing.assert_close(split.q_bot_anom, plain.q_bot_anom)


def test_deform_depth_changes_only_depth_inside_the_mask() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 4, 32, 32, generator=g)
    mask = torch.zeros(3, 1, 32, 32)
    mask[:, :, 8:24, 10:26] = 1
    amp = np.array([0.3, -0.2, 0.0])
    y = deform_depth(x, mask, amp)
    assert torch.equal(y[:, 1:], x[:, 1:])
    d = (y - x)[:, 0]
    assert torch.equal(d[mask[:, 0] == 0], torch.zeros_like(d[mask[:, 0] == 0]))
    for i, a in enumerate(amp):
        assert float(d[i].abs().max()) == pytest.approx(abs(a), abs=1e-6)  # flat 16x16 centre
        assert float((d[i] * np.sign(a)).min()) >= -1e-7
    assert not torch.equal(x, y) and x.shape == y.shape


def test_depth_anomalies_replace_codes_with_encoded_deformation() -> None:
    bb = tiny_backbone("rgbd")
    data = synthetic_class("rgbd", n=4)
    cfg = tiny_config("rgbd", depth_anomaly_prob=1.0, depth_anomaly_amplitude=(0.3, 0.3))
    gen, image = generate_anomalies(
        FeatureAnomalyGenerator(), bb, data.x, data.foreground, cfg, np.random.default_rng(0)
    )
    assert torch.equal(image[:, 1:], data.x[:, 1:]) and not torch.equal(image, data.x)
    clean = bb.encode(data.x)
    torch.testing.assert_close(gen.q_bot, clean.q_bot)  # the targets stay the clean codes
    torch.testing.assert_close(gen.gt, data.foreground)  # pixel-exact ground truth
    sign = []
    for s in (-1.0, 1.0):
        enc = bb.encode(deform_depth(data.x, data.foreground, np.full(4, 0.3 * s)))
        sign.append(torch.isclose(gen.q_bot_anom, enc.q_bot).flatten(1).all(1))
    assert bool((sign[0] | sign[1]).all())


def test_training_with_all_cpu_options_runs_and_resumes(tmp_path) -> None:
    over = dict(
        object_decoder="general_copy",
        srm_residual=True,
        modality_split_prob=0.5,
        depth_anomaly_prob=0.5,
    )
    cfg = tiny_config("rgbd", out=str(tmp_path / "run"), iterations=4, **over)
    bb, data = tiny_backbone("rgbd"), synthetic_class("rgbd")
    res = train_detector(cfg, backbone=bb, data=data)
    assert res.step == 4 and np.isfinite(res.metrics["total"])
    more = train_detector(cfg.replace(iterations=6), backbone=bb, data=data)
    assert more.step == 6


def test_paint_rgb_blends_only_colour_inside_the_mask() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 4, 16, 16, generator=g)
    mask = torch.zeros(2, 1, 16, 16)
    mask[:, :, 4:12, 4:12] = 1
    paint = torch.rand(2, 3, 16, 16, generator=g)
    y = paint_rgb(x, mask, paint, np.array([1.0, 0.25]), first=1)
    assert torch.equal(y[:, :1], x[:, :1])  # depth untouched
    inside = mask[:, 0] > 0
    assert torch.equal(
        y[:, 1:].permute(1, 0, 2, 3)[:, ~inside], x[:, 1:].permute(1, 0, 2, 3)[:, ~inside]
    )
    torch.testing.assert_close(y[0, 1:, 4:12, 4:12], paint[0, :, 4:12, 4:12])
    expected = x[1, 1:, 4:12, 4:12] + 0.25 * (paint[1, :, 4:12, 4:12] - x[1, 1:, 4:12, 4:12])
    torch.testing.assert_close(y[1, 1:, 4:12, 4:12], expected)


@pytest.mark.parametrize("setup", ["rgbd", "depth", "rgb"])
def test_image_space_anomalies_change_the_input_only_under_the_mask(setup: str) -> None:
    data = synthetic_class(setup, n=6)
    cfg = tiny_config(
        setup, image_anomaly_prob=1.0, depth_anomaly_prob=0.0, depth_anomaly_amplitude=(0.3, 0.3)
    )
    mask = torch.zeros_like(data.foreground)
    mask[:, :, 8:20, 8:20] = 1
    y = image_space_anomalies(data.x, mask, cfg, np.random.default_rng(0))
    outside = (mask == 0).expand_as(y)
    assert torch.equal(y[outside], data.x[outside])
    changed = (y != data.x).flatten(2).any(-1)  # (B, C): which channels moved
    if setup == "depth":
        assert bool(changed.all())
    elif setup == "rgb":
        assert bool(changed.any(1).all())
    else:  # depth only, RGB only or both: every sample changed, each kind drawn
        depth_moved, rgb_moved = changed[:, 0], changed[:, 1:].any(1)
        assert bool((depth_moved | rgb_moved).all())
        assert bool((depth_moved & ~rgb_moved).any()) and bool((rgb_moved & ~depth_moved).any())


def test_image_anomaly_prob_excludes_depth_anomaly_prob() -> None:
    with pytest.raises(ThreedsrError, match="not both"):
        AnomalyConfig(image_anomaly_prob=0.5, depth_anomaly_prob=0.5)
    with pytest.raises(ThreedsrError, match="image_anomaly_prob"):
        DetectorConfig.preset("cpu", image_anomaly_prob=2.0, depth_anomaly_prob=0.0)
    with pytest.raises(ThreedsrError, match="unet_input"):
        ModelConfig(unet_input="both")  # type: ignore[arg-type]


@pytest.mark.parametrize("setup", ["rgbd", "rgb"])
def test_unet_input_sees_the_image_instead_of_the_general_reconstruction(setup: str) -> None:
    bb = tiny_backbone(setup)
    torch.manual_seed(0)
    model = ThreeDSR(bb, ModelConfig.cpu(unet_input="input", unet_base=4)).eval()
    x = synthetic_class(setup, n=2).x
    with torch.no_grad():
        out = model(x)
        enc = bb.encode(x)
        same = model(q_top=enc.q_top, q_bot=enc.q_bot, image=x)
        other = model(q_top=enc.q_top, q_bot=enc.q_bot, image=torch.zeros_like(x))
        direct = model.anomaly_unet(torch.cat((out.object_recon, x), 1))
    torch.testing.assert_close(out.logits, direct)
    torch.testing.assert_close(same.logits, out.logits)
    assert not torch.allclose(other.logits, out.logits)
    with pytest.raises(ValueError, match="needs x or image"):
        model(q_top=enc.q_top, q_bot=enc.q_bot)


def test_training_with_image_space_anomalies_and_input_unet(tmp_path) -> None:
    cfg = tiny_config(
        "rgbd",
        out=str(tmp_path / "run"),
        iterations=3,
        image_anomaly_prob=1.0,
        depth_anomaly_prob=0.0,
        unet_input="input",
    )
    res = train_detector(cfg, backbone=tiny_backbone("rgbd"), data=synthetic_class("rgbd"))
    assert res.step == 3 and np.isfinite(res.metrics["total"])
