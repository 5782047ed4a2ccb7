"""Encoders and decoders of the two-level VQ-VAE-2 (plain) and of DADA (grouped), spec §1.3/§1.5.

Layer names follow the reference loosely; every width is derived from ``hidden``, ``res_hidden``
and ``embedding_dim`` so the same classes build the paper model and the reduced CPU model.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .blocks import ResidualStack
from .ops import split_groups

__all__ = [
    "EncoderTop",
    "GroupedDecoder",
    "GroupedEncoderBottom",
    "PlainDecoder",
    "PlainEncoderBottom",
]

Device = torch.device | str | None


class PlainEncoderBottom(nn.Module):
    """Encoder 1 of the plain VQ-VAE-2: /4 downsampling to ``hidden`` channels (produces f1).

    Shape:
        - input: (B, in_channels, H, W)
        - output: (B, hidden, H/4, W/4)

    Example:
        >>> PlainEncoderBottom(1, 16, 8, 2)(torch.zeros(1, 1, 16, 16)).shape
        torch.Size([1, 16, 4, 4])
    """

    def __init__(
        self,
        in_channels: int,
        hidden: int,
        res_hidden: int,
        num_res_layers: int,
        *,
        device: Device = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        f = {"device": device, "dtype": dtype}
        self.conv1 = nn.Conv2d(in_channels, hidden // 2, 4, stride=2, padding=1, **f)
        self.conv2 = nn.Conv2d(hidden // 2, hidden, 4, stride=2, padding=1, **f)
        self.conv3 = nn.Conv2d(hidden, hidden, 3, padding=1, **f)
        self.res = ResidualStack(hidden, res_hidden, num_res_layers, **f)
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        x = self.act(self.conv1(x))
        x = self.act(self.conv2(x))
        return self.res(self.conv3(x))


class GroupedEncoderBottom(nn.Module):
    """DADA's Encoder 1: separate 1x1 input convs for depth and RGB, then groups=2 (spec §1.3).

    Output channels ``[0, hidden/2)`` carry depth, ``[hidden/2, hidden)`` RGB.

    Shape:
        - input: (B, 4, H, W) ordered [D, R, G, B]
        - output: (B, hidden, H/4, W/4)

    Example:
        >>> GroupedEncoderBottom(32, 8, 2)(torch.zeros(2, 4, 16, 16)).shape
        torch.Size([2, 32, 4, 4])
    """

    def __init__(
        self,
        hidden: int,
        res_hidden: int,
        num_res_layers: int,
        *,
        device: Device = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        f = {"device": device, "dtype": dtype}
        self.in_depth = nn.Conv2d(1, hidden // 4, 1, **f)
        self.in_rgb = nn.Conv2d(3, hidden // 4, 1, **f)
        self.conv1 = nn.Conv2d(hidden // 2, hidden // 2, 4, stride=2, padding=1, groups=2, **f)
        self.conv2 = nn.Conv2d(hidden // 2, hidden, 4, stride=2, padding=1, groups=2, **f)
        self.conv3 = nn.Conv2d(hidden, hidden, 3, padding=1, groups=2, **f)
        self.res = ResidualStack(hidden, res_hidden, num_res_layers, groups=2, **f)
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        x = torch.cat([self.in_depth(x[:, :1]), self.in_rgb(x[:, 1:4])], dim=1)
        x = self.act(x)
        x = self.act(self.conv1(x))
        x = self.act(self.conv2(x))
        return self.res(self.conv3(x))


class EncoderTop(nn.Module):
    """Encoder 2: one more /2 downsampling, 3x3 conv and a residual stack (spec §1.3, Encoder 2).

    Shape:
        - input: (B, hidden, h, w)
        - output: (B, hidden, h/2, w/2)

    Example:
        >>> EncoderTop(16, 8, 2, groups=2)(torch.zeros(1, 16, 8, 8)).shape
        torch.Size([1, 16, 4, 4])
    """

    def __init__(
        self,
        hidden: int,
        res_hidden: int,
        num_res_layers: int,
        *,
        groups: int = 1,
        device: Device = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        f = {"device": device, "dtype": dtype}
        self.conv1 = nn.Conv2d(hidden, hidden, 4, stride=2, padding=1, groups=groups, **f)
        self.conv2 = nn.Conv2d(hidden, hidden, 3, padding=1, groups=groups, **f)
        self.res = ResidualStack(hidden, res_hidden, num_res_layers, groups=groups, **f)
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        x = self.act(self.conv1(x))
        x = self.act(self.conv2(x))
        return self.res(x)


class PlainDecoder(nn.Module):
    """Decoder of the plain VQ-VAE-2: 3x3 conv, residual stack, two /2 transposed convs (×4).

    Shape:
        - input: (B, 2 * embedding_dim, h, w) = [upsample_t(Q1) | Q2]
        - output: (B, out_channels, 4h, 4w), linear

    Example:
        >>> PlainDecoder(32, 1, 16, 8, 2)(torch.zeros(1, 32, 4, 4)).shape
        torch.Size([1, 1, 16, 16])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        hidden: int,
        res_hidden: int,
        num_res_layers: int,
        *,
        device: Device = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        f = {"device": device, "dtype": dtype}
        self.conv1 = nn.Conv2d(in_channels, hidden, 3, padding=1, **f)
        self.res = ResidualStack(hidden, res_hidden, num_res_layers, **f)
        self.up1 = nn.ConvTranspose2d(hidden, hidden // 2, 4, stride=2, padding=1, **f)
        self.up2 = nn.ConvTranspose2d(hidden // 2, out_channels, 4, stride=2, padding=1, **f)
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        x = self.res(self.conv1(x))
        return self.up2(self.act(self.up1(x)))


class GroupedDecoder(nn.Module):
    """DADA's general appearance decoder ("DecoderBot", spec §1.3): groups=2, linear [D, R, G, B].

    Its input must already be interleaved as [upQ1_d, Q2_d, upQ1_rgb, Q2_rgb].

    Shape:
        - input: (B, 2 * embedding_dim, h, w)
        - output: (B, 4, 4h, 4w)

    Example:
        >>> GroupedDecoder(32, 32, 8, 2)(torch.zeros(1, 32, 4, 4)).shape
        torch.Size([1, 4, 16, 16])
    """

    def __init__(
        self,
        in_channels: int,
        hidden: int,
        res_hidden: int,
        num_res_layers: int,
        *,
        device: Device = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        f = {"device": device, "dtype": dtype}
        self.conv1 = nn.Conv2d(in_channels, hidden, 3, padding=1, groups=2, **f)
        self.res = ResidualStack(hidden, res_hidden, num_res_layers, groups=2, **f)
        self.up1 = nn.ConvTranspose2d(hidden, hidden // 2, 4, stride=2, padding=1, groups=2, **f)
        self.up2 = nn.ConvTranspose2d(
            hidden // 2, hidden // 4, 4, stride=2, padding=1, groups=2, **f
        )
        self.out_depth = nn.Conv2d(hidden // 8, 1, 1, **f)
        self.out_rgb = nn.Conv2d(hidden // 8, 3, 1, **f)
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        x = self.res(self.conv1(x))
        x = self.up2(self.act(self.up1(x)))
        depth, rgb = split_groups(x, 2)
        return torch.cat([self.out_depth(depth), self.out_rgb(rgb)], dim=1)
