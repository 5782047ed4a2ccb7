"""Subspace restriction module (spec §3.2): an encoder-decoder without skip connections."""

from __future__ import annotations

import torch
from torch import nn

from threedsr.dsr.modules.blocks import check_input, conv_in_relu, double_conv, upsample2


class SubspaceRestriction(nn.Module):
    """Maps a (possibly anomalous) quantized feature map towards the object's normal subspace.

    Encoder: double conv at ``base``, then maxpool + double conv at 2x and 4x ``base``;
    decoder: bilinear x2 + conv back to 2x, 1x ``base`` (each followed by a double conv), then a
    linear 3x3 conv to ``channels``. Only the deepest encoder output feeds the decoder (no skips,
    as in the reference). InstanceNorm is non-affine; weights keep the PyTorch default init.

    Args:
        channels: input and output width (the codebook dimension, 256 in the paper).
        base: base width; the reference uses ``channels // 2`` (None).
        levels: pooling levels (2 as the reference: a 4x bottleneck). At the CPU preset's small
            inputs the reference's coarse grid is only 3-4 cells wide at the bottleneck and the
            module cannot reproduce normal codes; 1 keeps a 2x bottleneck.
        residual: return ``x + net(x)`` with the last conv zero-initialised, so the module starts
            as the identity (every normal code already restored exactly) and only learns the
            corrections. Not the reference (False), which must learn to reproduce normal codes
            through its 4x bottleneck: after a few hundred CPU steps it re-quantizes most normal
            cells to a different code, and the object reconstruction differs everywhere.

    Shape:
        - Input: (B, channels, H, W), H and W multiples of 4.
        - Output: (B, channels, H, W), continuous (re-quantize it with the level's codebook).

    Example:
        >>> srm = SubspaceRestriction(16, base=8)
        >>> srm(torch.randn(2, 16, 8, 12)).shape
        torch.Size([2, 16, 8, 12])
    """

    def __init__(
        self,
        channels: int,
        base: int | None = None,
        *,
        residual: bool = False,
        levels: int = 2,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        base = channels // 2 if base is None else base
        self.channels = channels
        self.base = base
        if levels not in (1, 2):
            raise ValueError(f"SubspaceRestriction: levels must be 1 or 2, got {levels}")
        self.levels = levels
        self.enc1 = double_conv(channels, base, **factory)
        self.enc2 = nn.Sequential(nn.MaxPool2d(2), double_conv(base, base * 2, **factory))
        self.enc3: nn.Module = nn.Identity()
        self.dec1: nn.Module = nn.Identity()
        if levels == 2:
            self.enc3 = nn.Sequential(nn.MaxPool2d(2), double_conv(base * 2, base * 4, **factory))
            self.dec1 = nn.Sequential(
                upsample2(),
                *conv_in_relu(base * 4, base * 2, **factory),
                double_conv(base * 2, base * 2, **factory),
            )
        self.dec2 = nn.Sequential(
            upsample2(),
            *conv_in_relu(base * 2, base, **factory),
            double_conv(base, base, **factory),
        )
        self.out = nn.Conv2d(base, channels, 3, padding=1, **factory)  # type: ignore[arg-type]
        self.residual = residual
        if residual:
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.channels, "SubspaceRestriction", multiple=2**self.levels)
        y = self.out(self.dec2(self.dec1(self.enc3(self.enc2(self.enc1(x))))))
        return x + y if self.residual else y
