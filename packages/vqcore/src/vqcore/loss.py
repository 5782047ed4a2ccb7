"""The stage-1 reconstruction loss."""

from __future__ import annotations

from torch import Tensor

__all__ = ["reconstruction_loss"]


def reconstruction_loss(
    recon: Tensor,
    target: Tensor,
    *,
    kind: str = "l1",
    lambda_depth: float | None = None,
    lambda_rgb: float | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Stage-1 reconstruction loss.

    Args:
        recon: (B, C, H, W) model output.
        target: (B, C, H, W) input.
        kind: ``l1`` (mean absolute error) or ``l2`` (mean squared error).
        lambda_depth: with ``lambda_rgb`` (C = 4 only): ``λ_D·mean_D + λ_I·mean_I`` (the paper);
            ``None`` -> mean over all channels (the reference code: depth weighs 1/4).
        lambda_rgb: see ``lambda_depth``.

    Returns:
        ``(loss, parts)`` where ``parts`` has ``recon_depth``/``recon_rgb`` for 4-channel input.

    Example:
        >>> import torch
        >>> loss, parts = reconstruction_loss(torch.zeros(1, 4, 2, 2), torch.ones(1, 4, 2, 2))
        >>> float(loss), sorted(parts)
        (1.0, ['recon_depth', 'recon_rgb'])
    """
    if recon.shape != target.shape:
        raise ValueError(f"recon {tuple(recon.shape)} and target {tuple(target.shape)} differ")
    err = (recon - target).abs() if kind == "l1" else (recon - target).square()
    parts: dict[str, Tensor] = {}
    if target.shape[1] == 4:
        parts = {"recon_depth": err[:, :1].mean(), "recon_rgb": err[:, 1:].mean()}
    if lambda_depth is not None and lambda_rgb is not None:
        if not parts:
            raise ValueError("lambda_depth/lambda_rgb need a 4-channel [D, R, G, B] tensor")
        return lambda_depth * parts["recon_depth"] + lambda_rgb * parts["recon_rgb"], parts
    return err.mean(), parts
