"""Stage-2 configuration: ``DetectorConfig`` (schedule, runtime, memory and inference defaults)
holding its parts (:mod:`threedsr.config_parts`: model widths, preprocessing, anomalies, loss)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from vqcore import PRECISIONS, SETUPS, ConfigMixin, Setup, milestones_at, renamed_fields

from threedsr.config_parts import AnomalyConfig, LossConfig, ModelConfig, PreprocessConfig
from threedsr.descriptors import DESCRIPTOR_GROUPS
from threedsr.errors import ThreedsrError

__all__ = [
    "SETUPS",
    "AnomalyConfig",
    "DetectorConfig",
    "LossConfig",
    "ModelConfig",
    "PreprocessConfig",
    "Setup",
    "default_smoothing_size",
]

_PARTS: dict[str, type[ConfigMixin]] = {
    "model": ModelConfig,
    "preprocess": PreprocessConfig,
    "anomaly": AnomalyConfig,
    "loss": LossConfig,
}

# Former flat names (format 1 of detector.pt, and the keywords users wrote) -> current names.
# Renamed fields take stage 1's spelling (StageOneConfig: out_dir, image_size, lr_milestones,
# lr_gamma); the rest moved into a part.
FORMER_NAMES: dict[str, str] = {
    "out": "out_dir",
    "size": "image_size",
    "milestones": "lr_milestones",
    "gamma": "lr_gamma",
    **{name: f"preprocess.{name}" for name in PreprocessConfig.field_names()},
    **{name: f"anomaly.{name}" for name in AnomalyConfig.field_names()},
    **{name: f"loss.{name}" for name in LossConfig.field_names()},
}


def default_smoothing_size(setup: str) -> int:
    """Box-filter size of the reference test scripts: 21 for depth-only, 11 otherwise.

    Example:
        >>> default_smoothing_size("depth"), default_smoothing_size("rgbd")
        (21, 11)
    """
    return 21 if setup == "depth" else 11


class _RunFolder(str):
    """``DetectorConfig.out_dir``: a plain ``str`` that can still be called the way the former
    ``out_dir()`` method was (deprecated; use :meth:`DetectorConfig.run_dir`)."""

    __slots__ = ()

    def __call__(self) -> Path:
        warnings.warn(
            "DetectorConfig.out_dir() is deprecated: out_dir is now the field (use run_dir())",
            DeprecationWarning,
            stacklevel=2,
        )
        return Path(self)


@renamed_fields
@dataclass(frozen=True)
class DetectorConfig(ConfigMixin):
    """Everything stage 2 needs. Defaults are the reference code's choices (what produced the
    paper's numbers); the paper's own wording is available through the documented options.

    Former flat names (``size``, ``out``, ``milestones``, ``gamma``, and the fields that moved
    into ``preprocess``/``anomaly``/``loss``, e.g. ``plane``, ``strength_range``,
    ``focal_gamma``) are still accepted by the constructor, :meth:`replace` and as attributes,
    with a DeprecationWarning; :meth:`preset` takes the moved ones as plain overrides (as it
    takes :class:`ModelConfig` fields), and :meth:`from_dict` migrates older dicts silently.

    Args:
        setup: ``rgbd`` | ``depth`` | ``rgb``; must match the stage-1 backbone.
        data_root: dataset root (MVTec 3D-AD layout, Eyecandies or generic; see pcprep).
        category: object class to train on (one detector per class).
        backbone: stage-1 run folder or ``backbone.pt`` written by ``vqcore.train_dada``;
            None = the pretrained backbone of ``setup`` that ships with vqcore
            (:func:`vqcore.load_pretrained`).
        out_dir: run folder; ``<out_dir>/detector.pt`` is written atomically (formerly ``out``).
        model: module widths (:class:`ModelConfig`).
        preprocess: pcprep parameters (:class:`PreprocessConfig`).
        anomaly: augmentation and synthetic anomalies (:class:`AnomalyConfig`).
        loss: the loss terms (:class:`LossConfig`).
        image_size: model input side (384 in the paper); a multiple of 32 (formerly ``size``).
        batch_size, iterations, lr, lr_milestones, lr_gamma: Adam 2e-4, MultiStepLR x0.1 at
            80 % (formerly ``milestones``, ``gamma``).
        memory_weight: weight of the feature-memory map (:mod:`threedsr.memory`) fused with the
            heads' map at inference: 0 = the heads alone (the reference), 1 = the memory alone.
            When > 0, training ends by storing the good scans' encoder features and both maps'
            good-scan statistics in ``detector.pt``.
        memory_size: most feature vectors kept in the memory (a seeded random subset).
        memory_features: what the memory stores: ``encoder`` (the backbone's Encoder-1 features)
            or ``descriptors`` (hand-made surface-curvature and normalised-colour descriptors,
            :mod:`threedsr.descriptors`, at ``descriptor_scales`` pixels).
        descriptor_scales: Gaussian scales (pixels at model resolution) of the descriptors.
        descriptor_groups: which descriptors (:data:`threedsr.descriptors.DESCRIPTOR_GROUPS`):
            ``surface`` curvature, normalised ``colour``, grey ``texture``, and the ``interior``
            distance (where on the object a cell lies); those the setup lacks are skipped.
        descriptor_weights: one weight per group, spread over its channels
            (:class:`threedsr.memory.MemoryFeatures`); None = every channel weighs 1.
        memory_local_k: > 0: each memory distance is divided by its nearest stored cell's local
            scale, that cell's distance to its ``memory_local_k``-th nearest cell of another
            training scan (:mod:`threedsr.knn`): "how far, in units of the normal spread
            there"; 0 = plain distances (detectors written before session 8).
        memory_local_min_scans: with fewer good training scans the local scale is skipped (plain
            distances): its scales need enough scans to be estimated (cable_gland: worse than
            plain at 14 and 28 scans, better from 56; the demo's 40 scans: better).
        smoothing, smoothing_size, gaussian_sigma: the smoothing a :class:`~threedsr.Detector`
            uses unless its own options say otherwise (stored with the detector): ``box`` (code)
            or ``gaussian`` (paper); box side (None = 11 rgbd/rgb, 21 depth); Gaussian sigma (4,
            as DRAEM/DSR's evaluation). Training never reads them.
        device: ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N``.
        seed: seeds every random draw (data, anomalies, init).
        checkpoint_every: write ``detector.pt`` every N steps (and at the end / on Ctrl-C).
        resume: continue from ``<out_dir>/detector.pt`` + ``train_state.pt`` when present.
        cache_dir: pcprep preprocessing cache (outside the dataset); None = in memory only.
        log_every: callback period in steps.
        compile: ``torch.compile`` the trainable modules (CUDA only pays).
        precision: arithmetic of the training forward: ``fp32`` (the reference; the ``paper``
            preset), ``bf16`` (bf16 autocast on any device: a GPU speed option, slow on a CPU
            without native bf16) or ``auto`` (bf16 on CUDA, fp32 on the CPU: the ``cpu`` preset,
            and every run before the option existed). The VQ searches stay fp32 either way.

    Example:
        >>> cfg = DetectorConfig.preset("cpu", setup="depth", iterations=10, unet_base=4)
        >>> cfg.iterations, cfg.model.unet_base, cfg.lr_milestones, cfg.anomaly.rotation_deg
        (10, 4, (8,), 15.0)
    """

    _error = ThreedsrError
    _PRESET_MESSAGE = "unknown detector preset {name!r} (expected 'paper' or 'cpu')"
    _NESTED = _PARTS
    _ALIASES = FORMER_NAMES

    setup: Setup = "rgbd"
    data_root: str | None = None
    category: str | None = None
    backbone: str | None = None
    out_dir: str | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    anomaly: AnomalyConfig = field(default_factory=AnomalyConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    image_size: int = 384
    batch_size: int = 16
    iterations: int = 30_000
    lr: float = 2e-4
    lr_milestones: tuple[int, ...] = (24_000,)
    lr_gamma: float = 0.1
    memory_weight: float = 0.0
    memory_size: int = 40_000
    memory_features: Literal["encoder", "descriptors"] = "encoder"
    descriptor_scales: tuple[float, ...] = (1.0, 2.0, 4.0)
    descriptor_groups: tuple[str, ...] = ("surface", "colour")
    descriptor_weights: tuple[float, ...] | None = None
    memory_local_k: int = 0
    memory_local_min_scans: int = 40
    smoothing: Literal["box", "gaussian"] = "box"
    smoothing_size: int | None = None
    gaussian_sigma: float = 4.0
    device: str = "auto"
    seed: int = 0
    checkpoint_every: int = 1000
    resume: bool = True
    cache_dir: str | None = None
    log_every: int = 10
    compile: bool = False
    precision: Literal["auto", "fp32", "bf16"] = "fp32"

    def __post_init__(self) -> None:
        def fail(msg: str) -> None:
            raise ThreedsrError(f"DetectorConfig: {msg}")

        for name, part in _PARTS.items():
            value = getattr(self, name)
            if isinstance(value, dict):
                object.__setattr__(self, name, part.from_dict(value))
            elif not isinstance(value, part):
                fail(f"{name} must be a {part.__name__}, got {type(value).__name__}")
        if self.setup not in SETUPS:
            fail(f"setup must be one of {SETUPS}, got {self.setup!r}")
        if self.image_size % 32:
            fail(f"image_size must be a multiple of 32, got {self.image_size}")
        if self.batch_size < 1 or self.iterations < 1:
            fail("batch_size and iterations must be positive")
        if not 0.0 <= self.memory_weight <= 1.0:
            fail(f"memory_weight must be in [0, 1], got {self.memory_weight}")
        if self.memory_size < 1:
            fail(f"memory_size must be >= 1, got {self.memory_size}")
        if self.memory_features not in ("encoder", "descriptors"):
            fail(
                f"memory_features must be 'encoder' or 'descriptors', got {self.memory_features!r}"
            )
        if self.memory_local_k < 0:
            fail(f"memory_local_k must be >= 0, got {self.memory_local_k}")
        if self.memory_local_min_scans < 1:
            fail(f"memory_local_min_scans must be >= 1, got {self.memory_local_min_scans}")
        if not self.descriptor_scales or min(self.descriptor_scales) <= 0:
            fail(f"descriptor_scales must be > 0, got {self.descriptor_scales}")
        unknown = set(self.descriptor_groups) - set(DESCRIPTOR_GROUPS)
        if not self.descriptor_groups or unknown:
            fail(
                f"descriptor_groups must be some of {DESCRIPTOR_GROUPS}, got "
                f"{self.descriptor_groups}"
            )
        if self.descriptor_weights is not None and (
            len(self.descriptor_weights) != len(self.descriptor_groups)
            or min(self.descriptor_weights) <= 0
        ):
            fail(
                "descriptor_weights must be one positive number per group of "
                f"{self.descriptor_groups}, got {self.descriptor_weights}"
            )
        if self.precision not in PRECISIONS:
            fail(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.smoothing not in ("box", "gaussian"):
            fail(f"smoothing must be 'box' or 'gaussian', got {self.smoothing!r}")
        if self.out_dir is not None:
            object.__setattr__(self, "out_dir", _RunFolder(self.out_dir))
        object.__setattr__(self, "lr_milestones", tuple(int(m) for m in self.lr_milestones))
        object.__setattr__(
            self, "descriptor_scales", tuple(float(v) for v in self.descriptor_scales)
        )
        object.__setattr__(self, "descriptor_groups", tuple(str(g) for g in self.descriptor_groups))
        if self.descriptor_weights is not None:
            object.__setattr__(
                self, "descriptor_weights", tuple(float(w) for w in self.descriptor_weights)
            )

    @property
    def filter_size(self) -> int:
        """The smoothing kernel side a Detector uses by default."""
        return self.smoothing_size or default_smoothing_size(self.setup)

    @property
    def in_channels(self) -> int:
        return {"rgbd": 4, "depth": 1, "rgb": 3}[self.setup]

    def preprocess_kwargs(self) -> dict[str, Any]:
        """pcprep keywords the detector is trained with (``detector.pt``'s ``preprocess``)."""
        return self.preprocess.kwargs(self.image_size)

    def run_dir(self) -> Path:
        """``out_dir`` as a Path; training needs it."""
        if self.out_dir is None:
            raise ThreedsrError(
                "DetectorConfig: 'out_dir' (the run folder) is required for training"
            )
        return Path(self.out_dir)

    @classmethod
    def paper(cls, setup: Setup = "rgbd", **overrides: Any) -> DetectorConfig:
        """The reference schedule: batch 16, 30k iterations, x0.1 at 24k, 384², spec widths."""
        return cls._build(dict(setup=setup, model=ModelConfig.paper()), overrides)

    @classmethod
    def cpu(cls, setup: Setup = "rgbd", **overrides: Any) -> DetectorConfig:
        """A small CPU run: 256², batch 8, 400 iterations (x0.1 at 80 %), narrow modules with a
        residual SRM, every anomaly drawn in image space, and a memory of hand-made surface,
        colour, texture and interior descriptors (100k cells; distances in units of the local
        normal spread, ``memory_local_k=3``) whose map is the detector's
        (``memory_weight=1``; the heads' map stays available with
        ``Detector.load(..., memory_weight=0)``); depth maps are smoothed with an 11 px box.
        ``rgb`` keeps the 128 px encoder memory fused at 0.7 (no object mask for the
        descriptors). Package README rows 18-26, 32 and 33 list each departure with its measured
        effect."""
        base: dict[str, Any] = dict(
            setup=setup,
            model=ModelConfig.cpu(),
            anomaly=AnomalyConfig(modality_split_prob=0.5, image_anomaly_prob=1.0),
            image_size=256,
            batch_size=8,
            iterations=400,
            lr=1e-3,
            checkpoint_every=200,
            memory_weight=1.0,
            memory_size=100_000,
            memory_features="descriptors",
            # Depth weighs as much as colour and texture together; the interior distance says
            # where on the object a cell lies (docs/bench/threedsr.md, "Descriptor groups").
            descriptor_scales=(1.0, 2.0, 4.0, 8.0),
            descriptor_groups=DESCRIPTOR_GROUPS,
            descriptor_weights=(2.0, 1.0, 1.0, 1.0),
            # A cell's distance in units of the normal spread around its nearest stored cell:
            # a real part's normal variation is uneven (docs/bench/threedsr.md, "Local scale").
            memory_local_k=3,
            # bf16 on CUDA, fp32 on the CPU, as before the precision option existed.
            precision="auto",
        )
        if setup == "depth":
            # The 21 px box of the reference's depth evaluation blurs away the small defects
            # the descriptors find (cable_gland depth: I-AUROC 0.787 at 11 px, 0.721 at 21).
            base.update(smoothing_size=11)
        if setup == "rgb":
            # RGB alone gives no object mask: the colour descriptors then share the bank with the
            # dark support, which a dark stain matches (demo: I-AUROC 0.50 against 0.68 here).
            # RGB keeps session 5's recipe: encoder features fused with the heads at 128 px.
            base.update(
                image_size=128,
                memory_features="encoder",
                memory_weight=0.7,
                memory_size=40_000,
                memory_local_k=0,
            )
        return cls._build(base, overrides)

    @classmethod
    def preset(cls, name: str, setup: Setup = "rgbd", **overrides: Any) -> DetectorConfig:
        """``paper`` or ``cpu`` by name. The fields of the parts (:class:`ModelConfig`,
        :class:`PreprocessConfig`, :class:`AnomalyConfig`, :class:`LossConfig`) are accepted as
        plain overrides too; ``None`` overrides are ignored (so unset CLI flags keep the preset's
        value); when ``lr_milestones`` is not given, the milestone is at 80 % of the run's length
        (:func:`vqcore.milestones_at`, the reference's ``int(0.8 * epochs)``)."""
        return super().preset(name, setup, **overrides)

    @classmethod
    def _build(cls, base: dict[str, Any], overrides: dict[str, Any]) -> DetectorConfig:
        over = cls._resolve(overrides, flat_ok=True)
        anomaly = over.get("anomaly")
        if (
            isinstance(anomaly, dict)
            and anomaly.get("depth_anomaly_prob")
            and "image_anomaly_prob" not in anomaly
        ):
            # The older depth-only option replaces the preset's image-space anomalies.
            anomaly["image_anomaly_prob"] = 0.0
        for name, part in _PARTS.items():
            if isinstance(over.get(name), dict):
                current = base.get(name) or part()
                base[name] = current.replace(**over.pop(name))
        base.update(over)
        if "lr_milestones" not in over:
            # Every preset decays x0.1 at 80 % of its own length, whether or not the length was
            # overridden.
            base["lr_milestones"] = milestones_at(base.get("iterations", cls.iterations))
        cls._check_known(base)
        return cls(**base)
