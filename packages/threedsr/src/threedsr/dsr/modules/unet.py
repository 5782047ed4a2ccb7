"""Anomaly detection module: a 4-level UNet with skip connections (spec §3.2)."""

from __future__ import annotations

import torch
from torch import nn

from threedsr.dsr.modules.blocks import (
    check_input,
    conv_in_relu,
    double_conv,
    init_normal_,
    upsample2,
)


class AnomalyUNet(nn.Module):
    """Segments anomalies from ``[object-specific output | general output]``.

    Encoder widths b, 2b, 4b, 4b (three maxpools); decoder: bilinear x2 + conv, concatenation with
    the matching skip, double conv; a final 3x3 conv gives 2 logits (channel 1 = anomaly).

    Args:
        in_channels: 2 x the backbone's output channels (8 rgbd, 2 depth, 6 rgb).
        base: base width (32 in 3DSR).
        out_channels: logits (2).
        init_std: N(0, std) conv weights (reference 0.02); None keeps PyTorch's default init.

    Shape:
        - Input: (B, in_channels, H, W), H and W multiples of 8.
        - Output: (B, out_channels, H, W) logits.

    Example:
        >>> unet = AnomalyUNet(8, base=4)
        >>> unet(torch.randn(1, 8, 16, 24)).shape
        torch.Size([1, 2, 16, 24])
    """

    def __init__(
        self,
        in_channels: int,
        base: int = 32,
        out_channels: int = 2,
        *,
        init_std: float | None = 0.02,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        b = base
        self.in_channels = in_channels
        self.enc1 = double_conv(in_channels, b, **factory)
        self.enc2 = nn.Sequential(nn.MaxPool2d(2), double_conv(b, 2 * b, **factory))
        self.enc3 = nn.Sequential(nn.MaxPool2d(2), double_conv(2 * b, 4 * b, **factory))
        self.enc4 = nn.Sequential(nn.MaxPool2d(2), double_conv(4 * b, 4 * b, **factory))
        self.up1 = nn.Sequential(upsample2(), *conv_in_relu(4 * b, 4 * b, **factory))
        self.dec1 = double_conv(8 * b, 4 * b, **factory)
        self.up2 = nn.Sequential(upsample2(), *conv_in_relu(4 * b, 2 * b, **factory))
        self.dec2 = double_conv(4 * b, 2 * b, **factory)
        self.up3 = nn.Sequential(upsample2(), *conv_in_relu(2 * b, b, **factory))
        self.dec3 = double_conv(2 * b, b, **factory)
        self.out = nn.Conv2d(b, out_channels, 3, padding=1, **factory)  # type: ignore[arg-type]
        if init_std is not None:
            init_normal_(self, init_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.in_channels, "AnomalyUNet", multiple=8)
        b1 = self.enc1(x)
        b2 = self.enc2(b1)
        b3 = self.enc3(b2)
        b4 = self.enc4(b3)
        d = self.dec1(torch.cat((self.up1(b4), b3), dim=1))
        d = self.dec2(torch.cat((self.up2(d), b2), dim=1))
        d = self.dec3(torch.cat((self.up3(d), b1), dim=1))
        return self.out(d)
