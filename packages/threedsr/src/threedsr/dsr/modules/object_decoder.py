"""Object-specific appearance decoder (the reference's ``ImageReconstructionNetwork``, spec §3.2)."""

from __future__ import annotations

import torch
from torch import nn

from threedsr.dsr.modules.blocks import ResidualStack, check_input, conv_in_relu, init_normal_


class ObjectDecoder(nn.Module):
    """Decodes ``[upsample_t(Q1S) | Q2S]`` (fine-grid resolution) into an image of the class.

    Encoder: conv(in->w), conv(w->2w), maxpool, conv(2w->2w), conv(2w->4w), maxpool (each conv
    followed by non-affine InstanceNorm + ReLU), then a 1x1 bottleneck. Decoder: two ConvT x2 with
    ReLU, conv3x3 to ``hidden``, a residual stack, ConvT to ``hidden/2`` + ReLU, ConvT to
    ``out_channels`` (linear). The output is 4x the input resolution.

    Args:
        in_channels: 2 x codebook dim (512 in the paper).
        out_channels: 4 (rgbd), 1 (depth) or 3 (rgb).
        width: first encoder width ``w``; the reference uses ``in_channels`` (None).
        bottleneck: 1x1 bottleneck width (64).
        hidden: decoder width (the backbone's hidden width, 256).
        res_hidden: residual hidden width (128).
        num_res_layers: residual blocks (2).
        init_std: N(0, std) conv weights (reference 0.02); None keeps PyTorch's default init.
        res_skip: skip path of the residual blocks: ``relu`` computes the reference's
            ``relu(x) + block(x)`` (its in-place ReLU), ``identity`` the textbook
            ``x + block(x)`` (see :class:`~threedsr.dsr.modules.blocks.ResidualBlock`).

    Shape:
        - Input: (B, in_channels, h, w), h and w multiples of 4.
        - Output: (B, out_channels, 4h, 4w).

    Example:
        >>> dec = ObjectDecoder(16, 4, width=8, bottleneck=8, hidden=8, res_hidden=4)
        >>> dec(torch.randn(1, 16, 8, 8)).shape
        torch.Size([1, 4, 32, 32])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        width: int | None = None,
        bottleneck: int = 64,
        hidden: int = 256,
        res_hidden: int = 128,
        num_res_layers: int = 2,
        init_std: float | None = 0.02,
        res_skip: str = "relu",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        w = in_channels if width is None else width
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.encoder = nn.Sequential(
            *conv_in_relu(in_channels, w, **factory),
            *conv_in_relu(w, 2 * w, **factory),
            nn.MaxPool2d(2),
            *conv_in_relu(2 * w, 2 * w, **factory),
            *conv_in_relu(2 * w, 4 * w, **factory),
            nn.MaxPool2d(2),
            nn.Conv2d(4 * w, bottleneck, 1, **factory),  # type: ignore[arg-type]
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(bottleneck, bottleneck, 4, 2, 1, **factory),  # type: ignore[arg-type]
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(bottleneck, bottleneck, 4, 2, 1, **factory),  # type: ignore[arg-type]
            nn.ReLU(inplace=True),
            nn.Conv2d(bottleneck, hidden, 3, padding=1, **factory),  # type: ignore[arg-type]
            ResidualStack(hidden, res_hidden, num_res_layers, skip=res_skip, **factory),
            nn.ConvTranspose2d(hidden, hidden // 2, 4, 2, 1, **factory),  # type: ignore[arg-type]
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(hidden // 2, out_channels, 4, 2, 1, **factory),  # type: ignore[arg-type]
        )
        if init_std is not None:
            init_normal_(self, init_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.in_channels, "ObjectDecoder", multiple=4)
        return self.decoder(self.encoder(x))
