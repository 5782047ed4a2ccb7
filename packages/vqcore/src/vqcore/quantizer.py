"""Vector quantizers: EMA codebook (what the 3DSR code trains) and loss-based (paper Eq. 1).

Both subclass :class:`vqcore.quantizer_base._QuantizerBase`, which does the nearest-code search,
the straight-through forward, lookup and distances; what differs lives here: the codebook's
storage, its loss and its training-mode update (all-reduced under ``torch.distributed``).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from .quantizer_base import _QuantizerBase

__all__ = ["VectorQuantizer", "VectorQuantizerEMA"]


def _distributed_world() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


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
