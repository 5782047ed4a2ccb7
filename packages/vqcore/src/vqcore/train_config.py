"""Stage-1 configuration with the ``paper`` and ``cpu`` presets."""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from .config import BackboneConfig
from .config_base import SETUPS, ConfigMixin, Setup, milestones_at
from .device import check_precision
from .device_data import SAMPLERS
from .errors import VqcoreError

_INT_FIELDS = (
    "image_size",
    "batch_size",
    "iterations",
    "seed",
    "num_workers",
    "log_every",
    "checkpoint_every",
)
#: The largest seed torch.manual_seed takes (the CLI's --seed bound too).
_MAX_SEED = 2**64 - 1

__all__ = ["PRESETS", "StageOneConfig"]

PRESETS = ("paper", "cpu")


@dataclass(frozen=True)
class StageOneConfig(ConfigMixin):
    """Everything :func:`vqcore.train_dada` needs.

    Args:
        setup: ``rgbd`` (DADA), ``depth`` (DepthVQVAE on simulated depth) or ``rgb`` (RGBVQVAE).
        backbone: model widths; ``None`` -> the paper widths of ``setup``.
        out_dir: run folder; the checkpoint is ``<out_dir>/backbone.pt``.
        rgb_dir: a folder tree of images (ImageNet style works); ``None`` -> procedural textures.
        image_size: training side (256 in the paper), a multiple of 8.
        batch_size: global batch (split across DDP ranks).
        iterations: optimizer steps.
        lr: Adam learning rate.
        lr_milestones: steps where the learning rate is multiplied by ``lr_gamma``.
        lr_gamma: decay factor.
        loss: ``l1`` (the reference RGB+D script) or ``l2`` (the paper; the depth script's MSE).
        lambda_depth: weight of the depth term; with ``lambda_rgb`` the loss is
            ``λ_D·mean_D + λ_I·mean_I``; both ``None`` -> the reference's mean over all channels.
        lambda_rgb: weight of the RGB term (see ``lambda_depth``).
        affine: depth simulator's random affine map (False: the "no affine" ablation).
        depth_source: ``perlin`` or ``grayscale`` (grayscale images as depth, the "no Perlin"
            ablation).
        seed: seeds model init (torch) and data (numpy Generators keyed by seed and step).
        device: ``auto``, ``cpu`` or ``cuda``.
        num_workers: DataLoader worker processes of the host sampler; ``-1`` (the ``paper``
            preset) -> one per available core but one, at most 16, on CUDA; none on the CPU.
        sampler: where samples are made: ``host`` (depthsim's numba/numpy generators, in
            ``num_workers`` DataLoader workers), ``device`` (:mod:`vqcore.procedural` on the
            training device, main process; procedural RGB and Perlin depth only) or ``auto``
            (``device`` on CUDA when possible, else ``host``; on resume, the checkpoint's).
        log_every: steps between callback events with metrics.
        checkpoint_every: steps between checkpoints (one is always written at the end).
        resume: continue from ``<out_dir>/backbone.pt`` when it exists.
        overwrite: allow replacing an existing checkpoint when not resuming.
        precision: ``fp32`` (the reference trains in fp32; the ``paper`` preset; TF32 off on
            CUDA), ``tf32`` (TF32 convolutions and matmuls on CUDA: a speed option; on a CPU the
            same as fp32), ``bf16`` (bf16 autocast on any device: a GPU speed option, slow on a
            CPU without native bf16) or ``auto`` (bf16 on CUDA when ``amp``, fp32 on the CPU: the ``cpu`` preset, and
            what every run did before the option existed).
        amp: bf16 autocast on CUDA under ``precision="auto"`` (ignored otherwise and on CPU).
        channels_last: channels_last memory format on CUDA (ignored on CPU).

    Example:
        >>> cfg = StageOneConfig.preset("cpu", "rgbd", iterations=10)
        >>> cfg.iterations, cfg.backbone.hidden, cfg.image_size
        (10, 64, 64)
    """

    _error = VqcoreError
    _PRESETS = PRESETS
    _PRESET_MESSAGE = "unknown stage-1 preset {name!r} (expected one of {presets})"
    _NESTED: ClassVar[dict[str, type[ConfigMixin]]] = {"backbone": BackboneConfig}

    setup: Setup = "rgbd"
    backbone: BackboneConfig | None = None
    out_dir: Path = Path("runs/dada")
    rgb_dir: Path | None = None
    image_size: int = 256
    batch_size: int = 64
    iterations: int = 100_000
    lr: float = 2e-4
    lr_milestones: tuple[int, ...] = (80_000, 90_000)
    lr_gamma: float = 0.1
    loss: Literal["l1", "l2"] = "l1"
    lambda_depth: float | None = None
    lambda_rgb: float | None = None
    affine: bool = True
    depth_source: Literal["perlin", "grayscale"] = "perlin"
    seed: int = 0
    device: str = "auto"
    num_workers: int = 0
    sampler: Literal["auto", "device", "host"] = "auto"
    log_every: int = 10
    checkpoint_every: int = 1000
    resume: bool = False
    overwrite: bool = False
    precision: Literal["auto", "fp32", "tf32", "bf16"] = "fp32"
    amp: bool = True
    channels_last: bool = True

    def __post_init__(self) -> None:
        def fail(msg: str) -> None:
            raise VqcoreError(f"StageOneConfig: {msg}")

        if self.setup not in SETUPS:
            fail(f"setup must be one of {SETUPS}, got {self.setup!r}")
        if self.backbone is None:
            object.__setattr__(self, "backbone", BackboneConfig.paper(self.setup))
        elif isinstance(self.backbone, dict):
            object.__setattr__(self, "backbone", BackboneConfig.from_dict(self.backbone))
        assert self.backbone is not None
        if self.backbone.setup != self.setup:
            fail(f"backbone setup {self.backbone.setup!r} differs from setup {self.setup!r}")
        object.__setattr__(self, "out_dir", Path(self.out_dir))
        if self.rgb_dir is not None:
            object.__setattr__(self, "rgb_dir", Path(self.rgb_dir))
        object.__setattr__(self, "lr_milestones", tuple(int(m) for m in self.lr_milestones))
        for name in _INT_FIELDS:
            value = getattr(self, name)
            # A str or float passed the checks below and failed mid-training with torch's or
            # numpy's TypeError ("'<' not supported...", "seed must be integer") naming nothing.
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                fail(f"{name} must be an int, got {value!r}")
            object.__setattr__(self, name, int(value))
        if not 0 <= self.seed <= _MAX_SEED:
            # torch.manual_seed takes at most 2**64 - 1 and numpy no negative seed; both
            # refused only after the output folder was made.
            fail(f"seed must be an integer from 0 to {_MAX_SEED}, got {self.seed}")
        if self.image_size < 8 or self.image_size % 8:
            fail(f"image_size must be a positive multiple of 8, got {self.image_size}")
        for name in ("batch_size", "iterations", "log_every", "checkpoint_every"):
            if int(getattr(self, name)) < 1:
                fail(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.num_workers < -1:
            fail(f"num_workers must be >= 0, or -1 for one per core, got {self.num_workers}")
        if self.sampler not in SAMPLERS:
            fail(f"sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        if self.sampler == "device" and (self.rgb_dir is not None or self.depth_source != "perlin"):
            fail(
                "sampler 'device' makes procedural RGB and Perlin depth only (no rgb_dir/grayscale)"
            )
        if self.loss not in ("l1", "l2"):
            fail(f"loss must be 'l1' or 'l2', got {self.loss!r}")
        if (self.lambda_depth is None) != (self.lambda_rgb is None):
            fail("give both lambda_depth and lambda_rgb, or neither")
        if self.lambda_depth is not None and self.setup != "rgbd":
            fail("lambda_depth/lambda_rgb only apply to the rgbd setup")
        if self.depth_source not in ("perlin", "grayscale"):
            fail(f"depth_source must be 'perlin' or 'grayscale', got {self.depth_source!r}")
        if not self.lr > 0:
            fail(f"lr must be positive, got {self.lr}")
        check_precision(self.precision, "StageOneConfig")

    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / "backbone.pt"

    @classmethod
    def paper(cls, setup: Setup = "rgbd", **overrides: Any) -> StageOneConfig:
        """The reference recipe: batch 64, Adam 2e-4, 100k steps, ×0.1 at 80k/90k, 256², paper
        widths; L1 over all channels (RGB+D script) or MSE (depth-only script).

        Milestones are 80 % / 90 % of ``iterations`` (80k / 90k at the default 100k). RGB comes
        from ``rgb_dir`` (the reference: ImageNet train); without it (the default) procedural
        textures, which is not the paper's RGB source.
        """
        iterations = int(overrides.get("iterations") or 100_000)
        base: dict[str, Any] = dict(
            setup=setup,
            backbone=BackboneConfig.paper(setup),
            image_size=256,
            batch_size=64,
            iterations=iterations,
            lr=2e-4,
            lr_milestones=milestones_at(iterations, 0.8, 0.9),
            loss="l2" if setup == "depth" else "l1",
            num_workers=-1,  # host sampler: one worker per core (an image folder needs them)
            sampler="auto",  # procedural data on the GPU, same recipes (vqcore README)
            log_every=50,
            checkpoint_every=1000,
            precision="fp32",  # the reference trains in fp32; bf16 is a speed option
        )
        return cls._with_overrides(base, overrides)

    @classmethod
    def cpu(cls, setup: Setup = "rgbd", **overrides: Any) -> StageOneConfig:
        """A reduced model at 64² that visibly learns in about two minutes on 2 CPU cores.

        Milestones default to 80 % / 90 % of ``iterations`` (after overrides).
        """
        iterations = int(overrides.get("iterations") or 300)
        base: dict[str, Any] = dict(
            setup=setup,
            backbone=BackboneConfig.cpu(setup),
            image_size=64,
            batch_size=8,
            iterations=iterations,
            lr=1e-3,
            lr_milestones=milestones_at(iterations, 0.8, 0.9),
            loss="l2" if setup == "depth" else "l1",
            num_workers=0,
            log_every=10,
            checkpoint_every=100,
            # bf16 on CUDA, fp32 on the CPU, as before the precision option existed.
            precision="auto",
        )
        return cls._with_overrides(base, overrides)
