"""Two-level discrete autoencoders: DADA (grouped RGB+D), DepthVQVAE and RGBVQVAE.

All three share :class:`DiscreteAutoencoder`'s interface (the contract in docs/architecture.md):
``encode``, ``encode_bottom``, ``decode``, ``forward`` and the parts stage 2 reuses
(``vq_top``, ``vq_bot``, ``upsample_t``, ``decoder``).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from .config import BackboneConfig
from .encoders import (
    EncoderTop,
    GroupedDecoder,
    GroupedEncoderBottom,
    PlainDecoder,
    PlainEncoderBottom,
)
from .ops import interleave_groups
from .quantizer import VectorQuantizer, VectorQuantizerEMA
from .shapes import check_shape

__all__ = [
    "DADA",
    "RGBVQVAE",
    "DepthVQVAE",
    "DiscreteAutoencoder",
    "Encoding",
    "build_backbone",
    "count_parameters",
    "init_conv_weights",
]

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


def init_conv_weights(module: nn.Module, std: float = 0.02) -> None:
    """N(0, std) for every Conv/ConvTranspose weight, biases untouched (spec §1.6).

    Example:
        >>> conv = nn.Conv2d(2, 2, 1); init_conv_weights(conv); bool(conv.weight.detach().abs().max() < 0.2)
        True
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, std)


def count_parameters(model: nn.Module, *, include_codebooks: bool = True) -> int:
    """Trainable parameters plus (optionally) the EMA codebooks, excluding EMA shadow weights.

    This is the quantity the spec's arithmetic gives (DADA ≈5.1 M at paper widths).
    """
    total = sum(p.numel() for p in model.parameters())
    if include_codebooks:
        total += sum(
            m.embedding.numel() for m in model.modules() if isinstance(m, VectorQuantizerEMA)
        )
    return total


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
        check_shape(
            x,
            ("B", f"C={self.in_channels}", "H", "W"),
            multiple=self.down_top,
            name=type(self).__name__,
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
        return self.decoder(self.join(self.upsample_t(q_top), q_bot))

    def forward(self, x: Tensor, *, quantize: bool = True) -> tuple[Tensor, Tensor, Encoding]:
        """Reconstruct ``x``: returns ``(recon, vq_loss, encoding)``."""
        enc = self.encode(x, quantize=quantize)
        return self.decode(enc.q_top, enc.q_bot), enc.loss, enc

    def decode_continuous(self, x: Tensor) -> Tensor:
        """Reconstruction with both quantizers bypassed (continuous autoencoder path)."""
        return self.forward(x, quantize=False)[0]


class DADA(DiscreteAutoencoder):
    """Depth-Aware Discrete Autoencoder (spec §1.3): grouped, input and output [D, R, G, B].

    Args:
        config: a ``BackboneConfig`` with ``setup="rgbd"``.
        device: factory kwarg.
        dtype: factory kwarg.

    Shape:
        - input: (B, 4, H, W), H and W multiples of 8
        - output: (B, 4, H, W), linear

    Example:
        >>> model = DADA(BackboneConfig.cpu("rgbd", hidden=32, res_hidden=8, num_embeddings=16,
        ...                                  embedding_dim=8))
        >>> recon, loss, enc = model(torch.rand(1, 4, 32, 32))
        >>> recon.shape, enc.q_top.shape, enc.idx_bot.shape
        (torch.Size([1, 4, 32, 32]), torch.Size([1, 8, 4, 4]), torch.Size([1, 8, 8]))
    """

    groups = 2

    def __init__(
        self, config: BackboneConfig, *, device: Device = None, dtype: torch.dtype | None = None
    ) -> None:
        if config.setup != "rgbd":
            raise ValueError(f"DADA needs setup='rgbd', got {config.setup!r}")
        super().__init__(config, device=device, dtype=dtype)
        f = {"device": device, "dtype": dtype}
        c = config
        self.encoder_bottom = GroupedEncoderBottom(c.hidden, c.res_hidden, c.num_res_layers, **f)
        self.encoder_top = EncoderTop(c.hidden, c.res_hidden, c.num_res_layers, groups=2, **f)
        self.pre_vq_top = nn.Conv2d(c.hidden, c.embedding_dim, 1, groups=2, **f)
        self.upsample_t = nn.ConvTranspose2d(
            c.embedding_dim, c.embedding_dim, 4, stride=2, padding=1, groups=2, **f
        )
        self.pre_vq_bot = nn.Conv2d(c.hidden + c.embedding_dim, c.embedding_dim, 1, groups=2, **f)
        self.decoder = GroupedDecoder(
            2 * c.embedding_dim, c.hidden, c.res_hidden, c.num_res_layers, **f
        )
        if c.init_std is not None:
            init_conv_weights(self, c.init_std)


class _PlainVQVAE(DiscreteAutoencoder):
    """Plain (ungrouped) VQ-VAE-2 of DSR (spec §1.5)."""

    expected_setup: str = ""

    def __init__(
        self, config: BackboneConfig, *, device: Device = None, dtype: torch.dtype | None = None
    ) -> None:
        if config.setup != self.expected_setup:
            raise ValueError(
                f"{type(self).__name__} needs setup={self.expected_setup!r}, got {config.setup!r}"
            )
        super().__init__(config, device=device, dtype=dtype)
        f = {"device": device, "dtype": dtype}
        c = config
        self.encoder_bottom = PlainEncoderBottom(
            self.in_channels, c.hidden, c.res_hidden, c.num_res_layers, **f
        )
        self.encoder_top = EncoderTop(c.hidden, c.res_hidden, c.num_res_layers, **f)
        self.pre_vq_top = nn.Conv2d(c.hidden, c.embedding_dim, 1, **f)
        self.upsample_t = nn.ConvTranspose2d(
            c.embedding_dim, c.embedding_dim, 4, stride=2, padding=1, **f
        )
        self.pre_vq_bot = nn.Conv2d(c.hidden + c.embedding_dim, c.embedding_dim, 1, **f)
        self.decoder = PlainDecoder(
            2 * c.embedding_dim, self.out_channels, c.hidden, c.res_hidden, c.num_res_layers, **f
        )
        if c.init_std is not None:
            init_conv_weights(self, c.init_std)


class DepthVQVAE(_PlainVQVAE):
    """Depth-only backbone (the reference's ``DADA_D``): plain VQ-VAE-2 on 1 channel.

    Shape:
        - input/output: (B, 1, H, W)

    Example:
        >>> m = DepthVQVAE(BackboneConfig.cpu("depth", hidden=16, res_hidden=8,
        ...                                   num_embeddings=8, embedding_dim=4))
        >>> m(torch.rand(2, 1, 16, 16))[0].shape
        torch.Size([2, 1, 16, 16])
    """

    expected_setup = "depth"


class RGBVQVAE(_PlainVQVAE):
    """RGB-only backbone (DSR's setting): plain VQ-VAE-2 on 3 channels.

    Shape:
        - input/output: (B, 3, H, W)
    """

    expected_setup = "rgb"


_BACKBONES: dict[str, type[DiscreteAutoencoder]] = {
    "rgbd": DADA,
    "depth": DepthVQVAE,
    "rgb": RGBVQVAE,
}


def build_backbone(
    config: BackboneConfig, *, device: Device = None, dtype: torch.dtype | None = None
) -> DiscreteAutoencoder:
    """The backbone class for ``config.setup`` (rgbd -> DADA, depth -> DepthVQVAE, rgb -> RGBVQVAE).

    Example:
        >>> type(build_backbone(BackboneConfig.cpu("depth"))).__name__
        'DepthVQVAE'
    """
    return _BACKBONES[config.setup](config, device=device, dtype=dtype)
