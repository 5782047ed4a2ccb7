"""Grouped residual blocks (spec §1.2): ``x + Conv1x1(act(Conv3x3(act(x))))``, bias-free.

The one residual block of the project: DADA's encoders/decoders and threedsr's object decoder
(``skip="relu"``, the reference's in-place ReLU) both build it; norm and activation are injected
(``norm_layer=``/``act_layer=`` factories, as timm does)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

__all__ = ["SKIPS", "ResidualBlock", "ResidualStack"]

#: What the skip path adds: ``identity`` (``x + block(x)``, DADA) or ``relu`` (``relu(x) +
#: block(x)``: the 3DSR reference object decoder, whose in-place ReLU overwrites ``x``).
SKIPS: tuple[str, ...] = ("relu", "identity")

LayerFactory = Callable[[int], nn.Module]


def _relu(_: int) -> nn.Module:
    # Not in-place: the skip path still needs the block input.
    return nn.ReLU()


def _identity(_: int) -> nn.Module:
    return nn.Identity()


class ResidualBlock(nn.Module):
    """One residual block: ``skip(x) + conv1x1(act(norm(conv3x3(act(x)))))``.

    Args:
        channels: input/output channels C.
        res_hidden: hidden channels of the 3x3 conv.
        groups: conv groups (2 in DADA: depth / RGB streams).
        act_layer: factory ``channels -> module`` for the activation (ReLU).
        norm_layer: factory ``channels -> module`` applied after the 3x3 conv (none in DADA).
        skip: ``identity`` (``x + block(x)``) or ``relu`` (``relu(x) + block(x)``), see
            :data:`SKIPS`; both out-of-place.
        device: factory kwarg.
        dtype: factory kwarg.

    Shape:
        - input: (B, C, H, W)
        - output: (B, C, H, W)

    Example:
        >>> block = ResidualBlock(8, 4, groups=2)
        >>> block(torch.zeros(1, 8, 5, 5)).shape
        torch.Size([1, 8, 5, 5])
    """

    def __init__(
        self,
        channels: int,
        res_hidden: int,
        *,
        groups: int = 1,
        act_layer: LayerFactory = _relu,
        norm_layer: LayerFactory = _identity,
        skip: str = "identity",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if skip not in SKIPS:
            raise ValueError(f"ResidualBlock: skip must be one of {SKIPS}, got {skip!r}")
        self.skip = skip
        factory = {"device": device, "dtype": dtype}
        self.act_in = act_layer(channels)
        self.conv3 = nn.Conv2d(
            channels, res_hidden, 3, padding=1, groups=groups, bias=False, **factory
        )
        self.norm = norm_layer(res_hidden)
        self.act_mid = act_layer(res_hidden)
        self.conv1 = nn.Conv2d(res_hidden, channels, 1, groups=groups, bias=False, **factory)

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv1(self.act_mid(self.norm(self.conv3(self.act_in(x)))))
        return (torch.relu(x) if self.skip == "relu" else x) + y

    def extra_repr(self) -> str:
        return f"skip={self.skip}"


class ResidualStack(nn.Module):
    """``num_layers`` residual blocks followed by an activation (spec §1.2).

    Args:
        channels: input/output channels.
        res_hidden: hidden channels of each block.
        num_layers: number of blocks (2 in the paper).
        groups: conv groups.
        act_layer: activation factory (ReLU).
        norm_layer: norm factory inside each block (none).
        skip: each block's skip path (:data:`SKIPS`).
        device: factory kwarg.
        dtype: factory kwarg.

    Shape:
        - input: (B, C, H, W)
        - output: (B, C, H, W)

    Example:
        >>> ResidualStack(4, 2, 2)(torch.randn(1, 4, 3, 3)).min() >= 0
        tensor(True)
    """

    #: The block class each layer is built from (a subclass may migrate older state-dict keys).
    block_cls: type[ResidualBlock] = ResidualBlock

    def __init__(
        self,
        channels: int,
        res_hidden: int,
        num_layers: int,
        *,
        groups: int = 1,
        act_layer: LayerFactory = _relu,
        norm_layer: LayerFactory = _identity,
        skip: str = "identity",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            self.block_cls(
                channels,
                res_hidden,
                groups=groups,
                act_layer=act_layer,
                norm_layer=norm_layer,
                skip=skip,
                device=device,
                dtype=dtype,
            )
            for _ in range(num_layers)
        )
        self.act_out = act_layer(channels)

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return self.act_out(x)
