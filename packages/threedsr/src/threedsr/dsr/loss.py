"""Stage-2 losses (spec §3.6)."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

if TYPE_CHECKING:
    from threedsr.dsr.anomaly_generator import GeneratedAnomalies
    from threedsr.dsr.torch_model import ThreeDSROutput

__all__ = ["Stage2Losses", "focal_loss", "stage2_losses"]


def focal_loss(
    probs: Tensor, target: Tensor, *, gamma: float = 2.0, smooth: float = 1e-5
) -> Tensor:
    """The reference ``FocalLoss`` applied to already-softmaxed 2-class maps, alpha = 1.

    One-hot targets are clamped to ``[smooth, 1 - smooth]``, ``p_t = sum(onehot * p) + smooth``,
    loss ``-(1 - p_t)^gamma log p_t`` averaged over all pixels.

    Args:
        probs: (B, 2, H, W) probabilities.
        target: (B, 1, H, W) in {0, 1}.

    Example:
        >>> p = torch.tensor([0.9, 0.1]).view(1, 2, 1, 1)
        >>> round(focal_loss(p, torch.zeros(1, 1, 1, 1)).item(), 6)
        0.001054
    """
    num_classes = probs.shape[1]
    p = probs.permute(0, 2, 3, 1).reshape(-1, num_classes)
    idx = target.reshape(-1, 1).long()
    onehot = torch.zeros_like(p).scatter_(1, idx, 1.0)
    onehot = onehot.clamp(smooth / (num_classes - 1), 1.0 - smooth)
    pt = (onehot * p).sum(dim=1) + smooth
    return (-((1.0 - pt) ** gamma) * pt.log()).mean()


class Stage2Losses(NamedTuple):
    total: Tensor
    focal: Tensor
    mask_l1: Tensor
    feature_top: Tensor
    feature_bot: Tensor
    image: Tensor


def stage2_losses(
    out: ThreeDSROutput | Tensor,
    gen: GeneratedAnomalies | Tensor,
    x: Tensor,
    *args: Tensor,
    gamma: float = 2.0,
    mask_l1: bool = True,
    feature_loss: str = "mse",
    image_weight: float = 10.0,
) -> Stage2Losses:
    """The stage-2 loss of one forward pass ``out`` on the anomalies ``gen`` of the clean input ``x``:
    ``focal + mean|M - [1-GT, GT]| + d(SRM_lo, Q1) + d(SRM_hi, Q2) + w * MSE(ObjDec, x)``.

    ``d`` is MSE (code) or L1 (paper, ``feature_loss="l1"``); the feature targets are the clean
    quantized features ``gen.q_top``/``gen.q_bot``, the segmentation target ``gen.gt``. Computed in
    float32 (safe under autocast).

    Args:
        out: the model's :class:`~threedsr.dsr.torch_model.ThreeDSROutput` (``logits``, ``srm_top``,
            ``srm_bot``, ``object_recon`` are used).
        gen: the generator's :class:`~threedsr.dsr.anomaly_generator.GeneratedAnomalies` (``gt``, ``q_top``,
            ``q_bot``).
        x: (B, C, H, W) the clean input, target of the object decoder.

    Deprecated: the older form ``stage2_losses(logits, gt, srm_top, srm_bot, q_top, q_bot,
    object_recon, image, ...)`` (eight tensors) still works and warns (``DeprecationWarning``).

    Example:
        >>> from threedsr import ThreeDSROutput
        >>> from threedsr.dsr.anomaly_generator import GeneratedAnomalies
        >>> z = torch.zeros(1, 2, 8, 8); g = torch.zeros(1, 1, 8, 8); f = torch.zeros(1, 4, 2, 2)
        >>> out = ThreeDSROutput(logits=z, anomaly_map=g[:, 0], object_recon=g, general_recon=g,
        ...                      srm_top=f, srm_bot=f)
        >>> gen = GeneratedAnomalies(q_top=f, q_bot=f, q_top_anom=f, q_bot_anom=f, gt=g,
        ...                          mode=torch.zeros(1))
        >>> stage2_losses(out, gen, g).image.item()
        0.0
    """
    options = dict(
        gamma=gamma, mask_l1=mask_l1, feature_loss=feature_loss, image_weight=image_weight
    )
    if isinstance(out, Tensor):
        if not isinstance(gen, Tensor) or len(args) != 5:
            raise TypeError(
                "stage2_losses(out, gen, x): pass the model's ThreeDSROutput, the generator's "
                "GeneratedAnomalies and the clean input (or the deprecated eight tensors)"
            )
        warnings.warn(
            "stage2_losses(logits, gt, srm_top, srm_bot, q_top, q_bot, object_recon, image) is "
            "deprecated; pass stage2_losses(out, gen, x) (the ThreeDSROutput, the "
            "GeneratedAnomalies and the clean input)",
            DeprecationWarning,
            stacklevel=2,
        )
        return _stage2_terms(out, gen, x, *args, **options)  # type: ignore[arg-type]
    if args:
        raise TypeError(
            f"stage2_losses(out, gen, x) takes 3 positional arguments, got {3 + len(args)}"
        )
    return _stage2_terms(
        out.logits,
        gen.gt,  # type: ignore[union-attr]
        out.srm_top,
        out.srm_bot,
        gen.q_top,  # type: ignore[union-attr]
        gen.q_bot,  # type: ignore[union-attr]
        out.object_recon,
        x,
        **options,  # type: ignore[arg-type]
    )


def _stage2_terms(
    logits: Tensor,
    gt: Tensor,
    srm_top: Tensor,
    srm_bot: Tensor,
    q_top: Tensor,
    q_bot: Tensor,
    object_recon: Tensor,
    image: Tensor,
    *,
    gamma: float,
    mask_l1: bool,
    feature_loss: str,
    image_weight: float,
) -> Stage2Losses:
    probs = torch.softmax(logits.float(), dim=1)
    gt = gt.float()
    focal = focal_loss(probs, gt, gamma=gamma)
    l1 = (probs - torch.cat((1.0 - gt, gt), dim=1)).abs().mean() if mask_l1 else probs.new_zeros(())
    dist = F.mse_loss if feature_loss == "mse" else F.l1_loss
    ft = dist(srm_top.float(), q_top.float())
    fb = dist(srm_bot.float(), q_bot.float())
    img = F.mse_loss(object_recon.float(), image.float())
    total = focal + l1 + ft + fb + image_weight * img
    return Stage2Losses(total, focal, l1, ft, fb, img)
