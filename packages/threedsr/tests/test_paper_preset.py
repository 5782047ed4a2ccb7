"""The ``paper`` preset against the reference spec, fact by fact (stage 2: schedule, anomalies,
losses, scoring, preprocessing, the heads' widths), and the README's claim about its widths: they
are the spec's only on a paper-width backbone."""

from __future__ import annotations

import pytest
import vqcore
from threedsr import DetectorConfig
from threedsr.dsr.torch_model import ThreeDSR


def _trainable(model: ThreeDSR) -> dict[str, int]:
    return {
        name: sum(p.numel() for p in module.parameters())
        for name, module in model.trainable_modules().items()
    }


@pytest.mark.parametrize("setup", ["rgbd", "depth"])
def test_paper_preset_is_the_reference_schedule_anomalies_and_losses(setup: str) -> None:
    cfg = DetectorConfig.paper(setup)
    # spec §3.7: Adam 2e-4, batch 16, 30k iterations, x0.1 at int(0.8 epochs) = 24k; fp32.
    assert (cfg.method, cfg.image_size, cfg.batch_size, cfg.iterations) == ("3dsr", 384, 16, 30_000)
    assert (cfg.lr, cfg.lr_milestones, cfg.lr_gamma, cfg.precision) == (
        2e-4,
        (24_000,),
        0.1,
        "fp32",
    )
    # spec §3.3-§3.4: the mask, the strengths, the 5 % exclusion, the shuffle, the rotation.
    a = cfg.anomaly
    assert (a.mask_threshold, a.zero_mask_prob, a.restrict_to_foreground) == ((0.4, 0.8), 0.5, True)
    assert (a.strength_range, a.exclude_nearest, a.shuffle_prob) == ((0.1, 1.0), 0.05, 0.5)
    assert a.rotation_deg == 15.0
    # README rows 18-22: the departures are off.
    assert (a.modality_split_prob, a.depth_anomaly_prob, a.image_anomaly_prob) == (0, 0, 0)
    m = cfg.model
    assert (m.srm_levels, m.srm_residual, m.object_decoder, m.unet_input) == (
        2,
        False,
        "reference",
        "general",
    )
    assert (m.unet_base, m.init_std, m.objdec_res_skip, m.vq_distance) == (
        32,
        0.02,
        "relu",
        "reference",
    )
    # spec §3.6: focal (gamma 2) + L1 on the mask + MSE features + 10 x MSE image.
    loss = cfg.loss
    assert (loss.feature_loss, loss.mask_l1, loss.image_loss_weight, loss.focal_gamma) == (
        "mse",
        True,
        10.0,
        2.0,
    )
    # spec §5: a box filter, 11 (RGB+D) or 21 (depth only), then the max.
    assert (cfg.smoothing, cfg.filter_size) == ("box", 11 if setup == "rgbd" else 21)
    # spec §4: 5 mm foreground threshold, two hole-filling passes.
    assert (cfg.preprocess.fg_threshold, cfg.preprocess.fill_iterations) == (0.005, 2)


@pytest.mark.parametrize("setup", ["rgbd", "depth"])
def test_paper_heads_are_the_spec_widths_only_on_a_paper_backbone(setup: str) -> None:
    model_cfg = DetectorConfig.paper(setup).model
    paper_bb = vqcore.build_backbone(vqcore.BackboneConfig.paper(setup), device="meta")
    heads = ThreeDSR(paper_bb, model_cfg)
    # spec §3.2: SRM base = D/2 = 128 (≈8.1 M each), object decoder 512/1024/2048 (≈37 M),
    # UNet base 32 on 8 (rgbd) or 2 (depth) channels (≈1.4 M): ≈55 M in all.
    assert heads.srm_top.base == heads.srm_bot.base == 128
    assert heads.object_decoder.encoder[0].out_channels == 512
    assert heads.anomaly_unet.in_channels == (8 if setup == "rgbd" else 2)
    counts = _trainable(heads)
    assert counts["srm_top"] == pytest.approx(8.1e6, rel=0.01)
    assert counts["object_decoder"] == pytest.approx(37e6, rel=0.01)
    assert counts["anomaly_unet"] == pytest.approx(1.4e6, rel=0.01)
    assert sum(counts.values()) == pytest.approx(55e6, rel=0.01)
    # The default backbone (backbone=None) is the shipped cpu-width one: the heads derived from
    # it are narrow (the README's Presets table and row 25 say so).
    cpu_bb = vqcore.build_backbone(vqcore.BackboneConfig.cpu(setup), device="meta")
    narrow = ThreeDSR(cpu_bb, model_cfg)
    assert narrow.srm_top.base == 32
    assert sum(_trainable(narrow).values()) == pytest.approx(4.9e6, rel=0.02)
    assert DetectorConfig.paper(setup).backbone is None
