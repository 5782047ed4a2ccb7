"""Small building blocks shared by the stage-2 modules (no grouping, no affine norms)."""

from __future__ import annotations

import torch
from torch import nn


def conv_in_relu(in_ch: int, out_ch: int, **factory: object) -> list[nn.Module]:
    """conv3x3 -> InstanceNorm (non-affine, no running stats) -> ReLU, as a list of layers."""
    return [
        nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1, **factory),  # type: ignore[arg-type]
        nn.InstanceNorm2d(out_ch, affine=False, track_running_stats=False),
        nn.ReLU(inplace=True),
    ]


def double_conv(in_ch: int, out_ch: int, **factory: object) -> nn.Sequential:
    """Two ``conv_in_relu`` layers, the first changing the width."""
    return nn.Sequential(
        *conv_in_relu(in_ch, out_ch, **factory), *conv_in_relu(out_ch, out_ch, **factory)
    )


def upsample2() -> nn.Upsample:
    """Bilinear x2 with ``align_corners=True`` (the reference's choice)."""
    return nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)


SKIPS: tuple[str, ...] = ("relu", "identity")


class ResidualBlock(nn.Module):
    """``skip(x) + conv1x1(relu(conv3x3(relu(x))))``, bias-free (VQ-VAE-2 style).

    The reference object decoder (``dsr_model.Residual``) opens its block with
    ``nn.ReLU(inplace=True)``, which overwrites ``x`` before the skip addition, so it computes
    ``relu(x) + block(x)``: ``skip="relu"``. ``skip="identity"`` is the textbook ``x + block(x)``
    (what DADA's blocks compute, and what threedsr computed before issue 13). Both are written
    out-of-place, so autograd and the fast-conv plan see the same graph either way.

    Args:
        channels: input/output channels.
        hidden: hidden channels of the 3x3 conv.
        skip: ``relu`` (the reference object decoder) or ``identity``.

    Example:
        >>> block = ResidualBlock(2, 2, skip="relu")
        >>> _ = torch.nn.init.zeros_(block.block[3].weight)
        >>> block(torch.tensor([-1.0, 2.0]).view(1, 2, 1, 1)).flatten().tolist()
        [0.0, 2.0]
    """

    def __init__(
        self, channels: int, hidden: int, *, skip: str = "identity", **factory: object
    ) -> None:
        super().__init__()
        if skip not in SKIPS:
            raise ValueError(f"ResidualBlock: skip must be one of {SKIPS}, got {skip!r}")
        self.skip = skip
        self.block = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(channels, hidden, 3, padding=1, bias=False, **factory),  # type: ignore[arg-type]
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1, bias=False, **factory),  # type: ignore[arg-type]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return (torch.relu(x) if self.skip == "relu" else x) + y

    def extra_repr(self) -> str:
        return f"skip={self.skip}"


class ResidualStack(nn.Module):
    """``num_layers`` residual blocks (``skip`` as :class:`ResidualBlock`) followed by a ReLU."""

    def __init__(
        self,
        channels: int,
        hidden: int,
        num_layers: int,
        *,
        skip: str = "identity",
        **factory: object,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            ResidualBlock(channels, hidden, skip=skip, **factory) for _ in range(num_layers)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return torch.relu(x)


def init_normal_(module: nn.Module, std: float = 0.02) -> nn.Module:
    """Draw every conv / transposed-conv weight from N(0, std), biases untouched (reference init)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.normal_(m.weight, 0.0, std)
    return module


def check_input(x: torch.Tensor, channels: int, name: str, multiple: int = 1) -> None:
    """Raise a ``ValueError`` naming the dims when ``x`` is not (B, channels, H, W)."""
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(f"{name}: expected input (B, {channels}, H, W), got {tuple(x.shape)}")
    if x.shape[2] % multiple or x.shape[3] % multiple:
        raise ValueError(
            f"{name}: H and W must be multiples of {multiple}, got {tuple(x.shape[2:])}"
        )
