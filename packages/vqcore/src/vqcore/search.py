"""Memory-bounded nearest-code search: ``||x||^2 - 2 x.e + ||e||^2`` in row blocks.

Never materialises an ``N x K x D`` tensor; at most ``block_elements`` distances at once.
Two searches, one distance formula: :func:`nearest_codes` (the nearest code, ``argmin``: the
quantizers' forward) and :func:`ranked_codes` (the ``k`` nearest, ranked by ``torch.topk``: the
quantizers' ``nearest_k`` and the anomaly generator's ``sample_codes``).

:func:`nearest_codes` has a second distance form, ``"reference"``: the authors' expression in
their order, whole (:func:`reference_distances`). Both forms round differently, so near-tie
codes (distances equal to a few ulps) can go either way; the reference form reproduces the
authors' choice on the same hardware and arithmetic.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "DEFAULT_BLOCK_ELEMENTS",
    "DISTANCES",
    "check_distance",
    "nearest_codes",
    "ranked_codes",
    "reference_distances",
    "row_chunk",
    "squared_distances",
]

#: Upper bound on the number of elements of one (rows x K) distance block.
DEFAULT_BLOCK_ELEMENTS = 1 << 22

#: Distance forms of the nearest-code search: ``"fast"`` (:func:`squared_distances` in row
#: blocks, clamped) and ``"reference"`` (:func:`reference_distances`, whole, as the authors).
DISTANCES: tuple[str, ...] = ("fast", "reference")


def squared_distances(flat: Tensor, codebook: Tensor, *, row_norms: bool = True) -> Tensor:
    """Squared L2 distances between rows and codes by ``||x||^2 - 2 x.e + ||e||^2``.

    Args:
        flat: (N, D) vectors.
        codebook: (K, D) codes.
        row_norms: False leaves out ``||x||^2`` (constant along a row) and the clamp:
            ``||e||^2 - 2 x.e``, enough to rank the codes of each row (and rounded once less).

    Returns:
        (N, K) distances (clamped at 0 against round-off).

    Example:
        >>> squared_distances(torch.tensor([[0.0, 0.0]]), torch.tensor([[3.0, 4.0], [1.0, 0.0]]))
        tensor([[25.,  1.]])
    """
    e_sq = (codebook * codebook).sum(dim=1)
    part = torch.addmm(e_sq.unsqueeze(0), flat, codebook.t(), alpha=-2.0)
    if not row_norms:
        return part
    x_sq = (flat * flat).sum(dim=1, keepdim=True)
    return part.add_(x_sq).clamp_min_(0)


def reference_distances(flat: Tensor, codebook: Tensor) -> Tensor:
    """The authors' distances (zalando pytorch-vq-vae, used by DSR/3DSR), term for term:
    ``sum(x**2) + sum(e**2) - 2 * matmul(x, e.t())``, whole (N x K), not clamped.

    Example:
        >>> reference_distances(torch.tensor([[0.0, 0.0]]), torch.tensor([[3.0, 4.0], [1.0, 0.0]]))
        tensor([[25.,  1.]])
    """
    return (
        torch.sum(flat**2, dim=1, keepdim=True)
        + torch.sum(codebook**2, dim=1)
        - 2 * torch.matmul(flat, codebook.t())
    )


def check_distance(distance: str) -> None:
    """Raise ``ValueError`` unless ``distance`` is one of :data:`DISTANCES`."""
    if distance not in DISTANCES:
        raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")


def row_chunk(num_codes: int, block_elements: int) -> int:
    return max(1, block_elements // max(1, num_codes))


def nearest_codes(
    flat: Tensor,
    codebook: Tensor,
    *,
    block_elements: int = DEFAULT_BLOCK_ELEMENTS,
    distance: str = "fast",
) -> Tensor:
    """Index of the nearest code for every row (``argmin``: the first of equal distances).

    Args:
        flat: (N, D) vectors.
        codebook: (K, D) codes.
        block_elements: largest (rows x K) block materialised at once (``fast`` only).
        distance: ``"fast"``: :func:`squared_distances` in row chunks; ``"reference"``:
            :func:`reference_distances` of all rows at once, as the authors compute them (N x K
            floats: the reference's memory, and no block boundary to change the rounding).

    Returns:
        (N,) int64 indices.

    Example:
        >>> cb = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
        >>> nearest_codes(torch.tensor([[0.9, 0.8], [0.1, -0.2]]), cb, block_elements=2).tolist()
        [1, 0]
        >>> nearest_codes(torch.tensor([[0.9, 0.8]]), cb, distance="reference").tolist()
        [1]
    """
    if flat.ndim != 2 or codebook.ndim != 2 or flat.shape[1] != codebook.shape[1]:
        raise ValueError(
            f"nearest_codes expects (N, D) and (K, D), got {tuple(flat.shape)} and "
            f"{tuple(codebook.shape)}"
        )
    check_distance(distance)
    if distance == "reference":
        return torch.argmin(reference_distances(flat, codebook), dim=1)
    rows = row_chunk(codebook.shape[0], block_elements)
    out = torch.empty(flat.shape[0], dtype=torch.long, device=flat.device)
    for start in range(0, flat.shape[0], rows):
        block = squared_distances(flat[start : start + rows], codebook)
        out[start : start + rows] = block.argmin(dim=1)
    return out


def ranked_codes(
    flat: Tensor,
    codebook: Tensor,
    k: int,
    *,
    ranks: Tensor | None = None,
    row_norms: bool = True,
    exclude: tuple[Tensor, Tensor] | None = None,
    block_elements: int = DEFAULT_BLOCK_ELEMENTS,
) -> tuple[Tensor, Tensor]:
    """The ``k`` nearest codes of every row, nearest first, computed in row chunks.

    The one ranked search: each chunk's :func:`squared_distances` ranked by
    ``torch.topk(k, largest=False, sorted=True)`` (equal distances in topk's order).

    Args:
        flat: (N, D) vectors.
        codebook: (K, D) codes.
        k: number of neighbours, ``1 <= k <= K``.
        ranks: optional (N,) int64 in ``[0, k)``: return only the code of that rank for each row
            (the (N, k) table is never kept whole).
        row_norms: see :func:`squared_distances`; False returns ``||e||^2 - 2 x.e`` as the values.
        exclude: ``(row_groups (N,), code_groups (K,))``: a code whose group equals the row's is
            skipped (e.g. a feature bank searched for neighbours from *other* scans).
        block_elements: largest (rows x K) block materialised at once.

    Returns:
        ``(distances, indices)``: (N, k) each, or (N,) each with ``ranks``.

    Example:
        >>> cb = torch.tensor([[0.0], [1.0], [3.0]])
        >>> d, i = ranked_codes(torch.tensor([[0.9], [2.5]]), cb, 2)
        >>> i.tolist()
        [[1, 0], [2, 1]]
        >>> ranked_codes(torch.tensor([[0.9], [2.5]]), cb, 2, ranks=torch.tensor([1, 0]))[1].tolist()
        [0, 2]
    """
    if flat.ndim != 2 or codebook.ndim != 2 or flat.shape[1] != codebook.shape[1]:
        raise ValueError(
            f"ranked_codes expects (N, D) and (K, D), got {tuple(flat.shape)} and "
            f"{tuple(codebook.shape)}"
        )
    if not 1 <= k <= codebook.shape[0]:
        raise ValueError(f"ranked_codes: k={k} outside [1, {codebook.shape[0]}]")
    n = flat.shape[0]
    shape = (n,) if ranks is not None else (n, k)
    values = torch.empty(shape, dtype=flat.dtype, device=flat.device)
    indices = torch.empty(shape, dtype=torch.long, device=flat.device)
    rows = row_chunk(codebook.shape[0], block_elements)
    for start in range(0, n, rows):
        block = squared_distances(flat[start : start + rows], codebook, row_norms=row_norms)
        if exclude is not None:
            same = exclude[0][start : start + rows, None] == exclude[1][None, :]
            block.masked_fill_(same, float("inf"))
        v, i = torch.topk(block, k, dim=1, largest=False, sorted=True)
        if ranks is not None:
            r = ranks[start : start + rows, None]
            v, i = v.gather(1, r).squeeze(1), i.gather(1, r).squeeze(1)
        values[start : start + rows] = v
        indices[start : start + rows] = i
    return values, indices
