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
from vqcore.search import DEFAULT_BLOCK_ELEMENTS, row_chunk

__all__ = ["local_scales", "nearest_rows", "search_blocks"]

#: (query rows, bank rows) of one distance block on a CPU: 4 MB, so the product and its minimum
#: stay in cache. The earlier whole-bank row blocks (vqcore's 4M distances, 16 MB) went to memory
#: and back on every pass and searched a 100k-row bank 2-4x slower (tools/bench/bench_knn.py).
CPU_BLOCK = (2048, 512)


def search_blocks(n_bank: int, device: torch.device) -> tuple[int, int]:
    """(query rows, bank rows) per distance block: cache-sized on a CPU, on a GPU every bank row
    at once (vqcore's bound on the block), where one large product beats many launches."""
    if device.type == "cpu":
        return CPU_BLOCK[0], min(CPU_BLOCK[1], max(1, n_bank))
    return row_chunk(n_bank, DEFAULT_BLOCK_ELEMENTS), max(1, n_bank)


def _partial_distances(q: Tensor, bank: Tensor, bank_sq: Tensor, start: int, cols: int) -> Tensor:
    """``||e||^2 - 2 x.e`` of query rows ``q`` to bank rows ``start:start + cols``: the squared
    distance less ``||x||^2``, which ranks a row's neighbours alike and is added after."""
    rows = slice(start, start + cols)
    return torch.addmm(bank_sq[rows].unsqueeze(0), q, bank[rows].t(), alpha=-2.0)


def _nearest(
    query: Tensor, bank: Tensor, bank_sq: Tensor, block: tuple[int, int]
) -> tuple[Tensor, Tensor]:
    """Squared distance of each query row to its nearest bank row, and that row's index.

    ``||e||^2 - 2 x.e`` is minimised over the bank, then ``||x||^2`` added and the sum clamped at
    0: the same value as the minimum of the whole ``||x||^2 + ||e||^2 - 2 x.e`` (rounding is
    monotone), two passes fewer over every block. Of equal distances the first row wins; a row
    whose ``bank_sq`` is ``inf`` is never found.
    """
    rows, cols = block
    best = torch.full((query.shape[0],), float("inf"), device=query.device)
    index = torch.zeros(query.shape[0], dtype=torch.long, device=query.device)
    for s in range(0, query.shape[0], rows):
        q = query[s : s + rows]
        best_q, index_q = best[s : s + rows], index[s : s + rows]
        for t in range(0, bank.shape[0], cols):
            part = _partial_distances(q, bank, bank_sq, t, cols)
            if cols >= bank.shape[0]:  # one block (a GPU): no host sync
                v, i = part.min(1)
                best_q.copy_(v)
                index_q.copy_(i)
                continue
            # The values first (a vectorised pass); the index only of rows this block improves,
            # strictly, so of equal distances the earlier block's (lower) row stays.
            better = part.amin(1) < best_q
            if bool(better.any()):
                rows_better = better.nonzero()[:, 0]
                v, i = part[rows_better].min(1)
                best_q[rows_better] = v
                index_q[rows_better] = i + t
        best_q.add_((q * q).sum(1)).clamp_min_(0)
    return best, index


def nearest_rows(
    query: Tensor,
    bank: Tensor,
    *,
    skip: Tensor | None = None,
    chunk: int | None = None,
    bank_block: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Euclidean distance of each query row to its nearest bank row, and that row's index.

    Args:
        query: (Q, C) rows.
        bank: (N, C) rows.
        skip: (N,) bool: bank rows to ignore (leave-one-scan-out); None = none.
        chunk: query rows per distance block; None = :func:`search_blocks`.
        bank_block: bank rows per distance block; None = :func:`search_blocks`.

    Returns:
        (distances (Q,), indices (Q,) int64).

    Example:
        >>> d, i = nearest_rows(torch.tensor([[0.0, 1.0]]), torch.tensor([[3.0, 5.0], [0.0, 0.0]]))
        >>> d.tolist(), i.tolist()
        ([1.0], [1])
    """
    # Not vqcore's ranked_codes(k=1): its topk can pick another row among exact ties than the
    # min of the exported graph (threedsr.graph), and the nearest row's index picks its scale.
    bank_sq = (bank * bank).sum(1)
    if skip is not None:
        bank_sq = bank_sq.masked_fill(skip, float("inf"))
    rows, cols = search_blocks(bank.shape[0], query.device)
    d2, index = _nearest(query, bank, bank_sq, (chunk or rows, bank_block or cols))
    return d2.sqrt(), index


@torch.no_grad()
def local_scales(
    bank: Tensor,
    image_ids: Tensor | None,
    k: int,
    *,
    chunk: int | None = None,
    bank_block: int | None = None,
) -> Tensor:
    """Each bank row's distance to its ``k``-th nearest row from another training scan.

    Rows whose scan is unknown (``image_ids`` None), or a bank from a single scan, fall back to
    the ``k``-th nearest other row. The scales are clamped below at 1 % of their median, so a
    row with exact duplicates in other scans cannot turn a tiny distance into a huge ratio.

    Args:
        bank: (N, C) rows (N > k).
        image_ids: (N,) the training scan of each row, or None.
        k: which neighbour (1 = the nearest).
        chunk: rows per distance block; None = :func:`search_blocks`.
        bank_block: bank rows per distance block; None = :func:`search_blocks`.

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
    rows, cols = search_blocks(n, bank.device)
    rows, cols = chunk or rows, bank_block or cols
    # A row's own scan is left out; with one scan (or none known), only the row itself. Rows
    # sorted by scan keep a query block's scans in one run of columns, so only the few bank
    # blocks that meet that run compare scan ids.
    group = (torch.arange(n) if single else image_ids).to(bank.device)  # type: ignore[union-attr]
    order = torch.argsort(group, stable=True)
    bank, group = bank[order], group[order]
    bank_sq = (bank * bank).sum(1)
    sorted_out = torch.empty(n, device=bank.device)
    # Each query block's run of columns [lo, hi), read to the host once.
    firsts = torch.arange(0, n, rows, device=bank.device)
    lasts = (firsts + rows).clamp_max(n) - 1
    runs = zip(
        torch.searchsorted(group, group[firsts]).tolist(),
        torch.searchsorted(group, group[lasts], right=True).tolist(),
        strict=True,
    )
    for s, (lo, hi) in zip(range(0, n, rows), runs, strict=True):
        q, own = bank[s : s + rows], group[s : s + rows]
        # The k smallest ||e||^2 - 2 x.e so far (values only: the k-th is all a scale needs).
        smallest = torch.full((q.shape[0], k), float("inf"), device=bank.device)
        for t in range(0, n, cols):
            part = _partial_distances(q, bank, bank_sq, t, cols)
            if t < hi and t + cols > lo:
                part.masked_fill_(own[:, None] == group[None, t : t + cols], float("inf"))
            if cols >= n:  # one block (a GPU): no host sync
                smallest = part.topk(k, dim=1, largest=False, sorted=True).values
                continue
            # Only rows whose block holds something nearer than their k-th so far need a rank.
            near = part.amin(1) < smallest[:, -1]
            if bool(near.any()):
                rows_near = near.nonzero()[:, 0]
                top = part[rows_near].topk(min(k, part.shape[1]), dim=1, largest=False).values
                merged = torch.cat([smallest[rows_near], top], 1)
                smallest[rows_near] = merged.topk(k, dim=1, largest=False, sorted=True).values
        sorted_out[s : s + rows] = (smallest[:, -1] + (q * q).sum(1)).clamp_min(0).sqrt()
    out = torch.empty_like(sorted_out)
    out[order] = sorted_out
    floor = float(out.median()) * 0.01
    return out.clamp_min(max(floor, 1e-12))


def _max_other_rows(image_ids: Tensor) -> int:
    """The fewest rows any scan's rows have outside their own scan."""
    _, counts = image_ids.unique(return_counts=True)
    return int(image_ids.numel() - counts.max())
