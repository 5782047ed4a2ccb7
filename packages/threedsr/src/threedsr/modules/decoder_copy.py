"""Object-specific decoder initialised as a trainable copy of the backbone's general decoder."""

from __future__ import annotations

import copy

import torch
import vqcore
from torch import Tensor, nn

__all__ = ["GeneralDecoderCopy"]


class GeneralDecoderCopy(nn.Module):
    """A trainable copy of the frozen backbone's general decoder (weights included).

    The reference trains its object-specific decoder (:class:`ObjectDecoder`) from scratch for
    30k iterations. A few hundred CPU steps only get it to a blurry mean image, so the anomaly
    module compares the general reconstruction with noise and misses small depth defects. Starting
    from the general decoder, which already decodes any code map into a sharp image, the object
    decoder only has to learn the *class-specific* part (ignore what the restricted codes still
    carry of an anomaly). Not the paper's architecture: the ``cpu`` preset's choice, documented
    in the package README.

    Args:
        backbone: a ``vqcore.DiscreteAutoencoder``; its ``decoder`` and ``join`` are used.

    Shape:
        - Input: ``upsampled_top`` (B, D, h, w) and ``bottom`` (B, D, h, w), the restricted codes.
        - Output: (B, out_channels, 4h, 4w).
    """

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.decoder = copy.deepcopy(backbone.decoder)
        for p in self.decoder.parameters():
            p.requires_grad_(True)
        self.groups = int(getattr(backbone, "groups", 1))
        self.in_channels = 2 * int(backbone.config.embedding_dim)
        self.out_channels = int(backbone.out_channels)

    def forward(self, upsampled_top: Tensor, bottom: Tensor) -> Tensor:
        # The same channel order as the backbone's own decode (grouped interleave for DADA).
        if self.groups > 1:
            joined = vqcore.interleave_groups(upsampled_top, bottom, groups=self.groups)
        else:
            joined = torch.cat((upsampled_top, bottom), dim=1)
        return self.decoder(joined)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"
