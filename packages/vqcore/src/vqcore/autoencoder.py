"""The two-level discrete autoencoder every backbone is: :class:`DiscreteAutoencoder`.

Its interface is the contract in docs/architecture.md: ``encode``, ``encode_bottom``, ``decode``,
``forward`` and the parts stage 2 reuses (``vq_top``, ``vq_bot``, ``upsample_t``, ``decoder``).
The backbones that fill in its layers (DADA, DepthVQVAE, RGBVQVAE) are in :mod:`vqcore.models`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from .config import BackboneConfig
from .ops import interleave_groups
from .quantizer import VectorQuantizer, VectorQuantizerEMA
from .shapes import ShapeError, check_shape

__all__ = ["DiscreteAutoencoder", "Encoding"]

Device = torch.device | str | None


class Encoding(NamedTuple):
    """Everything the encoder computes.

    Attributes:
        f1: (B, hidden, H/4, W/4) Encoder-1 features.
        f_top: (B, D, H/8, W/8) pre-quantisation coarse feature (f2).
        q_top: (B, D, H/8, W/8) quantised coarse feature (Q1), straight-through.
        idx_top: (B, H/8, W/8) code indices of Q1.
        f_bot: (B, D, H/4, W/4) pre-quantisation fine feature (f_R).
        q_bot: (B, D, H/4, W/4) quantised fine feature (Q2).
        idx_bot: (B, H/4, W/4) code indices of Q2.
        loss: 0-d sum of both quantizers' losses.
    """

    f1: Tensor
    f_top: Tensor
    q_top: Tensor
    idx_top: Tensor
    f_bot: Tensor
    q_bot: Tensor
    idx_bot: Tensor
    loss: Tensor


def _make_quantizer(
    config: BackboneConfig, **factory: object
) -> VectorQuantizer | VectorQuantizerEMA:
    if config.quantizer == "loss":
        return VectorQuantizer(
            config.num_embeddings,
            config.embedding_dim,
            commitment_cost=config.commitment_cost,
            distance=config.vq_distance,
            **factory,  # type: ignore[arg-type]
        )
    return VectorQuantizerEMA(
        config.num_embeddings,
        config.embedding_dim,
        commitment_cost=config.commitment_cost,
        decay=config.decay,
        eps=config.eps,
        restart_dead_codes=config.restart_dead_codes,
        distance=config.vq_distance,
        **factory,  # type: ignore[arg-type]
    )


class DiscreteAutoencoder(nn.Module):
    """Two-level VQ autoencoder skeleton (VQ-VAE-2 layout of DSR/3DSR).

    Subclasses set ``encoder_bottom``, ``encoder_top``, ``pre_vq_top``, ``pre_vq_bot``,
    ``upsample_t``, ``decoder`` and ``groups``; this class wires them and owns the quantizers.
    """

    down_top: int = 8
    down_bot: int = 4
    groups: int = 1
    in_channels: int
    out_channels: int
    encoder_bottom: nn.Module
    encoder_top: nn.Module
    pre_vq_top: nn.Module
    pre_vq_bot: nn.Module
    upsample_t: nn.Module
    decoder: nn.Module
    vq_top: VectorQuantizer | VectorQuantizerEMA
    vq_bot: VectorQuantizer | VectorQuantizerEMA

    def __init__(
        self, config: BackboneConfig, *, device: Device = None, dtype: torch.dtype | None = None
    ) -> None:
        super().__init__()
        self.config = config
        self.in_channels = config.in_channels
        self.out_channels = config.in_channels
        self.vq_top = _make_quantizer(config, device=device, dtype=dtype)
        self.vq_bot = _make_quantizer(config, device=device, dtype=dtype)

    def join(self, a: Tensor, b: Tensor) -> Tensor:
        """Concatenate two feature maps for the next (grouped) layer: interleaved when grouped."""
        if self.groups > 1:
            return interleave_groups(a, b, groups=self.groups)
        return torch.cat([a, b], dim=1)

    def _check_input(self, x: Tensor) -> None:
        name = type(self).__name__
        check_shape(x, ("B", f"C={self.in_channels}", "H", "W"), multiple=self.down_top, name=name)
        weight = next(self.parameters()).dtype
        # Outside autocast a float64 image (numpy's default) reaches the first convolution and
        # fails there with torch's "Input type (double) and bias type (float)".
        if not x.is_floating_point() or (
            x.dtype != weight and not torch.is_autocast_enabled(x.device.type)
        ):
            raise TypeError(
                f"{name}: expected a {weight} input (the model's dtype), got {x.dtype}; "
                f"convert it with x.to({weight})"
            )

    def encode(self, x: Tensor, *, quantize: bool = True) -> Encoding:
        """Encode an image into both code levels.

        Args:
            x: (B, in_channels, H, W), H and W multiples of 8.
            quantize: ``False`` bypasses both quantizers (q = f, loss 0, indices still reported,
                no codebook update); used to test the modality separation of the convolutions.

        Returns:
            :class:`Encoding`.
        """
        self._check_input(x)
        f1 = self.encoder_bottom(x)
        f_top = self.pre_vq_top(self.encoder_top(f1))
        if quantize:
            q_top, loss_top, idx_top, _ = self.vq_top(f_top)
        else:
            q_top, loss_top, idx_top = (
                f_top,
                f_top.new_zeros(()),
                self.vq_top.quantize_indices(f_top),
            )
        f_bot = self.encode_bottom(f1, q_top)
        if quantize:
            q_bot, loss_bot, idx_bot, _ = self.vq_bot(f_bot)
        else:
            q_bot, loss_bot, idx_bot = (
                f_bot,
                f_bot.new_zeros(()),
                self.vq_bot.quantize_indices(f_bot),
            )
        return Encoding(f1, f_top, q_top, idx_top, f_bot, q_bot, idx_bot, loss_top + loss_bot)

    def encode_bottom(self, f1: Tensor, q_top: Tensor) -> Tensor:
        """f_R = pre_vq_bot([f1 | upsample_t(q_top)]) (grouped interleave for DADA).

        Shape:
            - f1: (B, hidden, h, w); q_top: (B, D, h/2, w/2)
            - output: (B, D, h, w)
        """
        return self.pre_vq_bot(self.join(f1, self.upsample_t(q_top)))

    def decode(self, q_top: Tensor, q_bot: Tensor) -> Tensor:
        """General appearance decoder on ``[upsample_t(q_top) | q_bot]``.

        Shape:
            - q_top: (B, D, h/2, w/2); q_bot: (B, D, h, w)
            - output: (B, out_channels, 4h, 4w)
        """
        name = f"{type(self).__name__}.decode"
        check_shape(
            q_top, ("B", f"D={self.vq_top.embedding_dim}", "h", "w"), name=name, what="q_top "
        )
        check_shape(
            q_bot, ("B", f"D={self.vq_bot.embedding_dim}", "2h", "2w"), name=name, what="q_bot "
        )
        top, bot = tuple(q_top.shape), tuple(q_bot.shape)
        if bot[0] != top[0] or bot[2:] != (2 * top[2], 2 * top[3]):
            raise ShapeError(f"{name}: expected q_bot (B, D, 2h, 2w) for q_top {top}, got {bot}")
        return self.decoder(self.join(self.upsample_t(q_top), q_bot))

    def forward(self, x: Tensor, *, quantize: bool = True) -> tuple[Tensor, Tensor, Encoding]:
        """Reconstruct ``x``: returns ``(recon, vq_loss, encoding)``."""
        enc = self.encode(x, quantize=quantize)
        return self.decode(enc.q_top, enc.q_bot), enc.loss, enc

    def decode_continuous(self, x: Tensor) -> Tensor:
        """Reconstruction with both quantizers bypassed (continuous autoencoder path)."""
        return self.forward(x, quantize=False)[0]
