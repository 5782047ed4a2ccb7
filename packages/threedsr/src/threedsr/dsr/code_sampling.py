"""Near-but-wrong codes (spec §3.4): the neighbour ranks a replacement code is drawn from, and
the draw for every masked cell, the code replacement of :mod:`threedsr.dsr.anomaly_generator`
(:mod:`threedsr.dsr.device_generator` draws from the same ranks)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from vqcore.search import DEFAULT_BLOCK_ELEMENTS, ranked_codes

__all__ = ["code_rank_bounds", "sample_codes"]


def code_rank_bounds(
    strength: float, num_codes: int, exclude_nearest: float = 0.05
) -> tuple[int, int]:
    """Half-open range ``[lo, hi)`` of neighbour ranks (0 = nearest) a replacement code is drawn from.

    ``hi = clamp(int(strength*K) + 1, 1, K - 1)`` and ``lo = int(exclude_nearest*K)``, as the
    reference; when ``lo >= hi`` (tiny codebooks or strengths) ``lo`` falls to ``hi - 1`` so the
    range is never empty (the reference would index an empty list there).

    Example:
        >>> code_rank_bounds(0.1, 2048)
        (102, 205)
        >>> code_rank_bounds(1.0, 2048)
        (102, 2047)
    """
    hi = max(1, min(int(strength * num_codes) + 1, num_codes - 1))
    lo = min(int(num_codes * exclude_nearest), hi - 1)
    return lo, hi


def sample_codes(
    features: Tensor,
    codebook: Tensor,
    cell_mask: Tensor,
    strengths: Tensor | np.ndarray,
    *,
    exclude_nearest: float = 0.05,
    generator: torch.Generator | None = None,
    block_elements: int = DEFAULT_BLOCK_ELEMENTS,
) -> tuple[Tensor, Tensor]:
    """Draw a replacement code for every masked cell among its ``[lo, hi)``-ranked neighbours.

    Distances are from the *pre-quantisation* feature to every code, computed only for masked
    cells and in row chunks of at most ``block_elements`` (cells x K) entries, and ranked by
    :func:`vqcore.search.ranked_codes` (the search of the quantizers' ``nearest_k``).

    Args:
        features: (B, D, h, w) pre-quantisation features.
        codebook: (K, D).
        cell_mask: (B, h, w) bool, cells to draw for.
        strengths: (B,) in [0, 1].
        exclude_nearest: fraction of nearest codes never drawn.
        generator: torch generator on ``features.device``.
        block_elements: largest distance block.

    Returns:
        ``(codes (B, D, h, w), indices (B, h, w))``; unmasked cells hold zeros / -1.

    Example:
        >>> cb = torch.randn(64, 4)
        >>> codes, idx = sample_codes(torch.randn(2, 4, 3, 3), cb, torch.ones(2, 3, 3, dtype=torch.bool),
        ...                           torch.tensor([0.2, 0.9]))
        >>> codes.shape, bool((idx >= 0).all())
        (torch.Size([2, 4, 3, 3]), True)
    """
    b, d, h, w = features.shape
    k = codebook.shape[0]
    cb = codebook.to(features.dtype)
    strengths = [float(s) for s in np.asarray(torch.as_tensor(strengths).cpu())]
    indices = torch.full((b, h * w), -1, dtype=torch.long, device=features.device)
    flat_all = features.permute(0, 2, 3, 1).reshape(b, h * w, d)
    mask_flat = cell_mask.reshape(b, h * w)
    for i in range(b):
        cells = mask_flat[i].nonzero(as_tuple=True)[0]
        if cells.numel() == 0:
            continue
        lo, hi = code_rank_bounds(strengths[i], k, exclude_nearest)
        ranks = torch.randint(lo, hi, (cells.numel(),), generator=generator, device=features.device)
        # |x|^2 is constant per row: ranks do not need it (row_norms=False).
        _, picked = ranked_codes(
            flat_all[i, cells], cb, hi, ranks=ranks, row_norms=False, block_elements=block_elements
        )
        indices[i, cells] = picked
    codes = torch.zeros(b, h * w, d, dtype=features.dtype, device=features.device)
    chosen = indices >= 0
    codes[chosen] = cb[indices[chosen]]
    return codes.view(b, h, w, d).permute(0, 3, 1, 2), indices.view(b, h, w)
