"""Nearest-row search over a feature bank, and the bank's local scale.

The feature memory (:mod:`threedsr.memory`) scores a query cell by its distance to the nearest
row of a bank of good cells. A plain distance treats every region of feature space alike, but
the normal variation of a real part is uneven: a thread flank, a lamella edge or a scanner
artefact at a steep slope spreads its good cells far apart, while a flat face packs them tightly.
A defect cell on a flat face lies a short distance from its nearest row and a normal cell on a
flank a long one, so the plain distance ranks them the wrong way round.

:func:`local_scales` measures how spread out the bank is around each row: the distance from the
row to its ``k``-th nearest row of *another* training scan (rows of the same scan are
neighbouring cells, nearly copies, and would make every scale tiny). Dividing a query's distance
by the scale of its nearest row (as the local outlier factor does) asks "how far is this cell,
in units of the normal spread here?". Not in the paper or the reference code; on the cable_gland
development copy it lifts I-AUROC / AUPRO of the `cpu` preset's map (docs/bench/threedsr.md).
"""

from __future__ import annotations

import torch
from torch import Tensor
from vqcore.search import DEFAULT_BLOCK_ELEMENTS, ranked_codes, row_chunk, squared_distances

__all__ = ["local_scales", "nearest_rows"]


def nearest_rows(
    query: Tensor,
    bank: Tensor,
    *,
    skip: Tensor | None = None,
    chunk: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Euclidean distance of each query row to its nearest bank row, and that row's index.

    Args:
        query: (Q, C) rows.
        bank: (N, C) rows.
        skip: (N,) bool: bank rows to ignore (leave-one-scan-out); None = none.
        chunk: query rows per distance block; None = vqcore's block bound.

    Returns:
        (distances (Q,), indices (Q,) int64).

    Example:
        >>> d, i = nearest_rows(torch.tensor([[0.0, 1.0]]), torch.tensor([[3.0, 5.0], [0.0, 0.0]]))
        >>> d.tolist(), i.tolist()
        ([1.0], [1])
    """
    # Not vqcore's ranked_codes(k=1): its topk can pick another row among exact ties than the
    # min of the exported graph (threedsr.graph), and the nearest row's index picks its scale.
    chunk = chunk or row_chunk(bank.shape[0], DEFAULT_BLOCK_ELEMENTS)
    dist = torch.empty(query.shape[0], device=query.device)
    index = torch.empty(query.shape[0], dtype=torch.long, device=query.device)
    for s in range(0, query.shape[0], chunk):
        # vqcore's nearest-code search, with the bank as the codebook.
        d2 = squared_distances(query[s : s + chunk], bank)
        if skip is not None:
            d2[:, skip] = float("inf")
        v, i = d2.min(1)
        dist[s : s + chunk], index[s : s + chunk] = v.sqrt(), i
    return dist, index


@torch.no_grad()
def local_scales(
    bank: Tensor,
    image_ids: Tensor | None,
    k: int,
    *,
    chunk: int | None = None,
) -> Tensor:
    """Each bank row's distance to its ``k``-th nearest row from another training scan.

    Rows whose scan is unknown (``image_ids`` None), or a bank from a single scan, fall back to
    the ``k``-th nearest other row. The scales are clamped below at 1 % of their median, so a
    row with exact duplicates in other scans cannot turn a tiny distance into a huge ratio.

    Args:
        bank: (N, C) rows (N > k).
        image_ids: (N,) the training scan of each row, or None.
        k: which neighbour (1 = the nearest).
        chunk: rows per distance block; None = vqcore's block bound.

    Returns:
        (N,) float32 scales > 0.

    Example:
        >>> bank = torch.tensor([[0.0], [1.0], [3.0]])
        >>> local_scales(bank, torch.tensor([0, 1, 2]), 1).tolist()
        [1.0, 1.0, 2.0]
    """
    n = bank.shape[0]
    if k < 1:
        raise ValueError(f"local_scales: k must be >= 1, got {k}")
    single = image_ids is None or bool((image_ids == image_ids[0]).all())
    if n <= k or (not single and image_ids is not None and _max_other_rows(image_ids) < k):
        raise ValueError(f"local_scales: the bank has too few rows ({n}) for k={k}")
    chunk = chunk or row_chunk(n, DEFAULT_BLOCK_ELEMENTS)
    # A row's own scan is left out; with one scan (or none known), only the row itself.
    group = (torch.arange(n) if single else image_ids).to(bank.device)  # type: ignore[union-attr]
    kth, _ = ranked_codes(bank, bank, k, exclude=(group, group), block_elements=chunk * n)
    out = kth[:, -1].sqrt()
    floor = float(out.median()) * 0.01
    return out.clamp_min(max(floor, 1e-12))


def _max_other_rows(image_ids: Tensor) -> int:
    """The fewest rows any scan's rows have outside their own scan."""
    _, counts = image_ids.unique(return_counts=True)
    return int(image_ids.numel() - counts.max())
