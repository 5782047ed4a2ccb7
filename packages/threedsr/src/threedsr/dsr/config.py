"""The 3DSR network's parts of :class:`~threedsr.config.DetectorConfig`: module widths
(``ModelConfig``), training anomalies and augmentation (``AnomalyConfig``) and the loss
(``LossConfig``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from vqcore import DISTANCES, ConfigMixin

from threedsr.config_checks import check_bool, check_int, check_number, check_range
from threedsr.errors import ThreedsrError

__all__ = ["AnomalyConfig", "LossConfig", "ModelConfig", "resolve_sampler"]


@dataclass(frozen=True)
class ModelConfig(ConfigMixin):
    """Widths of the four trainable stage-2 modules. ``None`` means "derived from the backbone"
    the way the reference derives it (SRM base = D/2, object decoder width = 2D, decoder hidden and
    residual widths = the backbone's).

    Example:
        >>> ModelConfig.paper().unet_base, ModelConfig.cpu().srm_base
        (32, 16)
        >>> ModelConfig.paper().vq_distance, ModelConfig.cpu().vq_distance, ModelConfig().vq_distance
        ('reference', 'fast', 'fast')
    """

    _error = ThreedsrError

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
    # Distance form of every nearest-code search of the network (the backbone's two quantizers:
    # its encoding and the re-quantisation of the SRM outputs), set on the backbone by ThreeDSR.
    # "reference": the authors' x² + e² - 2xe, whole (the paper preset); "fast": threedsr's
    # blocked addmm. They differ on near-tie codes only, and one flipped SRM code moves the UNet's
    # logits by up to 5e-2. "fast" by default: a detector.pt without the field ran with it.
    vq_distance: Literal["fast", "reference"] = "fast"

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
        if self.vq_distance not in DISTANCES:
            raise ThreedsrError(
                f"ModelConfig: vq_distance must be one of {DISTANCES}, got {self.vq_distance!r}"
            )
        if self.object_decoder not in ("reference", "general_copy"):
            raise ThreedsrError(
                "ModelConfig: object_decoder must be 'reference' or 'general_copy', got "
                f"{self.object_decoder!r}"
            )
        # A zero width built a layer with no channels (a torch error deep in the first step).
        for name in ("srm_base", "objdec_width", "objdec_hidden", "objdec_res_hidden"):
            check_int("ModelConfig", name, getattr(self, name), 1, optional=True)
        for name in ("objdec_bottleneck", "unet_base", "srm_levels"):
            check_int("ModelConfig", name, getattr(self, name), 1)
        check_int("ModelConfig", "objdec_res_layers", self.objdec_res_layers, 0)
        check_number("ModelConfig", "init_std", self.init_std, 0.0, open_low=True, optional=True)
        check_bool("ModelConfig", "srm_residual", self.srm_residual)

    @classmethod
    def paper(cls, **overrides: Any) -> ModelConfig:
        """Spec widths derived from the backbone (≈55 M trainable parameters on a paper-width
        backbone; ≈4.9 M on the shipped ``cpu``-width one) and the reference's distance
        expression in the VQ searches."""
        return cls(**{"vq_distance": "reference", **overrides})

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


@dataclass(frozen=True)
class AnomalyConfig(ConfigMixin):
    """How stage 2 makes its training batches: augmentation, the anomaly mask and the synthetic
    anomalies (defaults: the reference).

    Args:
        strength_range: U(lo, hi) anomaly strength per sample and level (0.1, 1.0).
        exclude_nearest: fraction of nearest codes never used as replacement (0.05).
        shuffle_prob: per-batch probability of patch-shuffle replacement (0.5).
        modality_split_prob: rgbd only: probability that a sample's feature anomaly is confined
            to the depth or the RGB half of the codes (0 = the reference; see
            :class:`~threedsr.dsr.anomaly_generator.FeatureAnomalyGenerator`).
        depth_anomaly_prob: rgbd/depth only: probability that a sample with an anomaly mask gets
            an image-space depth deformation (a dent or a bump under the mask, through the real
            encoder) instead of feature-space code replacement (0 = the reference).
        depth_anomaly_amplitude: U(lo, hi) magnitude of that deformation, in normalised depth
            units (the foreground spans [0.1, 0.9]); the sign is random.
        image_anomaly_prob: all setups: probability that a sample with an anomaly mask gets its
            anomaly drawn in image space (depth dent/bump and/or a procedural texture painted
            into RGB, see :func:`threedsr.dsr.host_batch.image_space_anomalies`) instead of feature-space
            code replacement (0 = the reference). Excludes ``depth_anomaly_prob``.
        paint_opacity: U(lo, hi) opacity of the painted texture.
        mask_threshold: |Perlin| threshold range of the anomaly mask (0.4, 0.8).
        zero_mask_prob: probability that a sample gets no anomaly (0.5).
        rotation_deg: ±angle of the rotation augmentation (15).
        rotate_mask_with_image: rotate the anomaly mask with the image (True); False = reference
            parity (mask built in the unrotated frame, image rotated afterwards).
        restrict_to_foreground: anomalies only on foreground ∩ valid (True, as the reference).
        sampler: where batches and anomalies are drawn. ``host``: numpy + numba on the CPU
            (the data path before issue 25); ``device``: torch on the training device with no
            host synchronisation in the step (:mod:`threedsr.dsr.device_batch`: the same
            laws from another random stream); ``auto`` (default): ``device``
            on CUDA, ``host`` elsewhere. Stored in the checkpoint; files written before the
            field load as ``host``.
    """

    _error = ThreedsrError

    strength_range: tuple[float, float] = (0.1, 1.0)
    exclude_nearest: float = 0.05
    shuffle_prob: float = 0.5
    modality_split_prob: float = 0.0
    depth_anomaly_prob: float = 0.0
    depth_anomaly_amplitude: tuple[float, float] = (0.02, 0.25)
    image_anomaly_prob: float = 0.0
    paint_opacity: tuple[float, float] = (0.3, 1.0)
    mask_threshold: tuple[float, float] = (0.4, 0.8)
    zero_mask_prob: float = 0.5
    rotation_deg: float = 15.0
    rotate_mask_with_image: bool = True
    restrict_to_foreground: bool = True
    sampler: Literal["auto", "device", "host"] = "auto"

    def __post_init__(self) -> None:
        def fail(msg: str) -> None:
            raise ThreedsrError(f"AnomalyConfig: {msg}")

        if self.sampler not in ("auto", "device", "host"):
            fail(f"sampler must be 'auto', 'device' or 'host', got {self.sampler!r}")
        owner = "AnomalyConfig"
        for name, high in (
            ("strength_range", 1.0),
            ("paint_opacity", 1.0),
            ("mask_threshold", math.inf),
            ("depth_anomaly_amplitude", math.inf),
        ):
            check_range(owner, name, getattr(self, name), 0.0, high)
        check_number(owner, "exclude_nearest", self.exclude_nearest, 0.0)
        if not self.exclude_nearest < 1.0:
            fail(f"exclude_nearest must be in [0, 1), got {self.exclude_nearest}")
        for name in (
            "shuffle_prob",
            "zero_mask_prob",
            "modality_split_prob",
            "depth_anomaly_prob",
            "image_anomaly_prob",
        ):
            check_number(owner, name, getattr(self, name), 0.0, 1.0)
        check_number(owner, "rotation_deg", self.rotation_deg, 0.0)
        for name in ("rotate_mask_with_image", "restrict_to_foreground"):
            check_bool(owner, name, getattr(self, name))
        if self.image_anomaly_prob > 0 and self.depth_anomaly_prob > 0:
            fail("set image_anomaly_prob or depth_anomaly_prob, not both")
        for name in (
            "strength_range",
            "mask_threshold",
            "depth_anomaly_amplitude",
            "paint_opacity",
        ):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))


def resolve_sampler(sampler: str, device: str | object) -> str:
    """``device`` or ``host``: what ``AnomalyConfig.sampler`` means on ``device``.

    Example:
        >>> resolve_sampler("auto", "cpu"), resolve_sampler("device", "cpu")
        ('host', 'device')
    """
    if sampler != "auto":
        return sampler
    return "device" if str(device).startswith("cuda") else "host"


@dataclass(frozen=True)
class LossConfig(ConfigMixin):
    """The stage-2 loss: ``focal + L1(mask) + feature x 2 + image_loss_weight x MSE(image)``.

    Args:
        feature_loss: ``mse`` (code) or ``l1`` (paper).
        mask_l1: add the L1 term on the softmax mask (True, code).
        image_loss_weight: weight of the object-decoder MSE (10, code).
        focal_gamma: focal loss gamma (2).
    """

    _error = ThreedsrError

    feature_loss: Literal["mse", "l1"] = "mse"
    mask_l1: bool = True
    image_loss_weight: float = 10.0
    focal_gamma: float = 2.0

    def __post_init__(self) -> None:
        if self.feature_loss not in ("mse", "l1"):
            raise ThreedsrError(
                f"LossConfig: feature_loss must be 'mse' or 'l1', got {self.feature_loss!r}"
            )
        check_bool("LossConfig", "mask_l1", self.mask_l1)
        check_number("LossConfig", "image_loss_weight", self.image_loss_weight, 0.0)
        check_number("LossConfig", "focal_gamma", self.focal_gamma, 0.0)
