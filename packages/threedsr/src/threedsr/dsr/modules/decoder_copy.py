"""Object-specific decoder initialised as a trainable copy of the backbone's general decoder."""

from __future__ import annotations

import copy
import warnings

import torch
import vqcore
from torch import Tensor, nn

from threedsr.dsr.modules.blocks import check_input

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

    Called like :class:`ObjectDecoder`: one tensor, the upsampled top codes and the bottom codes
    concatenated along channels. For a grouped backbone (DADA) the two halves are split again and
    interleaved per group (:func:`vqcore.interleave_groups`), the channel order of the backbone's
    own ``decode``.

    Args:
        backbone: the stage-1 ``vqcore.DiscreteAutoencoder``; its ``decoder`` is copied.

    Shape:
        - Input: (B, 2D, h, w) = ``[upsampled top | bottom]``, the restricted codes.
        - Output: (B, out_channels, 4h, 4w).
    """

    def __init__(self, backbone: vqcore.DiscreteAutoencoder) -> None:
        super().__init__()
        self.decoder = copy.deepcopy(backbone.decoder)
        for p in self.decoder.parameters():
            p.requires_grad_(True)
        self.groups = int(backbone.groups)
        self.in_channels = 2 * int(backbone.config.embedding_dim)
        self.out_channels = int(backbone.out_channels)

    def forward(self, x: Tensor, bottom: Tensor | None = None) -> Tensor:
        """Decode ``x`` = ``torch.cat((upsampled_top, bottom), dim=1)``.

        ``forward(upsampled_top, bottom)``, the older two-tensor call, still works and warns
        (DeprecationWarning); it decodes the same values.
        """
        if bottom is not None:
            warnings.warn(
                "GeneralDecoderCopy(upsampled_top, bottom) is deprecated; pass one tensor, "
                "torch.cat((upsampled_top, bottom), dim=1), like ObjectDecoder",
                DeprecationWarning,
                stacklevel=2,
            )
            return self.decoder(self._join(x, bottom))
        check_input(x, self.in_channels, "GeneralDecoderCopy")
        top, bot = torch.chunk(x, 2, dim=1)
        return self.decoder(self._join(top, bot))

    def _join(self, upsampled_top: Tensor, bottom: Tensor) -> Tensor:
        # The same channel order as the backbone's own decode (grouped interleave for DADA).
        if self.groups > 1:
            return vqcore.interleave_groups(upsampled_top, bottom, groups=self.groups)
        return torch.cat((upsampled_top, bottom), dim=1)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"
