from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from threedsr import ThreeDSROutput, train_detector
from threedsr.dsr import focal_loss, stage2_losses
from threedsr.dsr.anomaly_generator import GeneratedAnomalies
from threedsr_testutil import synthetic_class, tiny_backbone, tiny_config


def _focal_reference(
    probs: torch.Tensor, target: torch.Tensor, gamma: float = 2.0, smooth: float = 1e-5
) -> float:
    # direct per-pixel transcription of the reference FocalLoss (alpha = 1, 2 classes)
    total, n = 0.0, 0
    p = probs.permute(0, 2, 3, 1).reshape(-1, 2).double().tolist()
    t = target.reshape(-1).long().tolist()
    for (p0, p1), c in zip(p, t, strict=True):
        oh = [smooth, smooth]
        oh[c] = 1 - smooth
        pt = oh[0] * p0 + oh[1] * p1 + smooth
        total += -((1 - pt) ** gamma) * math.log(pt)
        n += 1
    return total / n


def test_focal_matches_reference_transcription() -> None:
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(2, 2, 5, 6, generator=g), dim=1)
    target = (torch.rand(2, 1, 5, 6, generator=g) > 0.6).float()
    assert focal_loss(probs, target).item() == pytest.approx(
        _focal_reference(probs, target), rel=1e-5
    )


def test_stage2_loss_composition() -> None:
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 2, 16, 16, generator=g)
    gt = (torch.rand(2, 1, 16, 16, generator=g) > 0.5).float()
    a, b, c, d = (torch.randn(2, 4, 4, 4, generator=g) for _ in range(4))
    img, rec = torch.rand(2, 1, 16, 16, generator=g), torch.rand(2, 1, 16, 16, generator=g)
    model_out = ThreeDSROutput(logits, logits[:, 1], rec, rec, srm_top=a, srm_bot=b)
    gen = GeneratedAnomalies(
        q_top=c, q_bot=d, q_top_anom=a, q_bot_anom=b, gt=gt, mode=gt[:, 0, 0, 0]
    )
    out = stage2_losses(model_out, gen, img)
    probs = torch.softmax(logits, 1)
    l1 = (probs - torch.cat([1 - gt, gt], 1)).abs().mean()
    expected = (
        focal_loss(probs, gt)
        + l1
        + ((a - c) ** 2).mean()
        + ((b - d) ** 2).mean()
        + 10 * ((rec - img) ** 2).mean()
    )
    assert out.total.item() == pytest.approx(expected.item(), rel=1e-6)
    paper = stage2_losses(model_out, gen, img, feature_loss="l1", mask_l1=False)
    assert paper.feature_top.item() == pytest.approx((a - c).abs().mean().item(), rel=1e-6)
    assert paper.mask_l1.item() == 0


def test_stage2_losses_eight_tensor_form_is_deprecated_and_equal() -> None:
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 2, 8, 8, generator=g)
    gt = (torch.rand(2, 1, 8, 8, generator=g) > 0.5).float()
    a, b, c, d = (torch.randn(2, 4, 2, 2, generator=g) for _ in range(4))
    img, rec = torch.rand(2, 3, 8, 8, generator=g), torch.rand(2, 3, 8, 8, generator=g)
    new = stage2_losses(
        ThreeDSROutput(logits, logits[:, 1], rec, rec, srm_top=a, srm_bot=b),
        GeneratedAnomalies(c, d, a, b, gt, gt[:, 0, 0, 0]),
        img,
        gamma=1.5,
        feature_loss="l1",
    )
    with pytest.warns(DeprecationWarning, match=r"stage2_losses\(out, gen, x\)"):
        old = stage2_losses(logits, gt, a, b, c, d, rec, img, gamma=1.5, feature_loss="l1")
    for x, y in zip(old, new, strict=True):
        assert torch.equal(x, y)
    with pytest.raises(TypeError, match="ThreeDSROutput"):
        stage2_losses(logits, gt, a)


@pytest.mark.parametrize("setup", ["rgbd", "depth"])
def test_losses_decrease_on_tiny_synthetic_class(setup: str, tmp_path) -> None:
    events = []
    cfg = tiny_config(setup, out=str(tmp_path), iterations=40, lr=2e-3, checkpoint_every=1000)
    train_detector(cfg, events.append, backbone=tiny_backbone(setup), data=synthetic_class(setup))
    # The network's steps, then the finishing stages (calibration, display scale, file, written).
    assert [e.stage for e in events] == ["detector"] * 40 + ["memory"] * 4
    events = [e for e in events if e.stage == "detector"]
    tot = np.array([e.metrics["total"] for e in events])
    img = np.array([e.metrics["image"] for e in events])
    assert len(events) == 40 and events[-1].step == 40 and events[-1].total == 40
    assert tot[-8:].mean() < 0.7 * tot[:4].mean()
    assert img[-8:].mean() < img[:4].mean()
    assert np.isfinite(tot).all()


def test_training_steps_are_the_documented_recipe(tmp_path) -> None:
    """``train_detector`` equals the loop written out by hand, bit for bit: the randomness of
    step ``s`` comes from ``step_seeds(seed, rank, s)`` and is drawn in the order make_batch ->
    generate_anomalies; the loss is ``stage2_losses(out, gen, x)``."""
    import vqcore
    from threedsr import ThreeDSR, read_checkpoint
    from threedsr.dsr import FeatureAnomalyGenerator
    from threedsr.dsr.host_batch import generate_anomalies, make_batch, step_seeds

    data = synthetic_class("rgbd")
    cfg = tiny_config("rgbd", out=str(tmp_path), iterations=2)
    res = train_detector(cfg, backbone=tiny_backbone("rgbd"), data=data)

    backbone = tiny_backbone("rgbd")
    torch.manual_seed(cfg.seed)
    model = ThreeDSR(backbone, cfg.model)
    params = [p for m in model.trainable_modules().values() for p in m.parameters()]
    opt = torch.optim.Adam(params, lr=cfg.lr)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, list(cfg.lr_milestones), cfg.lr_gamma)
    gen = FeatureAnomalyGenerator(
        cfg.anomaly.strength_range,
        cfg.anomaly.exclude_nearest,
        cfg.anomaly.shuffle_prob,
        modality_split_prob=cfg.anomaly.modality_split_prob,
    )
    model.train()
    cpu = torch.device("cpu")
    for step in range(cfg.iterations):
        rng, tseed = step_seeds(cfg.seed, 0, step)
        tgen = torch.Generator().manual_seed(tseed)
        x, mask = make_batch(data, cfg, cfg.batch_size, rng, cpu)
        anomalies, x_in = generate_anomalies(gen, model.backbone, x, mask, cfg, rng, tgen)
        with vqcore.training_autocast(cfg.precision, cpu):
            out = model(q_top=anomalies.q_top_anom, q_bot=anomalies.q_bot_anom, image=x_in)
        losses = stage2_losses(
            out,
            anomalies,
            x,
            gamma=cfg.loss.focal_gamma,
            mask_l1=cfg.loss.mask_l1,
            feature_loss=cfg.loss.feature_loss,
            image_weight=cfg.loss.image_loss_weight,
        )
        opt.zero_grad(set_to_none=True)
        losses.total.backward()
        opt.step()
        sched.step()
    assert res.metrics["total"] == float(losses.total.detach())
    stored = read_checkpoint(res.path)["heads_state"]
    for name, state in model.heads_state_dict().items():
        for key, value in state.items():
            assert torch.equal(stored[name][key], value), f"{name}.{key}"
