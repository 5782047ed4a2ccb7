from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from threedsr import focal_loss, stage2_losses, train_detector
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
    out = stage2_losses(logits, gt, a, b, c, d, rec, img)
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
    paper = stage2_losses(logits, gt, a, b, c, d, rec, img, feature_loss="l1", mask_l1=False)
    assert paper.feature_top.item() == pytest.approx((a - c).abs().mean().item(), rel=1e-6)
    assert paper.mask_l1.item() == 0


@pytest.mark.parametrize("setup", ["rgbd", "depth"])
def test_losses_decrease_on_tiny_synthetic_class(setup: str, tmp_path) -> None:
    events = []
    cfg = tiny_config(setup, out=str(tmp_path), iterations=40, lr=2e-3, checkpoint_every=1000)
    train_detector(cfg, events.append, backbone=tiny_backbone(setup), data=synthetic_class(setup))
    tot = np.array([e.metrics["total"] for e in events])
    img = np.array([e.metrics["image"] for e in events])
    assert len(events) == 40 and events[-1].step == 40 and events[-1].total == 40
    assert tot[-8:].mean() < 0.7 * tot[:4].mean()
    assert img[-8:].mean() < img[:4].mean()
    assert np.isfinite(tot).all()
