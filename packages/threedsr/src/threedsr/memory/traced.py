"""The memory's nearest-row search as a fixed graph: what a traced or exported memory runs.

An eager search (:func:`~threedsr.memory.knn.nearest_rows`) visits the object's cells only, in
cache-sized blocks. A traced graph cannot depend on the data, so it searches every cell, and each
step is one whole-tensor operation of the runtime (onnxruntime runs them one after the other).
Two forms make those steps cheap there; both give the eager search's result:

- The bank is stored *augmented* (:func:`augmented_banks`): each atom's ``[-2 e, ||e||^2]``, so
  one plain matrix product of ``[x, 1]`` gives ``||e||^2 - 2 x.e``. A product with a bias
  (ONNX ``Gemm`` with ``C``) ran 4x slower than the plain product on onnxruntime's CPU provider.
- The nearest row is found in two levels (:func:`first_minimum`): the minimum of each block of
  bank rows, then the first block holding the overall minimum and the first row within it. An
  ``ArgMin`` over 100k rows ran 4x slower on onnxruntime than a ``ReduceMin``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["MINIMUM_BLOCK", "augmented_banks", "first_minimum", "traced_nearest"]

#: Bank rows per block of :func:`first_minimum`'s first level.
MINIMUM_BLOCK = 1024

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
) -> list[tuple[Tensor, Tensor]]:
    """Each part's (squared distance, nearest row index) of every query row.

    Args:
        query: (Q, C) query rows.
        augmented: :func:`augmented_banks` of the bank, per atom.
        atoms, of_part: :func:`~threedsr.memory.knn.channel_atoms`' result.
        block: the ``block`` the banks were augmented with.

    Example:
        >>> bank = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
        >>> aug = augmented_banks(bank, [None], 1024)
        >>> traced_nearest(torch.tensor([[3.0, 3.0]]), aug, [None], [[0]], 1024)
        [(tensor([1.]), tensor([1]))]
    """
    columns = [query if cols is None else query[:, cols] for cols in atoms]
    partial = [F.pad(x, (0, 1), value=1.0) @ aug for x, aug in zip(columns, augmented, strict=True)]
    step = min(block, int(augmented[0].shape[1]))
    out = []
    for ids in of_part:
        part = partial[ids[0]]
        for a in ids[1:]:
            part = part + partial[a]
        value, index = first_minimum(part, step)
        x_sq = sum((columns[a] * columns[a]).sum(1) for a in ids)
        out.append(((value + x_sq).clamp_min(0), index))
    return out
