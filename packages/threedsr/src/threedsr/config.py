"""``DetectorConfig``: which method makes the map (``memory``, ``3dsr`` or ``fused``), the data,
the runtime, and each method's parts: the 3DSR network's (:mod:`threedsr.dsr.config`), the
memory's (:class:`~threedsr.memory.MemoryConfig`) and the preprocessing both share
(:class:`~threedsr.preprocess_config.PreprocessConfig`). The presets are
:mod:`threedsr.config_presets`."""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pcprep
from vqcore import PRECISIONS, SETUPS, ConfigMixin, Setup

from threedsr.config_checks import check_bool, is_finite_real
from threedsr.config_presets import DetectorPresets
from threedsr.dsr.config import AnomalyConfig, LossConfig, ModelConfig
from threedsr.errors import ThreedsrError
from threedsr.memory.config import MemoryConfig
from threedsr.packed import Pack, is_pack
from threedsr.preprocess_config import PreprocessConfig
from threedsr.smoothing import is_filter_size, is_gaussian_sigma

__all__ = [
    "METHODS",
    "METHOD_SUMMARY",
    "SETUPS",
    "AnomalyConfig",
    "DetectorConfig",
    "LossConfig",
    "MemoryConfig",
    "Method",
    "ModelConfig",
    "Setup",
    "default_smoothing_size",
]

#: The methods a detector can use: the descriptor memory alone (no training, minutes on a CPU),
#: the 3DSR network alone (GPU-scale training), or both maps fused.
Method = Literal["memory", "3dsr", "fused"]
METHODS: tuple[str, ...] = ("memory", "3dsr", "fused")

#: What each method is and costs, in one line (the CLI's help and reports use these).
METHOD_SUMMARY = {
    "memory": "descriptor memory: kNN over hand-made surface, colour, texture and interior "
    "descriptors of good scans; nothing is trained (minutes on a CPU)",
    "3dsr": "3DSR network (Zavrtanik et al., WACV 2024): heads trained on a frozen backbone; "
    "GPU-scale training (paper: 30k iterations, hours)",
    "fused": "3DSR network and descriptor memory, the two maps fused after z-scoring on good "
    "scans; costs the 3DSR training",
}


def default_smoothing_size(setup: str) -> int:
    """Box-filter size of the reference test scripts: 21 for depth-only, 11 otherwise.

    Example:
        >>> default_smoothing_size("depth"), default_smoothing_size("rgbd")
        (21, 11)
    """
    return 21 if setup == "depth" else 11


_PARTS: dict[str, type[ConfigMixin]] = {
    "model": ModelConfig,
    "preprocess": PreprocessConfig,
    "anomaly": AnomalyConfig,
    "loss": LossConfig,
    "memory": MemoryConfig,
}


@dataclass(frozen=True)
class DetectorConfig(DetectorPresets):
    """Everything a detector needs. The bare defaults are the 3DSR reference code's choices
    (what produced the paper's numbers) but for ``model.vq_distance``, ``fast`` by default so a
    file written before the field loads as it ran (:meth:`paper` sets ``reference``);
    :meth:`for_memory` (preset ``memory``) is the descriptor memory; :meth:`paper`, :meth:`gpu`
    and :meth:`cpu` are 3DSR schedules.

    Args:
        method: ``memory`` (the descriptor memory alone; nothing is trained), ``3dsr`` (the
            network's map alone) or ``fused`` (both, see ``fusion_weight``).
        setup: ``rgbd`` | ``depth`` | ``rgb``; must match the stage-1 backbone.
        data_root: dataset root (MVTec 3D-AD layout, Eyecandies or generic; see pcprep).
        category: object class (one detector per class).
        backbone: stage-1 run folder or ``backbone.pt`` written by ``vqcore.train_dada``;
            None = the pretrained backbone of ``setup`` that ships with vqcore. The memory
            method reads it only for encoder features (RGB alone).
        out_dir: run folder; ``<out_dir>/detector.pt`` is written atomically.
        model, anomaly, loss: the 3DSR network's widths, training anomalies and loss.
        preprocess: pcprep parameters (:class:`PreprocessConfig`).
        memory: the descriptor memory (:class:`~threedsr.memory.MemoryConfig`).
        image_size: model input side (384 in the paper); a multiple of 32.
        batch_size, iterations, lr, lr_milestones, lr_gamma: the network's schedule: Adam 2e-4,
            MultiStepLR x0.1 at 80 %.
        fusion_weight: ``fused`` only: the memory's weight in the fused map (1 - it: the
            network's).
        smoothing, smoothing_size, gaussian_sigma: the smoothing a :class:`~threedsr.Detector`
            uses unless its own options say otherwise: ``box`` (code) or ``gaussian`` (paper);
            box side (None = 11 rgbd/rgb, 21 depth); Gaussian sigma (4).
        squash: where the memory's and the fused map's logistic goes: ``smoothed`` (after the
            smoothing, so the image score ranks as the smoothed z-score) or ``pixels`` (on each
            pixel, then smoothed: every detector written before the option). Package README,
            row 40. The 3DSR network's softmax map is not affected.
        device: ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N``.
        seed: seeds every random draw (data, anomalies, init, the memory's subset).
        checkpoint_every: write ``detector.pt`` every N steps (and at the end / on Ctrl-C).
        resume: continue from ``<out_dir>/train_state.pt`` (+ ``detector.pt``) when present.
        cache_dir: pcprep preprocessing cache (outside the dataset); None = in memory only.
        log_every: callback period in steps.
        compile: ``torch.compile`` the trainable modules (CUDA only pays).
        precision: arithmetic of the network's training: ``fp32`` (the reference; on CUDA with
            TF32 off), ``tf32`` (TF32 convolutions and matmuls on CUDA; fp32 on a CPU), ``bf16``
            or ``auto`` (bf16 on CUDA, fp32 on the CPU, TF32 as PyTorch's defaults). The VQ
            searches stay fp32 (see :func:`vqcore.precision_scope`).

    Example:
        >>> DetectorConfig.preset("memory", "rgbd").method, DetectorConfig().memory.local_k
        ('memory', 3)
        >>> cfg = DetectorConfig.preset("cpu", setup="depth", iterations=10, unet_base=4)
        >>> cfg.method, cfg.iterations, cfg.model.unet_base, cfg.lr_milestones
        ('3dsr', 10, 4, (8,))
    """

    _error = ThreedsrError
    _NESTED = _PARTS

    method: Method = "3dsr"
    setup: Setup = "rgbd"
    data_root: str | None = None
    category: str | None = None
    backbone: str | None = None
    out_dir: str | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    anomaly: AnomalyConfig = field(default_factory=AnomalyConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    image_size: int = 384
    batch_size: int = 16
    iterations: int = 30_000
    lr: float = 2e-4
    lr_milestones: tuple[int, ...] = (24_000,)
    lr_gamma: float = 0.1
    fusion_weight: float = 0.7
    smoothing: Literal["box", "gaussian"] = "box"
    smoothing_size: int | None = None
    gaussian_sigma: float = 4.0
    squash: Literal["smoothed", "pixels"] = "smoothed"
    device: str = "auto"
    seed: int = 0
    checkpoint_every: int = 1000
    resume: bool = True
    cache_dir: str | None = None
    log_every: int = 10
    compile: bool = False
    precision: Literal["auto", "fp32", "tf32", "bf16"] = "fp32"

    def __post_init__(self) -> None:
        def fail(msg: str) -> None:
            raise ThreedsrError(f"DetectorConfig: {msg}")

        for name, part in _PARTS.items():
            value = getattr(self, name)
            if isinstance(value, dict):
                object.__setattr__(self, name, part.from_dict(value))
            elif not isinstance(value, part):
                fail(f"{name} must be a {part.__name__}, got {type(value).__name__}")
        for name in (
            "image_size",
            "batch_size",
            "iterations",
            "checkpoint_every",
            "log_every",
            "seed",
        ):
            value = getattr(self, name)
            # A str from a notebook's input() or a float from arithmetic fails later with an
            # unrelated TypeError (or trains on a float image size).
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                fail(f"{name} must be an int, got {value!r}")
            object.__setattr__(self, name, int(value))
        if not 0 <= self.seed <= 2**64 - 1:
            # torch.manual_seed's range (the CLI's --seed's): numpy and torch refused the seed
            # only inside training, in messages that name no field.
            fail(f"seed must be an integer from 0 to {2**64 - 1}, got {self.seed}")
        if self.method not in METHODS:
            fail(f"method must be one of {METHODS}, got {self.method!r}")
        if self.setup not in SETUPS:
            fail(f"setup must be one of {SETUPS}, got {self.setup!r}")
        if self.image_size % 32 or self.image_size < 64:
            fail(f"image_size must be a multiple of 32 and at least 64, got {self.image_size}")
        for name in ("batch_size", "iterations", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                fail(f"{name} must be >= 1, got {getattr(self, name)}")
        # Unchecked, a str reached a comparison (TypeError naming no field), and a negative or
        # NaN lr was refused only by Adam inside training, or trained NaN weights.
        for name in ("lr", "lr_gamma", "fusion_weight"):
            value = getattr(self, name)
            if not is_finite_real(value):
                fail(f"{name} must be a finite number, got {value!r}")
            object.__setattr__(self, name, float(value))
        if self.lr <= 0:
            fail(f"lr must be > 0, got {self.lr}")
        if self.lr_gamma <= 0:
            fail(f"lr_gamma must be > 0, got {self.lr_gamma}")
        if not 0.0 < self.fusion_weight < 1.0:
            fail(f"fusion_weight must be in (0, 1), got {self.fusion_weight}")
        for name in ("resume", "compile"):
            check_bool("DetectorConfig", name, getattr(self, name))  # "no" turned it on
        if self.precision not in PRECISIONS:
            fail(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.smoothing not in ("box", "gaussian"):
            fail(f"smoothing must be 'box' or 'gaussian', got {self.smoothing!r}")
        size = self.smoothing_size
        if size is not None and not is_filter_size(size):
            fail(f"smoothing_size must be None or a positive odd int, got {size!r}")
        if self.squash not in ("smoothed", "pixels"):
            fail(f"squash must be 'smoothed' or 'pixels', got {self.squash!r}")
        if not is_gaussian_sigma(self.gaussian_sigma):
            fail(f"gaussian_sigma must be positive and finite, got {self.gaussian_sigma!r}")
        milestones = self.lr_milestones
        if (
            isinstance(milestones, (str, bytes))
            or not isinstance(milestones, (tuple, list))
            or any(
                isinstance(m, bool) or not isinstance(m, numbers.Integral) or m < 0
                for m in milestones
            )
        ):
            # int() truncated 1.5 and took "80"; a bare int raised "not iterable".
            fail(f"lr_milestones must be a tuple of steps >= 0, got {milestones!r}")
        object.__setattr__(self, "lr_milestones", tuple(int(m) for m in milestones))

    @property
    def uses_network(self) -> bool:
        """The map reads the 3DSR network (``3dsr`` and ``fused``): its heads are trained."""
        return self.method != "memory"

    @property
    def uses_memory(self) -> bool:
        return self.method != "3dsr"

    @property
    def memory_weight(self) -> float:
        """The memory's weight in the map: 1 (memory), 0 (3dsr), ``fusion_weight`` (fused)."""
        return {"memory": 1.0, "3dsr": 0.0}.get(self.method, self.fusion_weight)

    @property
    def filter_size(self) -> int:
        """The smoothing kernel side a Detector uses by default."""
        return self.smoothing_size or default_smoothing_size(self.setup)

    @property
    def in_channels(self) -> int:
        return {"rgbd": 4, "depth": 1, "rgb": 3}[self.setup]

    def preprocess_kwargs(self) -> dict[str, Any]:
        """pcprep keywords the detector is trained with (``detector.pt``'s ``preprocess``), with
        the defaults of the dataset layout under ``data_root`` (a folder, or the folder a pack
        was made from)."""
        layout = None
        if is_pack(self.data_root):
            layout = Pack(self.data_root).layout  # the layout of the folder it was packed from
        elif self.data_root is not None and Path(self.data_root).is_dir():
            try:
                layout = pcprep.detect_layout(self.data_root)
            except (pcprep.PcprepError, OSError):
                layout = None  # unreadable: the reader reports it, naming the folder
        return self.preprocess.kwargs(self.image_size, layout)

    def run_dir(self) -> Path:
        """``out_dir`` as a Path; training needs it."""
        if self.out_dir is None:
            raise ThreedsrError(
                "DetectorConfig: 'out_dir' (the run folder) is required for training"
            )
        return Path(self.out_dir)
