"""Backbone configuration (widths, codebooks, setup) with the paper and CPU presets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from .config_base import SETUPS, ConfigMixin, Setup
from .errors import VqcoreError
from .search import DISTANCES

__all__ = ["SETUPS", "BackboneConfig", "Setup"]


@dataclass(frozen=True)
class BackboneConfig(ConfigMixin):
    """Widths and codebooks of a two-level discrete autoencoder.

    Args:
        setup: ``"rgbd"`` (grouped DADA, 4 channels [D, R, G, B]), ``"depth"`` (plain VQ-VAE-2 on
            1 channel) or ``"rgb"`` (plain VQ-VAE-2 on 3 channels, DSR's setting).
        hidden: encoder/decoder width (256 in the paper).
        res_hidden: hidden width of residual blocks (128).
        num_res_layers: residual blocks per stack (2).
        num_embeddings: codes per codebook K (2048).
        embedding_dim: code dimension D (256).
        commitment_cost: commitment weight (0.25).
        decay: EMA decay (0.99).
        eps: EMA Laplace smoothing (1e-5).
        quantizer: ``"ema"`` (reference) or ``"loss"`` (paper Eq. 1).
        restart_dead_codes: re-seed dead EMA codes from the batch (off in the reference).
        init_std: std of the N(0, std) conv-weight init (spec §1.6); ``None`` keeps PyTorch's
            default (Kaiming-uniform) init.
        vq_distance: distance form of the quantizers' nearest-code search: ``"reference"`` (the
            authors' ``x² + e² - 2xe``, whole; the ``paper`` preset) or ``"fast"`` (row blocks,
            one fused ``addmm``; the default, so a checkpoint written before the option loads
            as it ran). The two differ only on near-tie codes (:func:`vqcore.nearest_codes`).

    Example:
        >>> BackboneConfig.paper("rgbd").num_embeddings, BackboneConfig.paper().vq_distance
        (2048, 'reference')
        >>> BackboneConfig.from_dict(BackboneConfig.cpu("depth").to_dict()) == BackboneConfig.cpu("depth")
        True
    """

    _error = VqcoreError
    _PRESET_MESSAGE = "unknown backbone preset {name!r} (expected 'paper' or 'cpu')"
    # None is a meaningful override here (init_std=None: PyTorch's default init).
    _PRESET_DROPS_NONE = False

    setup: Setup = "rgbd"
    hidden: int = 256
    res_hidden: int = 128
    num_res_layers: int = 2
    num_embeddings: int = 2048
    embedding_dim: int = 256
    commitment_cost: float = 0.25
    decay: float = 0.99
    eps: float = 1e-5
    quantizer: Literal["ema", "loss"] = "ema"
    restart_dead_codes: bool = False
    init_std: float | None = 0.02
    vq_distance: Literal["fast", "reference"] = "fast"

    def __post_init__(self) -> None:
        if self.setup not in SETUPS:
            raise VqcoreError(f"BackboneConfig: setup must be one of {SETUPS}, got {self.setup!r}")
        if self.quantizer not in ("ema", "loss"):
            raise VqcoreError(
                f"BackboneConfig: quantizer must be 'ema' or 'loss', got {self.quantizer!r}"
            )
        if self.vq_distance not in DISTANCES:
            raise VqcoreError(
                f"BackboneConfig: vq_distance must be one of {DISTANCES}, got {self.vq_distance!r}"
            )
        for name in ("hidden", "res_hidden", "num_res_layers", "num_embeddings", "embedding_dim"):
            if int(getattr(self, name)) < 1:
                raise VqcoreError(
                    f"BackboneConfig: {name} must be positive, got {getattr(self, name)}"
                )
        # The grouped DADA halves hidden three times (input convs -> hidden/4, output -> hidden/8
        # per stream) and splits every width into two streams.
        if self.setup == "rgbd":
            if self.hidden % 16 or self.res_hidden % 2 or self.embedding_dim % 2:
                raise VqcoreError(
                    "BackboneConfig: rgbd needs hidden % 16 == 0 and even res_hidden and "
                    f"embedding_dim, got hidden={self.hidden}, res_hidden={self.res_hidden}, "
                    f"embedding_dim={self.embedding_dim}"
                )
        elif self.hidden % 2:
            raise VqcoreError(f"BackboneConfig: hidden must be even, got {self.hidden}")

    @property
    def in_channels(self) -> int:
        """Channels of the input/output tensor: 4 (rgbd), 1 (depth), 3 (rgb)."""
        return {"rgbd": 4, "depth": 1, "rgb": 3}[self.setup]

    @classmethod
    def paper(cls, setup: Setup = "rgbd", **overrides: Any) -> BackboneConfig:
        """The paper/reference widths: 256 / 128 / 2 blocks / 2048 x 256 codes, and the
        reference's distance expression in the VQ search."""
        return cls(setup=setup, **{"vq_distance": "reference", **overrides})

    @classmethod
    def cpu(cls, setup: Setup = "rgbd", **overrides: Any) -> BackboneConfig:
        """A reduced-width model that trains in minutes on 2 CPU cores (64 / 32 / 2 / 512 x 64).

        Two deliberate departures from the reference, both because a CPU run lasts a few hundred
        steps: dead-code restart is on (with the reference init every code but one is dead after
        the first EMA step and drifts back only after ~1k steps) and the convs keep PyTorch's
        default init (N(0, 0.02) shrinks the signal so much that all positions start on one code).
        """
        base: dict[str, Any] = dict(
            hidden=64,
            res_hidden=32,
            num_res_layers=2,
            num_embeddings=512,
            embedding_dim=64,
            restart_dead_codes=True,
            init_std=None,
        )
        base.update(overrides)
        return cls(setup=setup, **base)
