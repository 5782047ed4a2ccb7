"""What the descriptor memory stores per cell: the frozen encoder's features or hand-made
descriptors, with their scales, pooling and per-group weights."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from vqcore import DiscreteAutoencoder

from threedsr.memory.config import MemoryConfig
from threedsr.memory.descriptors import LEGACY_GROUPS, group_slices, local_descriptors, setup_groups

__all__ = ["MemoryFeatures", "object_cells"]


@dataclass(frozen=True)
class MemoryFeatures:
    """What the memory stores per cell.

    Args:
        kind: ``encoder`` = the backbone's Encoder-1 output (1/4 resolution); ``descriptors`` =
            :func:`threedsr.memory.descriptors.local_descriptors` of the input at Gaussian ``scales``,
            averaged over ``pool`` x ``pool`` cells.
        scales: descriptor scales in pixels at model resolution.
        pool: descriptor cell side in pixels.
        groups: descriptor groups (:data:`threedsr.memory.descriptors.DESCRIPTOR_GROUPS`); those the
            setup's input cannot give are skipped.
        weights: one weight per group in ``groups``, spread evenly over the group's standardised
            channels (each channel gets ``w / sqrt(channels)``), so a group's share of the
            distance does not grow with its channel count; None = every channel weighs 1 (the
            detectors written before groups existed).

    Example:
        >>> MemoryFeatures.from_state(MemoryFeatures("descriptors").state())
        MemoryFeatures(kind='descriptors', scales=(1.0, 2.0, 4.0), pool=2, groups=('surface', 'colour'), weights=None)
    """

    kind: Literal["encoder", "descriptors"] = "encoder"
    scales: tuple[float, ...] = (1.0, 2.0, 4.0)
    pool: int = 2
    groups: tuple[str, ...] = LEGACY_GROUPS
    weights: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("encoder", "descriptors"):
            raise ValueError(
                f"MemoryFeatures: kind must be 'encoder' or 'descriptors', got {self.kind!r}"
            )
        if not self.scales or min(self.scales) <= 0:
            raise ValueError(f"MemoryFeatures: scales must be > 0, got {self.scales}")
        if self.pool < 1:
            raise ValueError(f"MemoryFeatures: pool must be >= 1, got {self.pool}")
        setup_groups("rgbd", self.groups)  # names checked here, not at the first extract
        if self.weights is not None and (
            len(self.weights) != len(self.groups) or min(self.weights) <= 0
        ):
            raise ValueError(
                f"MemoryFeatures: weights must be one positive number per group {self.groups}, "
                f"got {self.weights}"
            )
        object.__setattr__(self, "scales", tuple(float(s) for s in self.scales))
        object.__setattr__(self, "groups", tuple(str(g) for g in self.groups))
        if self.weights is not None:
            object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))

    @classmethod
    def from_config(cls, config: MemoryConfig) -> MemoryFeatures:
        return cls(config.features, config.scales, groups=config.groups, weights=config.weights)

    @torch.no_grad()
    def extract(
        self,
        setup: str,
        x: Tensor,
        *,
        backbone: DiscreteAutoencoder | None = None,
        encoder: Tensor | None = None,
    ) -> Tensor:
        """(B, C, h, w) features of inputs ``x``; encoder features need the ``backbone`` or
        ``encoder``, ``x``'s Encoder-1 output when the caller already has it."""
        if self.kind == "encoder":
            if encoder is not None:
                return encoder
            if backbone is None:
                raise ValueError("MemoryFeatures: encoder features need the backbone")
            return backbone.encoder_bottom(x)
        d = local_descriptors(x, setup, self.scales, self.groups)
        return F.avg_pool2d(d, self.pool) if self.pool > 1 else d

    def channel_weights(self, setup: str) -> Tensor | None:
        """(C,) weight of each descriptor channel for ``setup``; None = all 1."""
        if self.kind != "descriptors" or self.weights is None:
            return None
        by_group = dict(zip(self.groups, self.weights, strict=True))
        parts = []
        for group, sl in group_slices(setup, len(self.scales), self.groups).items():
            n = sl.stop - sl.start
            parts.append(torch.full((n,), by_group[group] / n**0.5))
        return torch.cat(parts)

    def state(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "scales": list(self.scales),
            "pool": self.pool,
            "groups": list(self.groups),
            "weights": None if self.weights is None else list(self.weights),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any] | None) -> MemoryFeatures:
        """None (checkpoints written before descriptors existed) = encoder features; no
        ``groups`` (before groups existed) = surface and colour, every channel weighing 1."""
        if state is None:
            return cls()
        weights = state.get("weights")
        return cls(
            str(state["kind"]),  # type: ignore[arg-type]
            tuple(state["scales"]),
            int(state["pool"]),
            tuple(state.get("groups") or LEGACY_GROUPS),
            None if weights is None else tuple(weights),
        )


def object_cells(setup: str, x: Tensor, cells: tuple[int, int]) -> Tensor | None:
    """(B, h, w) bool: feature cells on the object, for setups with depth (pcprep leaves the
    background at depth 0 and puts the object in [0.1, 0.9]); None for RGB alone (no
    foreground is known, every cell counts): a cell is on the object when most of its pixels
    are."""
    if setup == "rgb":
        return None
    on = (x[:, :1] > 0.05).float()
    # Plain ints: a traced graph records the pool with fixed kernels, not shape arithmetic.
    height, width = int(x.shape[2]), int(x.shape[3])
    kh, kw = height // int(cells[0]), width // int(cells[1])
    if (kh * cells[0], kw * cells[1]) == (height, width):
        # An exact average pool, which an exported graph records with fixed kernels.
        return F.avg_pool2d(on, (kh, kw))[:, 0] > 0.5
    return F.adaptive_avg_pool2d(on, cells)[:, 0] > 0.5
