"""The memory's parts: which descriptor channels each nearest-neighbour search sees, and how the
searches' distances become one.

One search over every channel lets the normal variation of one modality bury a defect of the
other (CandyCane's canes come in every hue; a shallow dent hides under it), so RGB-D searches
depth and colour apart. Separate searches cannot see a pairing of shape and colour that no good
cell has while each is normal alone (a cut's rim, a thread), which the joint search does:
``modalities="separate+joint"`` runs all three.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from threedsr.memory.descriptors import group_slices

__all__ = [
    "MODALITIES",
    "MODALITY_GROUPS",
    "PART_FUSIONS",
    "check_parts",
    "combine_part_distances",
    "modality_parts",
]

#: How the descriptor channels are searched (``MemoryConfig.modalities``).
MODALITIES = ("joint", "separate", "separate+joint")
#: Descriptor groups of each modality, searched apart unless ``modalities="joint"``.
MODALITY_GROUPS = (("surface", "interior"), ("colour", "texture"))
#: How the parts' distances combine (``MemoryConfig.modality_fusion``).
PART_FUSIONS = ("sum", "max")


def modality_parts(
    setup: str, n_scales: int, groups: tuple[str, ...], modalities: str
) -> Tensor | None:
    """(P, C) bool, the channels of each part: the depth groups, the colour groups and, with
    ``separate+joint``, every channel. None for ``joint``, or when the setup or the groups give
    one modality only (one search is then the same thing).

    Example:
        >>> modality_parts("rgbd", 1, ("surface", "colour"), "separate+joint").int()
        tensor([[1, 1, 1, 0, 0, 0],
                [0, 0, 0, 1, 1, 1],
                [1, 1, 1, 1, 1, 1]], dtype=torch.int32)
    """
    if modalities == "joint":
        return None
    slices = group_slices(setup, n_scales, groups)
    if not all(any(g in slices for g in modality) for modality in MODALITY_GROUPS):
        return None
    channels = sum(sl.stop - sl.start for sl in slices.values())
    parts = torch.zeros(3 if modalities == "separate+joint" else 2, channels, dtype=torch.bool)
    for group, sl in slices.items():
        parts[0 if group in MODALITY_GROUPS[0] else 1, sl] = True
    parts[2:] = True
    return parts


def check_parts(
    parts: Tensor | None,
    part_scale: Tensor | None,
    part_center: Tensor | None,
    fusion: str,
    channels: int,
) -> Tensor | None:
    """A memory's parts as (P, C) bool masks, after checking them against its statistics; a
    (C,) part index per channel (disjoint parts, how detectors before session 16 store them) is
    read as the same masks. Raises ``ValueError`` naming what does not fit.

    Example:
        >>> check_parts(torch.tensor([0, 0, 1]), torch.ones(2), None, "sum", 3).int()
        tensor([[1, 1, 0],
                [0, 0, 1]], dtype=torch.int32)
    """
    if fusion not in PART_FUSIONS:
        raise ValueError(
            f"FeatureMemory: part_fusion must be one of {PART_FUSIONS}, got {fusion!r}"
        )
    if parts is None:
        return None
    if parts.ndim == 1:
        parts = F.one_hot(parts.long()).T
    n_parts = parts.shape[0]
    if (
        parts.ndim != 2
        or parts.shape[1] != channels
        or not parts.bool().any(1).all()
        or part_scale is None
        or tuple(part_scale.shape) != (n_parts,)
    ):
        raise ValueError(
            f"FeatureMemory: parts must be (P, {channels}) channel masks, none empty, "
            "with a part_scale of one value per part"
        )
    if fusion == "max" and (part_center is None or tuple(part_center.shape) != (n_parts,)):
        raise ValueError(
            "FeatureMemory: part_fusion='max' needs a part_center of one value per part"
        )
    return parts.bool()


def combine_part_distances(
    distances: list[Tensor], fusion: str, scale: Tensor, center: Tensor | None = None
) -> Tensor:
    """One distance from each part's (same shapes, one per part).

    ``sum``: ``sum_p d_p / s_p``. ``max``: ``max_p (d_p - m_p) / s_p + max_p m_p / s_p``, at
    least 0, where ``m_p`` and ``s_p`` are the mean and spread of part ``p``'s per-scan maximum
    on good scans: a cell is as abnormal as its most abnormal part, so a modality that is quiet
    on a defect (CandyCane's depth on a colour defect) does not add its own normal variation to
    the other's evidence. The constant keeps a good cell near its sum-fusion value and the
    background (0) below every object cell.

    Args:
        distances: P tensors of one shape.
        fusion: ``sum`` | ``max``.
        scale: (P,) each part's spread.
        center: (P,) each part's typical good-scan maximum; required by ``max``.

    Example:
        >>> d = [torch.tensor([1.0, 5.0]), torch.tensor([8.0, 4.0])]
        >>> combine_part_distances(d, "max", torch.tensor([1.0, 2.0]), torch.tensor([1.0, 4.0]))
        tensor([4., 6.])
        >>> combine_part_distances(d, "sum", torch.tensor([1.0, 2.0]))
        tensor([5., 7.])
    """
    if len(distances) != scale.shape[0]:
        raise ValueError(
            f"combine_part_distances: {len(distances)} distances for {scale.shape[0]} parts"
        )
    if fusion == "sum":
        return torch.stack([d / scale[p] for p, d in enumerate(distances)]).sum(0)
    if fusion != "max" or center is None:
        raise ValueError(f"combine_part_distances: fusion {fusion!r} (with a center for 'max')")
    z = torch.stack([(d - center[p]) / scale[p] for p, d in enumerate(distances)])
    return (z.amax(0) + (center / scale).max()).clamp_min(0)
