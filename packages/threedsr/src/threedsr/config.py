"""Detector configuration: model widths (`ModelConfig`) and stage-2 training (`DetectorConfig`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from vqcore import PRECISIONS

from threedsr.descriptors import DESCRIPTOR_GROUPS
from threedsr.errors import ThreedsrError

__all__ = ["SETUPS", "DetectorConfig", "ModelConfig", "default_smoothing_size"]

SETUPS: tuple[str, ...] = ("rgbd", "depth", "rgb")
Setup = Literal["rgbd", "depth", "rgb"]


def default_smoothing_size(setup: str) -> int:
    """Box-filter size of the reference test scripts: 21 for depth-only, 11 otherwise.

    Example:
        >>> default_smoothing_size("depth"), default_smoothing_size("rgbd")
        (21, 11)
    """
    return 21 if setup == "depth" else 11


@dataclass(frozen=True)
class ModelConfig:
    """Widths of the four trainable stage-2 modules. ``None`` means "derived from the backbone"
    the way the reference derives it (SRM base = D/2, object decoder width = 2D, decoder hidden and
    residual widths = the backbone's).

    Example:
        >>> ModelConfig.paper().unet_base, ModelConfig.cpu().srm_base
        (32, 16)
    """

    srm_base: int | None = None
    objdec_width: int | None = None
    objdec_bottleneck: int = 64
    objdec_hidden: int | None = None
    objdec_res_hidden: int | None = None
    objdec_res_layers: int = 2
    # Skip path of the object decoder's residual blocks. "relu": relu(x) + block(x), what the
    # reference computes (its block opens with nn.ReLU(inplace=True), which overwrites x before
    # the addition); "identity": x + block(x), the textbook form threedsr used before issue 13
    # (and the one a detector.pt without this field was trained with, see checkpoint.py).
    objdec_res_skip: Literal["relu", "identity"] = "relu"
    unet_base: int = 32
    # Reference init: N(0, 0.02) conv weights in the object decoder and UNet. At the narrow cpu
    # widths that std makes the object decoder's output input-independent at init (|dy|/|y| ~ 5e-5
    # vs 2e-2 with PyTorch's fan-in init), so in a few hundred steps it only learns the mean image
    # and depth-only defects are missed. None = PyTorch's default (fan-in scaled) init.
    init_std: float | None = 0.02
    # "reference": the reference's ImageReconstructionNetwork trained from scratch (the objdec_*
    # widths apply). "general_copy": a trainable copy of the backbone's general decoder, weights
    # included (see GeneralDecoderCopy); the objdec_* widths are then unused.
    object_decoder: Literal["reference", "general_copy"] = "reference"
    # True: subspace restriction as identity + learned correction (see SubspaceRestriction).
    srm_residual: bool = False
    # Pooling levels of the subspace restriction (2 = the reference; see SubspaceRestriction).
    srm_levels: int = 2
    # What the anomaly UNet compares the object decoder's output with: "general" = the
    # backbone's general reconstruction (the reference), "input" = the input image itself. A
    # narrow CPU backbone reconstructs depth too coarsely (MAE ~0.03 of the [0.1, 0.9] range) for
    # a small dent to survive in its general reconstruction; the input keeps it.
    unet_input: Literal["general", "input"] = "general"

    def __post_init__(self) -> None:
        if self.objdec_res_skip not in ("relu", "identity"):
            raise ThreedsrError(
                "ModelConfig: objdec_res_skip must be 'relu' or 'identity', got "
                f"{self.objdec_res_skip!r}"
            )
        if self.unet_input not in ("general", "input"):
            raise ThreedsrError(
                f"ModelConfig: unet_input must be 'general' or 'input', got {self.unet_input!r}"
            )
        if self.object_decoder not in ("reference", "general_copy"):
            raise ThreedsrError(
                "ModelConfig: object_decoder must be 'reference' or 'general_copy', got "
                f"{self.object_decoder!r}"
            )

    @classmethod
    def paper(cls, **overrides: Any) -> ModelConfig:
        """Spec widths (≈55 M trainable parameters with the paper backbone)."""
        return cls(**overrides)

    @classmethod
    def cpu(cls, **overrides: Any) -> ModelConfig:
        """Narrow modules, a 1-level SRM and a copy of the general decoder as the object decoder:
        a class trains in minutes on 2 CPU cores."""
        base: dict[str, Any] = dict(
            srm_base=16,
            objdec_width=16,
            objdec_bottleneck=16,
            objdec_hidden=32,
            objdec_res_hidden=16,
            objdec_res_layers=1,
            # Unchanged from before issue 13 so no measured cpu figure moves (only used when
            # object_decoder="reference" is chosen over the preset's general_copy).
            objdec_res_skip="identity",
            unet_base=8,
            init_std=None,
            # Departures measured to matter at CPU budgets (package README, rows 20-21).
            object_decoder="general_copy",
            srm_levels=1,
            srm_residual=True,
        )
        base.update(overrides)
        return cls(**base)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        return cls(**_known(cls, data, "ModelConfig"))


def _known(cls: type, data: dict[str, Any], what: str) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ThreedsrError(f"{what}: unknown fields {unknown}")
    return dict(data)


@dataclass(frozen=True)
class DetectorConfig:
    """Everything stage 2 needs. Defaults are the reference code's choices (what produced the
    paper's numbers); the paper's own wording is available through the documented options.

    Args:
        setup: ``rgbd`` | ``depth`` | ``rgb``; must match the stage-1 backbone.
        data_root: dataset root (MVTec 3D-AD layout, Eyecandies or generic; see pcprep).
        category: object class to train on (one detector per class).
        backbone: stage-1 run folder or ``backbone.pt`` written by ``vqcore.train_dada``;
            None = the pretrained backbone of ``setup`` that ships with vqcore
            (:func:`vqcore.load_pretrained`).
        out: run folder; ``<out>/detector.pt`` is written atomically.
        model: module widths (:class:`ModelConfig`).
        size: model input side (384 in the paper); a multiple of 32.
        batch_size, iterations, lr, milestones, gamma: Adam 2e-4, MultiStepLR x0.1 at 80 %.
        strength_range: U(lo, hi) anomaly strength per sample and level (0.1, 1.0).
        exclude_nearest: fraction of nearest codes never used as replacement (0.05).
        shuffle_prob: per-batch probability of patch-shuffle replacement (0.5).
        modality_split_prob: rgbd only: probability that a sample's feature anomaly is confined
            to the depth or the RGB half of the codes (0 = the reference; see
            :class:`~threedsr.generator.FeatureAnomalyGenerator`).
        depth_anomaly_prob: rgbd/depth only: probability that a sample with an anomaly mask gets
            an image-space depth deformation (a dent or a bump under the mask, through the real
            encoder) instead of feature-space code replacement (0 = the reference).
        depth_anomaly_amplitude: U(lo, hi) magnitude of that deformation, in normalised depth
            units (the foreground spans [0.1, 0.9]); the sign is random.
        image_anomaly_prob: all setups: probability that a sample with an anomaly mask gets its
            anomaly drawn in image space (depth dent/bump and/or a procedural texture painted
            into RGB, see :func:`threedsr.train.image_space_anomalies`) instead of feature-space
            code replacement (0 = the reference). Excludes ``depth_anomaly_prob``.
        paint_opacity: U(lo, hi) opacity of the painted texture.
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
        mask_threshold: |Perlin| threshold range of the anomaly mask (0.4, 0.8).
        zero_mask_prob: probability that a sample gets no anomaly (0.5).
        rotation_deg: ±angle of the rotation augmentation (15).
        rotate_mask_with_image: rotate the anomaly mask with the image (True); False = reference
            parity (mask built in the unrotated frame, image rotated afterwards).
        restrict_to_foreground: anomalies only on foreground ∩ valid (True, as the reference).
        feature_loss: ``mse`` (code) or ``l1`` (paper).
        mask_l1: add the L1 term on the softmax mask (True, code).
        image_loss_weight: weight of the object-decoder MSE (10, code).
        focal_gamma: focal loss gamma (2).
        smoothing: ``box`` (code) or ``gaussian`` (paper) for maps and scores.
        smoothing_size: kernel side; None = 11 (rgbd/rgb) / 21 (depth).
        gaussian_sigma: sigma of the Gaussian option (4, as DRAEM/DSR's evaluation).
        plane, fg_threshold, fill_iterations: pcprep preprocessing parameters.
        device: ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N``.
        seed: seeds every random draw (data, anomalies, init).
        checkpoint_every: write ``detector.pt`` every N steps (and at the end / on Ctrl-C).
        resume: continue from ``<out>/detector.pt`` + ``train_state.pt`` when present.
        cache_dir: pcprep preprocessing cache (outside the dataset); None = in memory only.
        log_every: callback period in steps.
        compile: ``torch.compile`` the trainable modules (CUDA only pays).
        precision: arithmetic of the training forward: ``fp32`` (the reference; the ``paper``
            preset), ``bf16`` (bf16 autocast on any device: a GPU speed option, slow on a CPU
            without native bf16) or ``auto`` (bf16 on CUDA, fp32 on the CPU: the ``cpu`` preset,
            and every run before the option existed). The VQ searches stay fp32 either way.

    Example:
        >>> cfg = DetectorConfig.preset("cpu", setup="depth", iterations=10, unet_base=4)
        >>> cfg.iterations, cfg.model.unet_base, cfg.milestones
        (10, 4, (8,))
    """

    setup: Setup = "rgbd"
    data_root: str | None = None
    category: str | None = None
    backbone: str | None = None
    out: str | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    size: int = 384
    batch_size: int = 16
    iterations: int = 30_000
    lr: float = 2e-4
    milestones: tuple[int, ...] = (24_000,)
    gamma: float = 0.1
    strength_range: tuple[float, float] = (0.1, 1.0)
    exclude_nearest: float = 0.05
    shuffle_prob: float = 0.5
    modality_split_prob: float = 0.0
    depth_anomaly_prob: float = 0.0
    depth_anomaly_amplitude: tuple[float, float] = (0.02, 0.25)
    image_anomaly_prob: float = 0.0
    paint_opacity: tuple[float, float] = (0.3, 1.0)
    memory_weight: float = 0.0
    memory_size: int = 40_000
    memory_features: Literal["encoder", "descriptors"] = "encoder"
    descriptor_scales: tuple[float, ...] = (1.0, 2.0, 4.0)
    descriptor_groups: tuple[str, ...] = ("surface", "colour")
    descriptor_weights: tuple[float, ...] | None = None
    mask_threshold: tuple[float, float] = (0.4, 0.8)
    zero_mask_prob: float = 0.5
    rotation_deg: float = 15.0
    rotate_mask_with_image: bool = True
    restrict_to_foreground: bool = True
    feature_loss: Literal["mse", "l1"] = "mse"
    mask_l1: bool = True
    image_loss_weight: float = 10.0
    focal_gamma: float = 2.0
    smoothing: Literal["box", "gaussian"] = "box"
    smoothing_size: int | None = None
    gaussian_sigma: float = 4.0
    plane: str = "robust"
    fg_threshold: float = 0.005
    fill_iterations: int = 2
    device: str = "auto"
    seed: int = 0
    checkpoint_every: int = 1000
    resume: bool = True
    cache_dir: str | None = None
    log_every: int = 10
    compile: bool = False
    precision: Literal["auto", "fp32", "bf16"] = "fp32"

    def __post_init__(self) -> None:
        if self.setup not in SETUPS:
            raise ThreedsrError(
                f"DetectorConfig: setup must be one of {SETUPS}, got {self.setup!r}"
            )
        if self.size % 32:
            raise ThreedsrError(f"DetectorConfig: size must be a multiple of 32, got {self.size}")
        if self.batch_size < 1 or self.iterations < 1:
            raise ThreedsrError("DetectorConfig: batch_size and iterations must be positive")
        lo, hi = self.strength_range
        if not 0.0 <= lo <= hi <= 1.0:
            raise ThreedsrError(
                f"DetectorConfig: strength_range must lie in [0, 1], got {self.strength_range}"
            )
        if not 0.0 <= self.exclude_nearest < 1.0:
            raise ThreedsrError(
                f"DetectorConfig: exclude_nearest must be in [0, 1), got {self.exclude_nearest}"
            )
        if not 0.0 <= self.modality_split_prob <= 1.0:
            raise ThreedsrError(
                "DetectorConfig: modality_split_prob must be in [0, 1], got "
                f"{self.modality_split_prob}"
            )
        if not 0.0 <= self.depth_anomaly_prob <= 1.0:
            raise ThreedsrError(
                f"DetectorConfig: depth_anomaly_prob must be in [0, 1], got {self.depth_anomaly_prob}"
            )
        if not 0.0 <= self.image_anomaly_prob <= 1.0:
            raise ThreedsrError(
                f"DetectorConfig: image_anomaly_prob must be in [0, 1], got {self.image_anomaly_prob}"
            )
        if self.image_anomaly_prob > 0 and self.depth_anomaly_prob > 0:
            raise ThreedsrError(
                "DetectorConfig: set image_anomaly_prob or depth_anomaly_prob, not both"
            )
        if not 0.0 <= self.memory_weight <= 1.0:
            raise ThreedsrError(
                f"DetectorConfig: memory_weight must be in [0, 1], got {self.memory_weight}"
            )
        if self.memory_size < 1:
            raise ThreedsrError(f"DetectorConfig: memory_size must be >= 1, got {self.memory_size}")
        if self.memory_features not in ("encoder", "descriptors"):
            raise ThreedsrError(
                "DetectorConfig: memory_features must be 'encoder' or 'descriptors', got "
                f"{self.memory_features!r}"
            )
        if not self.descriptor_scales or min(self.descriptor_scales) <= 0:
            raise ThreedsrError(
                f"DetectorConfig: descriptor_scales must be > 0, got {self.descriptor_scales}"
            )
        unknown = set(self.descriptor_groups) - set(DESCRIPTOR_GROUPS)
        if not self.descriptor_groups or unknown:
            raise ThreedsrError(
                f"DetectorConfig: descriptor_groups must be some of {DESCRIPTOR_GROUPS}, got "
                f"{self.descriptor_groups}"
            )
        if self.descriptor_weights is not None and (
            len(self.descriptor_weights) != len(self.descriptor_groups)
            or min(self.descriptor_weights) <= 0
        ):
            raise ThreedsrError(
                "DetectorConfig: descriptor_weights must be one positive number per group of "
                f"{self.descriptor_groups}, got {self.descriptor_weights}"
            )
        if self.feature_loss not in ("mse", "l1"):
            raise ThreedsrError(
                f"DetectorConfig: feature_loss must be 'mse' or 'l1', got {self.feature_loss!r}"
            )
        if self.precision not in PRECISIONS:
            raise ThreedsrError(
                f"DetectorConfig: precision must be one of {PRECISIONS}, got {self.precision!r}"
            )
        if self.smoothing not in ("box", "gaussian"):
            raise ThreedsrError(
                f"DetectorConfig: smoothing must be 'box' or 'gaussian', got {self.smoothing!r}"
            )
        object.__setattr__(self, "milestones", tuple(int(m) for m in self.milestones))
        object.__setattr__(self, "strength_range", tuple(float(v) for v in self.strength_range))
        object.__setattr__(self, "mask_threshold", tuple(float(v) for v in self.mask_threshold))
        object.__setattr__(
            self, "depth_anomaly_amplitude", tuple(float(v) for v in self.depth_anomaly_amplitude)
        )
        object.__setattr__(self, "paint_opacity", tuple(float(v) for v in self.paint_opacity))
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
        """The smoothing kernel side actually used."""
        return self.smoothing_size or default_smoothing_size(self.setup)

    @property
    def in_channels(self) -> int:
        return {"rgbd": 4, "depth": 1, "rgb": 3}[self.setup]

    @classmethod
    def paper(cls, setup: Setup = "rgbd", **overrides: Any) -> DetectorConfig:
        """The reference schedule: batch 16, 30k iterations, x0.1 at 24k, 384², spec widths."""
        return cls._build(dict(setup=setup, model=ModelConfig.paper()), overrides)

    @classmethod
    def cpu(cls, setup: Setup = "rgbd", **overrides: Any) -> DetectorConfig:
        """A small CPU run: 256², batch 8, 400 iterations (x0.1 at 80 %), narrow modules with a
        residual SRM, every anomaly drawn in image space, and a memory of hand-made surface,
        colour, texture and interior descriptors (100k cells) whose map is the detector's
        (``memory_weight=1``; the heads' map stays available with
        ``Detector.load(..., memory_weight=0)``); depth maps are smoothed with an 11 px box.
        ``rgb`` keeps the 128 px encoder memory fused at 0.7 (no object mask for the
        descriptors). Package README rows 18-26 and 32 list each departure with its measured
        effect."""
        base: dict[str, Any] = dict(
            setup=setup,
            model=ModelConfig.cpu(),
            size=256,
            batch_size=8,
            iterations=400,
            lr=1e-3,
            checkpoint_every=200,
            modality_split_prob=0.5,
            image_anomaly_prob=1.0,
            memory_weight=1.0,
            memory_size=100_000,
            memory_features="descriptors",
            # Depth weighs as much as colour and texture together; the interior distance says
            # where on the object a cell lies (docs/bench/threedsr.md, "Descriptor groups").
            descriptor_scales=(1.0, 2.0, 4.0, 8.0),
            descriptor_groups=DESCRIPTOR_GROUPS,
            descriptor_weights=(2.0, 1.0, 1.0, 1.0),
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
            base.update(size=128, memory_features="encoder", memory_weight=0.7, memory_size=40_000)
        return cls._build(base, overrides)

    @classmethod
    def preset(cls, name: str, setup: Setup = "rgbd", **overrides: Any) -> DetectorConfig:
        """``paper`` or ``cpu`` by name. Keys of :class:`ModelConfig` are accepted as overrides
        too; ``None`` overrides are ignored (so unset CLI flags keep the preset's value); when
        ``iterations`` is overridden and ``milestones`` is not, the milestone moves to 80 % of the
        new length (the reference's ``int(0.8 * epochs)``)."""
        if name not in ("paper", "cpu"):
            raise ThreedsrError(f"unknown detector preset {name!r} (expected 'paper' or 'cpu')")
        clean = {k: v for k, v in overrides.items() if v is not None}
        return getattr(cls, name)(setup, **clean)

    @classmethod
    def _build(cls, base: dict[str, Any], overrides: dict[str, Any]) -> DetectorConfig:
        model_fields = {f.name for f in dataclasses.fields(ModelConfig)}
        model_over = {k: overrides.pop(k) for k in list(overrides) if k in model_fields}
        if overrides.get("depth_anomaly_prob") and "image_anomaly_prob" not in overrides:
            # The older depth-only option replaces the preset's image-space anomalies.
            base["image_anomaly_prob"] = 0.0
        base.update(overrides)
        if model_over:
            base["model"] = dataclasses.replace(base["model"], **model_over)
        if "milestones" not in overrides:
            # Every preset decays x0.1 at 80 % of its own length (the reference's
            # int(0.8 * epochs)), whether or not the length was overridden.
            base["milestones"] = (int(0.8 * int(base.get("iterations", cls.iterations))),)
        _known(cls, base, "DetectorConfig")
        return cls(**base)

    def replace(self, **changes: Any) -> DetectorConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of primitives (safe for ``torch.load(weights_only=True)`` and JSON)."""
        d = dataclasses.asdict(self)
        d["milestones"] = list(self.milestones)
        d["strength_range"] = list(self.strength_range)
        d["mask_threshold"] = list(self.mask_threshold)
        d["depth_anomaly_amplitude"] = list(self.depth_anomaly_amplitude)
        d["paint_opacity"] = list(self.paint_opacity)
        d["descriptor_scales"] = list(self.descriptor_scales)
        d["descriptor_groups"] = list(self.descriptor_groups)
        if self.descriptor_weights is not None:
            d["descriptor_weights"] = list(self.descriptor_weights)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DetectorConfig:
        d = _known(cls, data, "DetectorConfig")
        if isinstance(d.get("model"), dict):
            d["model"] = ModelConfig.from_dict(d["model"])
        for key in (
            "milestones",
            "strength_range",
            "mask_threshold",
            "depth_anomaly_amplitude",
            "paint_opacity",
            "descriptor_scales",
            "descriptor_groups",
            "descriptor_weights",
        ):
            if d.get(key) is not None:
                d[key] = tuple(d[key])
        return cls(**d)

    def out_dir(self) -> Path:
        if self.out is None:
            raise ThreedsrError("DetectorConfig: 'out' (the run folder) is required for training")
        return Path(self.out)
