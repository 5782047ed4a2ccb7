"""The demo's sizes in one frozen record: ``claim_run`` stores it in the run marker, so a
``--resume`` with other sizes is refused instead of mixing two demos in one folder, and the CPU,
GPU and ``--fast`` sizes sit apart from the pipeline (``demo.py``) that runs them. Beside it: which
profile a device gets (:func:`demo_plan`) and the stage-1 and detector configs a profile makes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from threedsr import DetectorConfig
    from vqcore import StageOneConfig

__all__ = ["SETUPS", "DemoProfile", "demo_plan", "detector_config", "stage_one_config"]

# The setups the demo compares (a subset of vqcore.SETUPS, which the CLI does not import at
# start-up: importing vqcore loads torch).
SETUPS = ("rgbd", "rgb")


@dataclass(frozen=True)
class DemoProfile:
    """Sizes and iteration counts of the demo (the CPU presets, shortened where it pays)."""

    category: str = "puck"
    image_size: int = 128
    n_train: int = 40
    n_validation: int = 8
    n_test_per_type: int = 20
    dada_iterations: int = 600
    dada_image_size: int = 64
    dada_batch: int = 8
    #: stage-1 loss weights of the rgbd DADA (None, None = the reference's mean over 4 channels)
    dada_lambda_depth: float | None = None
    dada_lambda_rgb: float | None = None
    backbone: tuple[tuple[str, Any], ...] = ()
    detector_iterations: int = 400
    detector_size: int = 128
    detector_batch: int = 8
    detector_model: tuple[tuple[str, Any], ...] = ()

    #: The 3DSR schedule of ``--method 3dsr`` / ``fused`` (``gpu`` on CUDA).
    detector_preset: str = "cpu"

    @classmethod
    def gpu(cls) -> DemoProfile:
        """The demo on a GPU: the ``gpu`` preset's network (paper widths, bf16) at 256 px on 60
        good scans, 2,500 iterations per detector (on one H200 about 15 it/s before issue 25's
        device-side batches: 2,800 iterations reached image AUROC 0.918 on such a class)."""
        return cls(
            image_size=256,
            n_train=60,
            n_validation=10,
            detector_iterations=2_500,
            detector_size=256,
            detector_batch=16,
            detector_preset="gpu",
        )

    @classmethod
    def fast(cls) -> DemoProfile:
        """A sub-minute smoke version: tiny images, models and iteration counts."""
        return cls(
            image_size=64,
            n_train=6,
            n_validation=2,
            n_test_per_type=2,
            dada_iterations=8,
            dada_image_size=32,
            dada_batch=4,
            backbone=(
                ("hidden", 16),
                ("res_hidden", 8),
                ("num_embeddings", 32),
                ("embedding_dim", 8),
            ),
            detector_iterations=8,
            detector_size=64,
            detector_batch=4,
            detector_model=(
                ("srm_base", 8),
                ("objdec_width", 8),
                ("objdec_bottleneck", 8),
                ("objdec_hidden", 8),
                ("objdec_res_hidden", 8),
                ("unet_base", 4),
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["backbone"] = dict(self.backbone)
        d["detector_model"] = dict(self.detector_model)
        return d


def demo_plan(method: str | None, device: str, *, fast: bool) -> tuple[str, DemoProfile]:
    """The method and profile of a demo on ``device`` when ``--method`` may be unset: a GPU
    trains the 3DSR network itself in minutes; a CPU shows the memory (3DSR's CPU schedule is
    near chance on real data).

    Example:
        >>> [(m, p.detector_preset) for m, p in (demo_plan(None, d, fast=False) for d in ("cuda:0", "cpu"))]
        [('3dsr', 'gpu'), ('memory', 'cpu')]
    """
    on_gpu = device.startswith("cuda")
    if method is None:
        method = "3dsr" if on_gpu else "memory"
    if fast:
        return method, DemoProfile.fast()
    return method, DemoProfile.gpu() if on_gpu and method != "memory" else DemoProfile()


def stage_one_config(
    profile: DemoProfile, setup: str, out: Path, device: str, seed: int
) -> StageOneConfig:
    """The ``cpu`` stage-1 preset of ``setup`` at the profile's sizes, resumable."""
    import vqcore

    backbone = vqcore.BackboneConfig.cpu(setup, **dict(profile.backbone))
    weights: dict[str, float | None] = {}
    if setup == "rgbd" and profile.dada_lambda_depth is not None:
        weights = {"lambda_depth": profile.dada_lambda_depth, "lambda_rgb": profile.dada_lambda_rgb}
    return vqcore.StageOneConfig.cpu(
        setup,
        backbone=backbone,
        out_dir=out,
        iterations=profile.dada_iterations,
        image_size=profile.dada_image_size,
        batch_size=profile.dada_batch,
        seed=seed,
        device=device,
        resume=True,
        checkpoint_every=max(1, profile.dada_iterations // 3),
        **weights,
    )


def detector_config(
    profile: DemoProfile,
    setup: str,
    data: Path,
    backbone: Path | None,
    out: Path,
    device: str,
    seed: int,
    method: str = "memory",
) -> DetectorConfig:
    """The detector config of ``setup``: the ``memory`` preset, or for the network the
    profile's ``detector_preset`` schedule at its sizes, resumable."""
    import threedsr

    common: dict[str, Any] = dict(
        setup=setup,
        data_root=str(data),
        category=profile.category,
        backbone=None if backbone is None else str(backbone),
        out_dir=str(out),
        image_size=profile.detector_size,
        device=device,
        seed=seed,
    )
    if method == "memory":  # nothing is trained: no schedule
        return threedsr.DetectorConfig.preset("memory", **common)
    return threedsr.DetectorConfig.preset(
        profile.detector_preset,
        method=method,
        iterations=profile.detector_iterations,
        batch_size=profile.detector_batch,
        checkpoint_every=max(1, profile.detector_iterations // 4),
        resume=True,
        **common,
        **dict(profile.detector_model),
    )
