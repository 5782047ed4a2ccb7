"""Memory-bounded nearest-code search: ``||x||^2 - 2 x.e + ||e||^2`` in row blocks.

Never materialises an ``N x K x D`` tensor; at most ``block_elements`` distances at once.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["DEFAULT_BLOCK_ELEMENTS", "nearest_codes", "row_chunk", "squared_distances"]

#: Upper bound on the number of elements of one (rows x K) distance block.
DEFAULT_BLOCK_ELEMENTS = 1 << 22


def squared_distances(flat: Tensor, codebook: Tensor) -> Tensor:
    """Squared L2 distances between rows and codes by ``||x||^2 - 2 x.e + ||e||^2``.

    Args:
        flat: (N, D) vectors.
        codebook: (K, D) codes.

    Returns:
        (N, K) distances (clamped at 0 against round-off).

    Example:
        >>> squared_distances(torch.tensor([[0.0, 0.0]]), torch.tensor([[3.0, 4.0], [1.0, 0.0]]))
        tensor([[25.,  1.]])
    """
    x_sq = (flat * flat).sum(dim=1, keepdim=True)
    e_sq = (codebook * codebook).sum(dim=1)
    return torch.addmm(e_sq.unsqueeze(0), flat, codebook.t(), alpha=-2.0).add_(x_sq).clamp_min_(0)


def row_chunk(num_codes: int, block_elements: int) -> int:
    return max(1, block_elements // max(1, num_codes))


def nearest_codes(
    flat: Tensor, codebook: Tensor, *, block_elements: int = DEFAULT_BLOCK_ELEMENTS
) -> Tensor:
    """Index of the nearest code for every row, computed in row chunks.

    Args:
        flat: (N, D) vectors.
        codebook: (K, D) codes.
        block_elements: largest (rows x K) block materialised at once.

    Returns:
        (N,) int64 indices.

    Example:
        >>> cb = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
        >>> nearest_codes(torch.tensor([[0.9, 0.8], [0.1, -0.2]]), cb, block_elements=2).tolist()
        [1, 0]
    """
    if flat.ndim != 2 or codebook.ndim != 2 or flat.shape[1] != codebook.shape[1]:
        raise ValueError(
            f"nearest_codes expects (N, D) and (K, D), got {tuple(flat.shape)} and "
            f"{tuple(codebook.shape)}"
        )
    rows = row_chunk(codebook.shape[0], block_elements)
    out = torch.empty(flat.shape[0], dtype=torch.long, device=flat.device)
    for start in range(0, flat.shape[0], rows):
        block = squared_distances(flat[start : start + rows], codebook)
        out[start : start + rows] = block.argmin(dim=1)
    return out
