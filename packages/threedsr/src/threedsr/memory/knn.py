"""Nearest-row search over a feature bank, in blocks of query and bank rows.

The feature memory (:mod:`threedsr.memory`) scores a query cell by its distance to the nearest
row of a bank of good cells (:func:`nearest_rows`); the bank's local scales
(:mod:`threedsr.memory.local_scale`) search the bank against itself with the same blocks.

Both searches take the memory's parts (:mod:`threedsr.memory.parts`) at once: a part's
``||e||^2 - 2 x.e`` is the sum of its channel atoms' (:func:`channel_atoms`), so the rgbd joint
part costs an addition, not a product over every channel (docs/bench/threedsr.md, session 18).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor
from vqcore.search import DEFAULT_BLOCK_ELEMENTS, row_chunk

__all__ = [
    "SplitBank",
    "channel_atoms",
    "nearest_rows",
    "part_partial_distances",
    "search_blocks",
    "split_bank",
]

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


def channel_atoms(parts: Tensor | None) -> tuple[list[list[int] | None], list[list[int]]]:
    """The channels of a part set cut into atoms: the largest sets of channels that belong to
    the same parts, in the order of their first channel. Returns each atom's channels (None =
    every channel, when ``parts`` is None) and each part's atoms, as plain lists (constants in
    a traced graph).

    A part's ``||e||^2 - 2 x.e`` is the sum of its atoms', so parts that share channels share
    their products: the rgbd memory's joint part costs one addition instead of a product over
    every channel (``separate+joint``: atoms depth and colour, parts depth, colour, both).

    Example:
        >>> channel_atoms(torch.tensor([[1, 1, 0], [0, 0, 1], [1, 1, 1]]).bool())
        ([[0, 1], [2]], [[0], [1], [0, 1]])
    """
    if parts is None:
        return [None], [[0]]
    masks = parts.bool().tolist()
    atoms: dict[tuple[bool, ...], list[int]] = {}
    for channel in range(len(masks[0])):
        member = tuple(mask[channel] for mask in masks)
        if any(member):
            atoms.setdefault(member, []).append(channel)
    of_part = [[a for a, member in enumerate(atoms) if member[p]] for p in range(len(masks))]
    return list(atoms.values()), of_part


def _columns(x: Tensor, atoms: list[list[int] | None]) -> list[Tensor]:
    """``x``'s columns of each atom, contiguous for the products."""
    return [x if cols is None else x[:, cols].contiguous() for cols in atoms]


class SplitBank(NamedTuple):
    """A bank cut into its parts' channel atoms: what a search of it needs, made once
    (:func:`split_bank`) and reused for every query (every image of a batch, every block of a
    traced search)."""

    atoms: list[list[int] | None]
    of_part: list[list[int]]
    banks: list[Tensor]
    banks_sq: list[Tensor]


def split_bank(
    bank: Tensor, atoms: tuple[list[list[int] | None], list[list[int]]] | None = None
) -> SplitBank:
    """``bank``'s columns of each atom and their squared row norms; ``atoms`` is
    :func:`channel_atoms`' result (None = one atom of every channel)."""
    atoms_, of_part = atoms if atoms is not None else channel_atoms(None)
    banks = _columns(bank, atoms_)
    return SplitBank(atoms_, of_part, banks, [(b * b).sum(1) for b in banks])


def _partial_distances(q: Tensor, bank: Tensor, bank_sq: Tensor, start: int, cols: int) -> Tensor:
    """``||e||^2 - 2 x.e`` of query rows ``q`` to bank rows ``start:start + cols``: the squared
    distance less ``||x||^2``, which ranks a row's neighbours alike and is added after."""
    rows = slice(start, start + cols)
    return torch.addmm(bank_sq[rows].unsqueeze(0), q, bank[rows].t(), alpha=-2.0)


def part_partial_distances(
    queries: list[Tensor],
    banks: list[Tensor],
    banks_sq: list[Tensor],
    of_part: list[list[int]],
    start: int,
    cols: int,
    hide: Tensor | None = None,
) -> list[Tensor]:
    """Each part's ``||e||^2 - 2 x.e`` to bank rows ``start:start + cols``, the sum of its atoms'
    (a one-atom part's is that atom's tensor, not a copy); ``inf`` where ``hide`` is set.

    Args:
        queries, banks, banks_sq: per atom (:func:`channel_atoms`), the query rows' columns,
            the bank's columns and the bank rows' squared norms over them.
        of_part: each part's atoms.
        start, cols: the bank rows of the block.
        hide: (Q, cols) bool, pairs that must not be found; None = none.
    """
    atom = []
    for q, b, sq in zip(queries, banks, banks_sq, strict=True):
        partial = _partial_distances(q, b, sq, start, cols)
        atom.append(partial if hide is None else partial.masked_fill_(hide, float("inf")))
    out = []
    for ids in of_part:
        part = atom[ids[0]]
        for a in ids[1:]:
            part = part + atom[a]
        out.append(part)
    return out


def _nearest(
    queries: list[Tensor],
    banks: list[Tensor],
    banks_sq: list[Tensor],
    of_part: list[list[int]],
    block: tuple[int, int],
) -> tuple[Tensor, Tensor]:
    """(P, Q) squared distance of each query row to its nearest bank row in each part, and that
    row's index; ``queries``, ``banks`` and ``banks_sq`` per atom (:func:`channel_atoms`).

    ``||e||^2 - 2 x.e`` is minimised over the bank, then ``||x||^2`` added and the sum clamped at
    0: the same value as the minimum of the whole ``||x||^2 + ||e||^2 - 2 x.e`` (rounding is
    monotone), two passes fewer over every block. Of equal distances the first row wins; a row
    whose ``bank_sq`` is ``inf`` is never found.
    """
    rows, cols = block
    n_query, n_bank, device = queries[0].shape[0], banks[0].shape[0], queries[0].device
    best = torch.full((len(of_part), n_query), float("inf"), device=device)
    index = torch.zeros(len(of_part), n_query, dtype=torch.long, device=device)
    for s in range(0, n_query, rows):
        q = [a[s : s + rows] for a in queries]
        best_q, index_q = best[:, s : s + rows], index[:, s : s + rows]
        for t in range(0, n_bank, cols):
            for p, part in enumerate(part_partial_distances(q, banks, banks_sq, of_part, t, cols)):
                if cols >= n_bank:  # one block (a GPU): no host sync
                    v, i = part.min(1)
                    best_q[p].copy_(v)
                    index_q[p].copy_(i)
                    continue
                # The values first (a vectorised pass); the index only of rows this block
                # improves, strictly, so of equal distances the earlier block's row stays.
                better = part.amin(1) < best_q[p]
                if bool(better.any()):
                    rows_better = better.nonzero()[:, 0]
                    v, i = part[rows_better].min(1)
                    best_q[p, rows_better] = v
                    index_q[p, rows_better] = i + t
        for p, ids in enumerate(of_part):
            best_q[p].add_(sum((q[a] * q[a]).sum(1) for a in ids)).clamp_min_(0)
    return best, index


def nearest_rows(
    query: Tensor,
    bank: Tensor | SplitBank,
    *,
    skip: Tensor | None = None,
    parts: Tensor | None = None,
    chunk: int | None = None,
    bank_block: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Euclidean distance of each query row to its nearest bank row, and that row's index; with
    ``parts``, in each part's channels (parts that share channels share their products).

    Args:
        query: (Q, C) rows.
        bank: (N, C) rows, or a :class:`SplitBank` made once for many queries (its atoms then
            stand for ``parts``).
        skip: (N,) bool: bank rows to ignore (leave-one-scan-out); None = none.
        parts: (P, C) bool, the channels each part searches; None = one search over every
            channel.
        chunk: query rows per distance block; None = :func:`search_blocks`.
        bank_block: bank rows per distance block; None = :func:`search_blocks`.

    Returns:
        (distances (Q,), indices (Q,) int64); with ``parts``, (P, Q) each.

    Example:
        >>> d, i = nearest_rows(torch.tensor([[0.0, 1.0]]), torch.tensor([[3.0, 5.0], [0.0, 0.0]]))
        >>> d.tolist(), i.tolist()
        ([1.0], [1])
        >>> d, i = nearest_rows(torch.tensor([[0.0, 1.0]]), torch.tensor([[3.0, 5.0], [0.0, 0.0]]),
        ...                     parts=torch.tensor([[True, False], [True, True]]))
        >>> d.tolist(), i.tolist()
        ([[0.0], [1.0]], [[1], [1]])
    """
    # Not vqcore's ranked_codes(k=1): its topk can pick another row among exact ties than the
    # min of the exported graph (threedsr.graph), and the nearest row's index picks its scale.
    split = bank if isinstance(bank, SplitBank) else split_bank(bank, channel_atoms(parts))
    banks_sq = split.banks_sq
    if skip is not None:
        banks_sq = [sq.masked_fill(skip, float("inf")) for sq in banks_sq]
    rows, cols = search_blocks(split.banks[0].shape[0], query.device)
    block = (chunk or rows, bank_block or cols)
    d2, index = _nearest(_columns(query, split.atoms), split.banks, banks_sq, split.of_part, block)
    d = d2.sqrt()
    return (d[0], index[0]) if split.atoms == [None] else (d, index)
