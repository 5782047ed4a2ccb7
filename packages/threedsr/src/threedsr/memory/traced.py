"""The memory's nearest-row search as a fixed graph: what a traced or exported memory runs.

An eager search (:func:`~threedsr.memory.knn.nearest_rows`) loops over cache-sized blocks of
queries and bank rows. A traced graph records each step as one whole-tensor operation of the
runtime (onnxruntime runs them one after the other), and its loops are fixed when traced. So the
graph gathers the object's cells (their number is known only when it runs), takes the bank in
fixed products of :data:`PRODUCT_ROWS` rows, and keeps each cell's nearest row so far. Two forms
make the steps cheap on onnxruntime; both give the eager search's result:

- The bank is stored *augmented* (:func:`augmented_banks`): each atom's ``[-2 e, ||e||^2]``, so
  one plain matrix product of ``[x, 1]`` gives ``||e||^2 - 2 x.e``. A product with a bias
  (ONNX ``Gemm`` with ``C``) ran 4x slower than the plain product on onnxruntime's CPU provider.
- The nearest row is found in two levels (:func:`first_minimum`): the minimum of each block of
  bank rows, then the first block holding the overall minimum and the first row within it.
  onnxruntime's ``ArgMin`` took 7-10x as long as its ``ReduceMin`` over the same values.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "MINIMUM_BLOCK",
    "PRODUCT_ROWS",
    "augmented_banks",
    "first_minimum",
    "recording",
    "traced_nearest",
]

#: Bank rows per block of :func:`first_minimum`'s first level (about the square root of
#: :data:`PRODUCT_ROWS`: both levels' ``ArgMin`` then see few values).
MINIMUM_BLOCK = 32

#: Bank rows per product of :func:`traced_nearest`: one product's (cells x rows) distances take
#: 8 MiB per 1000 cells searched (a 256-px rgbd scan has 16k cells, a third to half on the
#: object). Twice as many rows were up to 12 % faster on onnxruntime and held twice the memory.
PRODUCT_ROWS = 2048


def recording() -> bool:
    """Whether this call is being recorded into a graph: ``torch.jit.trace``, either
    ``torch.onnx.export`` (the TorchScript-based one, and on the torch versions threedsr uses it,
    the ``torch.export``-based one, which sets the same flag) or ``torch.export.export``. A
    recorded call takes the fixed-graph forms (this module's search, every erosion step): the
    eager ones loop over data-dependent counts, which no recorder can keep.
    """
    # torch.compiler.is_exporting is public but newer than the lowest torch allowed (2.5 lacks
    # it; there torch.export is not used: threedsr.export's gate).
    # torch.jit is deprecated (torch 2.15): a torch without it must still run eager calls.
    exporting = getattr(torch.compiler, "is_exporting", None)
    jit = getattr(torch, "jit", None)
    return bool(
        (jit is not None and jit.is_tracing())
        or torch.onnx.is_in_onnx_export()
        or (exporting is not None and exporting())
    )


# A padding row's squared norm: never the nearest (a real row's term is far smaller), and finite
# so that sums over several atoms stay finite.
_FAR = 1e30


def augmented_banks(bank: Tensor, atoms: list[list[int] | None], block: int) -> list[Tensor]:
    """Each atom's (C_a + 1, N') matrix ``[-2 e; ||e||^2]`` (bank rows as columns), N' = N
    rounded up to a multiple of ``min(block, N)`` with padding rows that are never nearest.

    Example:
        >>> bank = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
        >>> augmented_banks(bank, [None], 2)[0]
        tensor([[-2., -0.],
                [-0., -4.],
                [ 1.,  4.]])
    """
    n = bank.shape[0]
    step = min(block, n)
    pad = -n % step
    out = []
    for cols in atoms:
        b = bank if cols is None else bank[:, cols]
        aug = torch.cat([-2.0 * b, (b * b).sum(1, keepdim=True)], dim=1)
        if pad:
            far = torch.zeros(pad, aug.shape[1], dtype=aug.dtype, device=aug.device)
            far[:, -1] = _FAR
            aug = torch.cat([aug, far])
        out.append(aug.t().contiguous())
    return out


def first_minimum(x: Tensor, block: int) -> tuple[Tensor, Tensor]:
    """Each row's minimum and the index of its first occurrence, as ``x.min(dim=1)``, found as
    the first block (of ``block`` columns) holding the minimum, then the first column in it.

    Args:
        x: (Q, N) values, N a multiple of ``block``.

    Example:
        >>> first_minimum(torch.tensor([[3.0, 1.0, 2.0, 1.0]]), 2)
        (tensor([1.]), tensor([1]))
    """
    n = int(x.shape[1])  # a constant of the graph; the rows stay symbolic (dynamic batch)
    if n % block:
        raise ValueError(f"first_minimum: N = {n} is not a multiple of the block {block}")
    blocks = x.reshape(-1, n // block, block)
    value, which = blocks.amin(dim=2).min(dim=1)
    inside = blocks.gather(1, which.view(-1, 1, 1).expand(-1, 1, block))[:, 0].argmin(dim=1)
    return value, which * block + inside


def traced_nearest(
    query: Tensor,
    augmented: list[Tensor],
    atoms: list[list[int] | None],
    of_part: list[list[int]],
    block: int,
    product_rows: int,
) -> list[tuple[Tensor, Tensor]]:
    """Each part's (squared distance, nearest row index) of every query row, the bank taken
    ``product_rows`` rows at a time (a whole number of blocks): how many query rows there
    are may depend on the data (the object's cells), the blocks of the bank may not.

    Args:
        query: (Q, C) query rows.
        augmented: :func:`augmented_banks` of the bank, per atom.
        atoms, of_part: :func:`~threedsr.memory.knn.channel_atoms`' result.
        block: the ``block`` the banks were augmented with.
        product_rows: bank rows per product, a multiple of ``block``.

    Example:
        >>> bank = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
        >>> aug = augmented_banks(bank, [None], 64)
        >>> traced_nearest(torch.tensor([[3.0, 3.0]]), aug, [None], [[0]], 64, 4096)
        [(tensor([1.]), tensor([1]))]
    """
    if product_rows % block:
        raise ValueError(f"traced_nearest: {product_rows} rows a product, blocks of {block}")
    columns = [query if cols is None else query[:, cols] for cols in atoms]
    n_bank = int(augmented[0].shape[1])
    step = min(block, n_bank)
    best: list[tuple[Tensor, Tensor]] = []
    for start in range(0, n_bank, product_rows):
        if start == 0:
            one = torch.ones_like(columns[0][:, :1])
        else:
            # The augmented queries' 1s made from every part's nearest rows so far (value and
            # index): a dependency that makes any runtime finish one product before the next.
            # onnxruntime otherwise left the index searches for last and held every product's
            # distances until then (10.7 GB against 1.3 GB, a 100k-row bank and 4k cells).
            one = (sum(value + index for value, index in best) * 0 + 1)[:, None]
        partial = [
            torch.cat([x, one], dim=1) @ aug[:, start : start + product_rows]
            for x, aug in zip(columns, augmented, strict=True)
        ]
        for p, ids in enumerate(of_part):
            part = partial[ids[0]]
            for a in ids[1:]:
                part = part + partial[a]
            value, index = first_minimum(part, step)
            index = index + start
            if start == 0:
                best.append((value, index))
                continue
            # Strictly better only: of equal distances the earlier row stays (the eager rule).
            better = value < best[p][0]
            best[p] = (
                torch.where(better, value, best[p][0]),
                torch.where(better, index, best[p][1]),
            )
    out = []
    for (value, index), ids in zip(best, of_part, strict=True):
        x_sq = sum((columns[a] * columns[a]).sum(1) for a in ids)
        out.append(((value + x_sq).clamp_min(0), index))
    return out
