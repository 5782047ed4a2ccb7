"""The backbones: DADA (grouped RGB+D), DepthVQVAE and RGBVQVAE, and :func:`build_backbone`.

All three subclass :class:`vqcore.autoencoder.DiscreteAutoencoder` with their own layers; it wires
them (``encode``, ``encode_bottom``, ``decode``, ``forward``) and owns the quantizers.
"""

from __future__ import annotations

import torch
from torch import nn

from .autoencoder import Device, DiscreteAutoencoder
from .config import BackboneConfig
from .encoders import (
    EncoderTop,
    GroupedDecoder,
    GroupedEncoderBottom,
    PlainDecoder,
    PlainEncoderBottom,
)
from .quantizer import VectorQuantizerEMA

__all__ = [
    "DADA",
    "RGBVQVAE",
    "DepthVQVAE",
    "build_backbone",
    "count_parameters",
    "init_conv_weights",
]


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
