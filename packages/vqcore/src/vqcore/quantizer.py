"""Vector quantizers: EMA codebook (what the 3DSR code trains) and loss-based (paper Eq. 1).

Both search the nearest code by squared L2 with a chunked matmul,
``||x||^2 - 2 x.e + ||e||^2``, so memory stays at ``chunk x K`` (never ``N x K x D``), or with
``distance="reference"`` by the authors' own expression (:func:`vqcore.search.reference_distances`),
and both pass gradients with the straight-through estimator. The search always runs in float32 (or float64 for
float64 inputs) with autocast disabled: a bf16 argmin picks wrong codes.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.distributed as dist
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

__all__ = [
    "VQOutput",
    "VectorQuantizer",
    "VectorQuantizerEMA",
    "nearest_codes",
    "squared_distances",
]


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


def _distributed_world() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


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


class VectorQuantizerEMA(_QuantizerBase):
    """Vector quantizer whose codebook follows an exponential moving average of its assignments.

    The reference (zalando pytorch-vq-vae, used by DSR/3DSR; spec §1.4): cluster-size EMA with
    Laplace smoothing ``N_k <- (N_k + eps) / (n + K eps) n``, weight-sum EMA ``m_k``, codebook
    ``e_k = m_k / N_k``; the loss is the commitment term only. Updates happen in training mode
    only; under ``torch.distributed`` the per-code counts and sums are all-reduced first, so every
    rank keeps the same codebook and the update equals a single-process one on the global batch.

    Args:
        num_embeddings: codebook size K.
        embedding_dim: code dimension D.
        commitment_cost: weight of ``MSE(x, sg[q])``.
        decay: EMA decay.
        eps: Laplace smoothing constant.
        restart_dead_codes: re-seed codes whose smoothed cluster size falls below
            ``restart_threshold`` with random inputs of the current batch (off in the reference).
        restart_threshold: see ``restart_dead_codes``.
        distance: nearest-code distance form, ``"fast"`` or ``"reference"`` (see
            :func:`vqcore.search.nearest_codes`).
        device: factory kwarg for the buffers.
        dtype: factory kwarg for the buffers.

    Shape:
        - input: (B, D, H, W)
        - output: ``VQOutput`` with quantized (B, D, H, W), indices (B, H, W)

    Example:
        >>> _ = torch.manual_seed(0)
        >>> vq = VectorQuantizerEMA(16, 4)
        >>> out = vq(torch.randn(2, 4, 3, 3))
        >>> out.quantized.shape, out.indices.shape
        (torch.Size([2, 4, 3, 3]), torch.Size([2, 3, 3]))
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        *,
        commitment_cost: float = 0.25,
        decay: float = 0.99,
        eps: float = 1e-5,
        restart_dead_codes: bool = False,
        restart_threshold: float = 1e-2,
        distance: str = "fast",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.set_distance(distance)
        if num_embeddings < 1 or embedding_dim < 1:
            raise ValueError("num_embeddings and embedding_dim must be positive")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        factory = {"device": device, "dtype": dtype}
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.commitment_cost = commitment_cost
        self.decay = decay
        self.eps = eps
        self.restart_dead_codes = restart_dead_codes
        self.restart_threshold = restart_threshold
        # Buffers, not parameters: the codebook is never touched by the optimizer.
        self.register_buffer("embedding", torch.empty(num_embeddings, embedding_dim, **factory))
        self.register_buffer("ema_weight", torch.empty(num_embeddings, embedding_dim, **factory))
        self.register_buffer("ema_cluster_size", torch.zeros(num_embeddings, **factory))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """N(0, 1) codebook and EMA weight, zero cluster sizes (the reference init)."""
        with torch.no_grad():
            self.embedding.normal_()
            self.ema_weight.normal_()
            self.ema_cluster_size.zero_()

    @property
    def codebook(self) -> Tensor:
        return self.embedding

    def usage(self) -> Tensor:
        return self.ema_cluster_size

    def _loss(self, xf: Tensor, q: Tensor) -> Tensor:
        return self.commitment_cost * F.mse_loss(xf, q.detach())

    def _update(self, flat: Tensor, idx: Tensor) -> None:
        self._ema_update(flat, idx)

    @torch.no_grad()
    def _ema_update(self, flat: Tensor, idx: Tensor) -> None:
        k = self.num_embeddings
        buf_dtype = self.ema_weight.dtype
        counts = torch.bincount(idx, minlength=k).to(buf_dtype)
        sums = torch.zeros(k, self.embedding_dim, dtype=buf_dtype, device=flat.device)
        sums.index_add_(0, idx, flat.to(buf_dtype))
        world = _distributed_world()
        if world > 1:
            dist.all_reduce(counts)
            dist.all_reduce(sums)
        self.ema_cluster_size.mul_(self.decay).add_(counts, alpha=1.0 - self.decay)
        n = self.ema_cluster_size.sum()
        self.ema_cluster_size.copy_((self.ema_cluster_size + self.eps) / (n + k * self.eps) * n)
        self.ema_weight.mul_(self.decay).add_(sums, alpha=1.0 - self.decay)
        self.embedding.copy_(self.ema_weight / self.ema_cluster_size.unsqueeze(1))
        if self.restart_dead_codes:
            self._restart(flat, world)

    @torch.no_grad()
    def _restart(self, flat: Tensor, world: int) -> None:
        dead = torch.nonzero(self.ema_cluster_size < self.restart_threshold).flatten()
        if not dead.numel():  # same on every rank: the statistics were all-reduced
            return
        # Rows are drawn from the *global* batch (ranks hold equal, ordered slices of it), so a
        # DDP run restarts the same codes with the same vectors as a single-process run.
        local_rows = flat.shape[0]
        pick = torch.randint(0, local_rows * world, (dead.numel(),), device=flat.device)
        if world > 1:
            owner, row = pick // local_rows, pick % local_rows
            mine = owner == dist.get_rank()
            fresh = torch.zeros(
                dead.numel(), self.embedding_dim, dtype=flat.dtype, device=flat.device
            )
            fresh[mine] = flat[row[mine]]
            dist.all_reduce(fresh)
        else:
            fresh = flat[pick]
        fresh = fresh.to(self.embedding.dtype)
        # A restarted code starts with the smallest live mass: if no input chooses it during the
        # next step it is dead again and moves to another input (codes stay on the data).
        mass = self.restart_threshold
        self.embedding[dead] = fresh
        self.ema_weight[dead] = fresh * mass
        self.ema_cluster_size[dead] = mass

    def extra_repr(self) -> str:
        return super().extra_repr() + f", decay={self.decay}, eps={self.eps}"


class VectorQuantizer(_QuantizerBase):
    """Loss-based vector quantizer (paper Eq. 1): ``L2(sg[f], q) + beta * L2(f, sg[q])``.

    The codebook is an ``nn.Parameter`` trained by the optimizer; the interface matches
    :class:`VectorQuantizerEMA`. A running usage EMA (decay ``usage_decay``) feeds the dead-code
    statistics.

    Args:
        num_embeddings: codebook size K.
        embedding_dim: code dimension D.
        commitment_cost: beta (lambda_K in the paper).
        usage_decay: decay of the usage statistics.
        distance: nearest-code distance form, ``"fast"`` or ``"reference"``.
        device: factory kwarg.
        dtype: factory kwarg.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> vq = VectorQuantizer(8, 2)
        >>> out = vq(torch.randn(1, 2, 2, 2))
        >>> bool(out.loss > 0), out.indices.shape
        (True, torch.Size([1, 2, 2]))
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        *,
        commitment_cost: float = 0.25,
        usage_decay: float = 0.99,
        distance: str = "fast",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.set_distance(distance)
        factory = {"device": device, "dtype": dtype}
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.commitment_cost = commitment_cost
        self.usage_decay = usage_decay
        self.embedding = nn.Parameter(torch.empty(num_embeddings, embedding_dim, **factory))
        self.register_buffer("usage_ema", torch.zeros(num_embeddings, **factory))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """U(-1/K, 1/K) codebook (the reference's loss-based quantizer)."""
        bound = 1.0 / self.num_embeddings
        with torch.no_grad():
            self.embedding.uniform_(-bound, bound)
            self.usage_ema.zero_()

    @property
    def codebook(self) -> Tensor:
        return self.embedding

    def usage(self) -> Tensor:
        return self.usage_ema

    def _loss(self, xf: Tensor, q: Tensor) -> Tensor:
        return F.mse_loss(q, xf.detach()) + self.commitment_cost * F.mse_loss(xf, q.detach())

    @torch.no_grad()
    def _update(self, flat: Tensor, idx: Tensor) -> None:
        counts = torch.bincount(idx, minlength=self.num_embeddings).to(self.usage_ema.dtype)
        if _distributed_world() > 1:
            dist.all_reduce(counts)
        self.usage_ema.mul_(self.usage_decay).add_(counts, alpha=1.0 - self.usage_decay)
