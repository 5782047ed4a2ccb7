"""Small tensor operations shared by the backbones.

The grouped layers of DADA (spec §1.2) treat the first half of the channels as the depth stream and
the second half as the RGB stream. When two grouped feature maps are concatenated before another
grouped layer, the halves must be interleaved so that each group still sees only its own modality.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["code_usage", "interleave_groups", "split_groups"]


def split_groups(x: Tensor, groups: int = 2) -> tuple[Tensor, ...]:
    """Split the channel dimension into ``groups`` equal, contiguous parts.

    Args:
        x: tensor of shape (B, C, H, W) with C divisible by ``groups``.
        groups: number of groups.

    Returns:
        ``groups`` tensors of shape (B, C // groups, H, W).

    Example:
        >>> a, b = split_groups(torch.arange(4.0).view(1, 4, 1, 1))
        >>> a.flatten().tolist(), b.flatten().tolist()
        ([0.0, 1.0], [2.0, 3.0])
    """
    if x.ndim != 4:
        raise ValueError(f"split_groups expects (B, C, H, W), got shape {tuple(x.shape)}")
    if x.shape[1] % groups:
        raise ValueError(f"split_groups: C={x.shape[1]} is not divisible by groups={groups}")
    return tuple(torch.chunk(x, groups, dim=1))


def interleave_groups(*tensors: Tensor, groups: int = 2) -> Tensor:
    """Concatenate tensors along channels so that group ``g`` of every input lands in group ``g``.

    For two inputs ``a = [a_depth | a_rgb]`` and ``b = [b_depth | b_rgb]`` and ``groups=2`` the
    result is ``[a_depth, b_depth, a_rgb, b_rgb]`` (spec §1.3, PreVQBot and DecoderBot): a grouped
    convolution applied to it mixes depth features only with depth features.

    Args:
        *tensors: tensors of shape (B, C_i, H, W), each C_i divisible by ``groups``.
        groups: number of channel groups (2 = depth / RGB).

    Returns:
        Tensor of shape (B, sum C_i, H, W).

    Shape:
        - inputs: (B, C_i, H, W)
        - output: (B, ΣC_i, H, W)

    Example:
        >>> a = torch.tensor([0.0, 1.0]).view(1, 2, 1, 1)   # [a_d, a_rgb]
        >>> b = torch.tensor([10.0, 11.0]).view(1, 2, 1, 1)  # [b_d, b_rgb]
        >>> interleave_groups(a, b).flatten().tolist()
        [0.0, 10.0, 1.0, 11.0]
    """
    if not tensors:
        raise ValueError("interleave_groups needs at least one tensor")
    parts = [split_groups(t, groups) for t in tensors]
    return torch.cat([p[g] for g in range(groups) for p in parts], dim=1)


def code_usage(indices: Tensor, num_embeddings: int) -> tuple[Tensor, Tensor]:
    """Perplexity and number of distinct codes used by a batch of code indices.

    Args:
        indices: integer tensor of any shape with values in ``[0, num_embeddings)``.
        num_embeddings: codebook size K.

    Returns:
        ``(perplexity, used)``: exp of the entropy of the code histogram (1 = one code, K = uniform)
        and the count of codes used at least once, both 0-d tensors.

    Example:
        >>> p, used = code_usage(torch.tensor([0, 1, 2, 3]), 8)
        >>> round(float(p), 4), int(used)
        (4.0, 4)
    """
    counts = torch.bincount(indices.reshape(-1).long(), minlength=num_embeddings).float()
    probs = counts / counts.sum().clamp_min(1.0)
    perplexity = torch.exp(-(probs * torch.log(probs + 1e-10)).sum())
    return perplexity, (counts > 0).sum()
