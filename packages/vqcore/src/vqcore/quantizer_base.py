"""The quantizer interface both codebooks share: search, straight-through forward, lookup.

Nearest codes by squared L2 with a chunked matmul, ``||x||^2 - 2 x.e + ||e||^2``, so memory stays
at ``chunk x K`` (never ``N x K x D``), or with ``distance="reference"`` by the authors' own
expression (:func:`vqcore.search.reference_distances`); gradients pass with the straight-through
estimator. The search always runs in float32 (or float64 for float64 inputs) with autocast
disabled: a bf16 argmin picks wrong codes. The codebooks themselves (their storage, loss and
training update) are in :mod:`vqcore.quantizer`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .ops import code_usage
from .search import (
    DEFAULT_BLOCK_ELEMENTS,
    check_distance,
    nearest_codes,
    ranked_codes,
    reference_distances,
    row_chunk,
    squared_distances,
)
from .shapes import check_shape

__all__ = ["VQOutput"]


class VQOutput(NamedTuple):
    """Result of a quantizer forward pass.

    Attributes:
        quantized: (B, D, H, W) codes, straight-through (gradient flows to the input).
        loss: 0-d VQ loss (commitment only for EMA; codebook + commitment for the loss-based one).
        indices: (B, H, W) int64 code indices.
        perplexity: 0-d exp-entropy of the batch's code histogram.
    """

    quantized: Tensor
    loss: Tensor
    indices: Tensor
    perplexity: Tensor


def _compute_dtype(x: Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


class _QuantizerBase(nn.Module):
    """Shared search, lookup and usage statistics; subclasses own the codebook storage."""

    num_embeddings: int
    embedding_dim: int
    commitment_cost: float
    usage_decay: float
    #: Distance form of the nearest-code search (:data:`vqcore.search.DISTANCES`); not part of
    #: the state dict: the model's config sets it (``BackboneConfig.vq_distance``).
    distance: str = "fast"

    def set_distance(self, distance: str) -> None:
        """Search with the ``"fast"`` or the ``"reference"`` distance form from now on."""
        check_distance(distance)
        self.distance = distance

    @property
    def codebook(self) -> Tensor:  # (K, D)
        raise NotImplementedError

    def _check(self, x: Tensor) -> None:
        check_shape(x, ("B", f"D={self.embedding_dim}", "H", "W"), name=type(self).__name__)

    def forward(self, x: Tensor) -> VQOutput:
        """Nearest codes of (B, D, H, W) features, straight-through; trains the codebook's
        statistics through :meth:`_update` (training mode only) and the loss of :meth:`_loss`."""
        self._check(x)
        b, _, h, w = x.shape
        with torch.autocast(device_type=x.device.type, enabled=False):
            xf = x.to(_compute_dtype(x))
            flat = xf.permute(0, 2, 3, 1).reshape(-1, self.embedding_dim)
            idx = self._search(flat.detach())
            # Codes are read before the update (the EMA step, as in the reference).
            q = F.embedding(idx, self.codebook.to(flat.dtype))
            if self.training:
                self._update(flat.detach(), idx)
            q = q.view(b, h, w, self.embedding_dim).permute(0, 3, 1, 2)
            loss = self._loss(xf, q)
            quantized = xf + (q - xf).detach()
            perplexity, _ = code_usage(idx, self.num_embeddings)
        return VQOutput(quantized, loss, idx.view(b, h, w), perplexity)

    def _loss(self, xf: Tensor, q: Tensor) -> Tensor:
        """The VQ loss of features ``xf`` and their codes ``q`` (both (B, D, H, W))."""
        raise NotImplementedError

    def _update(self, flat: Tensor, idx: Tensor) -> None:
        """Training-mode update of the codebook statistics from (N, D) features and their codes."""
        raise NotImplementedError

    def _flatten(self, x: Tensor) -> Tensor:
        return x.to(_compute_dtype(x)).permute(0, 2, 3, 1).reshape(-1, self.embedding_dim)

    @torch.no_grad()
    def _search(self, flat: Tensor) -> Tensor:
        return nearest_codes(flat, self.codebook.detach().to(flat.dtype), distance=self.distance)

    def lookup(self, indices: Tensor) -> Tensor:
        """Code vectors for integer indices.

        Args:
            indices: (B, H, W) int64.

        Returns:
            (B, D, H, W) float tensor (the codebook's dtype).
        """
        if indices.ndim != 3:
            raise ValueError(f"lookup expects (B, H, W) indices, got {tuple(indices.shape)}")
        return F.embedding(indices, self.codebook).permute(0, 3, 1, 2).contiguous()

    def quantize_indices(self, x: Tensor) -> Tensor:
        """Nearest-code indices of (B, D, H, W) features, (B, H, W) int64, no state change."""
        self._check(x)
        with torch.autocast(device_type=x.device.type, enabled=False):
            idx = self._search(self._flatten(x.detach()))
        return idx.view(x.shape[0], x.shape[2], x.shape[3])

    def distances(self, x: Tensor) -> Tensor:
        """Squared distances of every feature vector to every code.

        Args:
            x: (B, D, H, W) features.

        Returns:
            (B, H, W, K) float32 distances in the quantizer's distance form (fast: computed in
            chunks, returned whole).
        """
        self._check(x)
        with torch.no_grad(), torch.autocast(device_type=x.device.type, enabled=False):
            flat = self._flatten(x)
            cb = self.codebook.detach().to(flat.dtype)
            if self.distance == "reference":
                out = reference_distances(flat, cb)
            else:
                rows = row_chunk(self.num_embeddings, DEFAULT_BLOCK_ELEMENTS)
                parts = [
                    squared_distances(flat[s : s + rows], cb) for s in range(0, len(flat), rows)
                ]
                out = torch.cat(parts)
        return out.view(x.shape[0], x.shape[2], x.shape[3], self.num_embeddings)

    def nearest_k(self, x: Tensor, k: int) -> tuple[Tensor, Tensor]:
        """The ``k`` nearest codes of every feature vector, chunked, sorted nearest first
        (:func:`vqcore.search.ranked_codes`).

        Args:
            x: (B, D, H, W) features.
            k: number of neighbours, 1 <= k <= K.

        Returns:
            ``(distances, indices)``, each (B, H, W, k).
        """
        self._check(x)
        if not 1 <= k <= self.num_embeddings:
            raise ValueError(f"nearest_k: k={k} outside [1, {self.num_embeddings}]")
        with torch.no_grad(), torch.autocast(device_type=x.device.type, enabled=False):
            flat = self._flatten(x)
            vals, idxs = ranked_codes(flat, self.codebook.detach().to(flat.dtype), k)
        shape = (x.shape[0], x.shape[2], x.shape[3], k)
        return vals.view(shape), idxs.view(shape)

    def dead_codes(self, threshold: float = 1e-3) -> Tensor:
        """Boolean (K,) mask of codes whose running usage is below ``threshold`` assignments/step."""
        return self.usage() < threshold

    def usage(self) -> Tensor:
        """(K,) running (EMA) number of assignments per training step for every code."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        return (
            f"num_embeddings={self.num_embeddings}, embedding_dim={self.embedding_dim}, "
            f"commitment_cost={self.commitment_cost}, distance={self.distance!r}"
        )
