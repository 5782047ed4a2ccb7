"""The named :class:`~threedsr.config.DetectorConfig` presets (``memory``, ``paper``, ``gpu``,
``cpu``) and how overrides apply to them; ``DetectorConfig`` inherits them from
:class:`DetectorPresets`, so they stay ``DetectorConfig.paper(...)``,
``DetectorConfig.preset("cpu", ...)`` and so on."""

from __future__ import annotations

from typing import Any, ClassVar, Self

from vqcore import ConfigMixin, Setup, milestones_at

from threedsr.dsr.config import AnomalyConfig, ModelConfig
from threedsr.errors import ThreedsrError
from threedsr.memory.config import MemoryConfig

__all__ = ["DetectorPresets"]


class DetectorPresets(ConfigMixin):
    """The presets of :class:`~threedsr.config.DetectorConfig`, its only subclass: each builder
    fills a few fields and leaves the rest at the config's defaults."""

    # A field of DetectorConfig (its default is the run length a preset's milestone falls back
    # to); declared here so that _build's read of it type-checks.
    iterations: int

    _PRESETS = ("memory", "paper", "gpu", "cpu")
    # The field ``memory`` holds the memory's part, so the memory preset's builder has another name.
    _PRESET_BUILDERS: ClassVar[dict[str, str]] = {"memory": "for_memory"}
    _PRESET_MESSAGE = (
        "unknown detector preset {name!r} (expected 'memory', 'paper', 'gpu' or 'cpu')"
    )

    @classmethod
    def for_memory(cls, setup: Setup = "rgbd", **overrides: Any) -> Self:
        """The descriptor memory alone, with nothing trained: 256 px (RGB alone: encoder features
        at 128 px), the setup's :meth:`MemoryConfig.for_setup`, maps smoothed with an 11 px box
        (the reference's 21 px depth box blurs away the small defects the descriptors find:
        cable_gland depth I-AUROC 0.787 at 11 px, 0.721 at 21)."""
        base: dict[str, Any] = dict(
            method="memory",
            setup=setup,
            memory=MemoryConfig.for_setup(setup),
            image_size=128 if setup == "rgb" else 256,
            smoothing_size=11,
        )
        return cls._build(base, overrides)

    @classmethod
    def paper(cls, setup: Setup = "rgbd", **overrides: Any) -> Self:
        """The 3DSR reference schedule: batch 16, 30k iterations, x0.1 at 24k, 384², fp32.
        ``method="fused"`` adds the setup's memory.

        The heads' widths are derived from the backbone as the reference derives them, so they
        are the spec's (≈55 M trainable) only on a paper-width backbone (``backbone=``: a
        ``vqcore.StageOneConfig.paper`` run). ``backbone=None`` (the default) is the shipped
        ``cpu``-width backbone, and the heads on it are narrow (≈4.9 M): not the paper's network.
        """
        base: dict[str, Any] = dict(
            method="3dsr",
            setup=setup,
            model=ModelConfig.paper(),
            memory=MemoryConfig.for_setup(setup),
        )
        return cls._build(base, overrides)

    @classmethod
    def gpu(cls, setup: Setup = "rgbd", **overrides: Any) -> Self:
        """The paper's network (on a paper-width ``backbone``; see :meth:`paper`), anomalies
        and losses on a schedule one data-centre GPU trains in at most 10 minutes: 256² (RGB
        alone 128²), batch 16, 7,000 iterations (x0.1 at 80 %), Adam 2e-4, bf16 on CUDA (fp32 on
        the CPU).

        Why these numbers: on one H200, paper-width heads at 256² in bf16 trained at about
        15 it/s, and 2,800 such iterations reached image AUROC 0.918 on a synthetic class
        (issue 25), so 7,000 fit in 8 minutes with room for the calibration. 384² (the paper's
        side) costs about 2.2x per step. Only the length, the side, the arithmetic and the
        nearest-code distance form (the fast one) depart from ``paper``.
        """
        base: dict[str, Any] = dict(
            method="3dsr",
            setup=setup,
            # The fast distance form: the reference's order matters for bit parity, not detection.
            model=ModelConfig.paper(vq_distance="fast"),
            memory=MemoryConfig.for_setup(setup),
            image_size=128 if setup == "rgb" else 256,
            batch_size=16,
            iterations=7_000,
            checkpoint_every=1_000,
            log_every=100,
            precision="auto",
        )
        return cls._build(base, overrides)

    @classmethod
    def cpu(cls, setup: Setup = "rgbd", **overrides: Any) -> Self:
        """A small 3DSR run: 256² (RGB alone 128²), batch 8, 400 iterations (x0.1 at 80 %),
        narrow modules with a residual SRM, every anomaly drawn in image space; depth maps
        smoothed with an 11 px box. At this budget the network's own map is near chance on real
        data (cable_gland I-AUROC 0.514): it shows the method on a CPU, the GPU trains it.
        Package README rows 18-26 list each departure with its measured effect."""
        base: dict[str, Any] = dict(
            method="3dsr",
            setup=setup,
            model=ModelConfig.cpu(),
            anomaly=AnomalyConfig(modality_split_prob=0.5, image_anomaly_prob=1.0),
            memory=MemoryConfig.for_setup(setup),
            image_size=128 if setup == "rgb" else 256,
            batch_size=8,
            iterations=400,
            lr=1e-3,
            checkpoint_every=200,
            # bf16 on CUDA, fp32 on the CPU.
            precision="auto",
        )
        if setup == "depth":
            base.update(smoothing_size=11)
        return cls._build(base, overrides)

    @classmethod
    def preset(cls, name: str, setup: Setup = "rgbd", **overrides: Any) -> Self:
        """``memory``, ``paper``, ``gpu`` or ``cpu`` by name. The fields of the parts (:class:`ModelConfig`,
        :class:`PreprocessConfig`, :class:`AnomalyConfig`, :class:`LossConfig`,
        :class:`MemoryConfig`) are accepted as plain overrides too; ``None`` overrides are
        ignored (so unset CLI flags keep the preset's value); when ``lr_milestones`` is not
        given, the milestone is at 80 % of the run's length (:func:`vqcore.milestones_at`)."""
        return super().preset(name, setup, **overrides)

    @classmethod
    def _build(cls, base: dict[str, Any], overrides: dict[str, Any]) -> Self:
        over = cls._flat_overrides(overrides)
        if base.get("method") == "memory" and over.get("method", "memory") != "memory":
            raise ThreedsrError(
                "DetectorConfig: the memory preset is the memory method; use the paper, gpu or "
                "cpu preset for 3dsr and fused"
            )
        anomaly = over.get("anomaly")
        if (
            isinstance(anomaly, dict)
            and anomaly.get("depth_anomaly_prob")
            and "image_anomaly_prob" not in anomaly
        ):
            # The depth-only option replaces the preset's image-space anomalies.
            anomaly["image_anomaly_prob"] = 0.0
        for name, part in cls._NESTED.items():
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
