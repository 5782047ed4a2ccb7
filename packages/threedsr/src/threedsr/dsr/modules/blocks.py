"""Small building blocks shared by the stage-2 modules (no grouping, no affine norms)."""

from __future__ import annotations

from typing import Any

import torch
import vqcore
from torch import nn
from vqcore.blocks import SKIPS

__all__ = [
    "SKIPS",
    "ResidualBlock",
    "ResidualStack",
    "check_input",
    "conv_in_relu",
    "double_conv",
    "init_normal_",
    "upsample2",
]


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


class ResidualBlock(vqcore.ResidualBlock):
    """:class:`vqcore.ResidualBlock` (ReLU, no norm, no groups) under threedsr's signature, and
    reading the older state-dict layout (``block.1``/``block.3``) of detectors saved before it.

    ``skip(x) + conv1x1(relu(conv3x3(relu(x))))``, bias-free (VQ-VAE-2 style). The reference
    object decoder (``dsr_model.Residual``) opens its block with ``nn.ReLU(inplace=True)``, which
    overwrites ``x`` before the skip addition, so it computes ``relu(x) + block(x)``:
    ``skip="relu"``. ``skip="identity"`` is the textbook ``x + block(x)`` (what DADA's blocks
    compute, and what threedsr computed before issue 13). Both are written out-of-place.

    Args:
        channels: input/output channels.
        hidden: hidden channels of the 3x3 conv.
        skip: ``relu`` (the reference object decoder) or ``identity``.

    Example:
        >>> block = ResidualBlock(2, 2, skip="relu")
        >>> _ = torch.nn.init.zeros_(block.conv1.weight)
        >>> block(torch.tensor([-1.0, 2.0]).view(1, 2, 1, 1)).flatten().tolist()
        [0.0, 2.0]
    """

    #: state-dict names before issue 15 (an ``nn.Sequential`` ``block``) -> the vqcore names.
    LEGACY_KEYS: tuple[tuple[str, str], ...] = (("block.1.", "conv3."), ("block.3.", "conv1."))

    def __init__(
        self, channels: int, hidden: int, *, skip: str = "identity", **factory: Any
    ) -> None:
        super().__init__(channels, hidden, skip=skip, **factory)

    @property
    def block(self) -> tuple[nn.Module, ...]:
        """The layers in the order of the older ``nn.Sequential`` (``block[1]`` = the 3x3 conv,
        ``block[3]`` = the 1x1 conv)."""
        return (self.act_in, self.conv3, self.act_mid, self.conv1)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        for old, new in self.LEGACY_KEYS:
            for key in [k for k in state_dict if k.startswith(prefix + old)]:
                state_dict[prefix + new + key[len(prefix + old) :]] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, *args)


class ResidualStack(vqcore.ResidualStack):
    """``num_layers`` :class:`ResidualBlock` (``skip`` as there) followed by a ReLU."""

    block_cls = ResidualBlock

    def __init__(
        self,
        channels: int,
        hidden: int,
        num_layers: int,
        *,
        skip: str = "identity",
        **factory: Any,
    ) -> None:
        super().__init__(channels, hidden, num_layers, skip=skip, **factory)


def init_normal_(module: nn.Module, std: float = 0.02) -> nn.Module:
    """Draw every conv / transposed-conv weight from N(0, std), biases untouched (reference init)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.normal_(m.weight, 0.0, std)
    return module


def check_input(x: torch.Tensor, channels: int, name: str, multiple: int = 1) -> None:
    """:func:`vqcore.check_shape` for (B, channels, H, W): raises ``vqcore.ShapeError`` (a
    ``ValueError``) naming the dims."""
    vqcore.check_shape(x, ("B", channels, "H", "W"), multiple=multiple, name=name)
