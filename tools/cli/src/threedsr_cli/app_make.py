"""The signatures of the commands that make detectors: ``demo``, ``train-dada`` and ``train``.

Each parses its options (Typer) and hands them to its ``threedsr_cli.commands`` module, imported
inside the call so that ``threedsr-cli --help`` stays light. :mod:`threedsr_cli.app` registers
them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from threedsr_cli.errors import guard
from threedsr_cli.options import (
    CacheDirOpt,
    Device,
    DeviceOpt,
    Method,
    OverwriteOpt,
    Preset,
    QuietOpt,
    ResumeOpt,
    SeedOpt,
    Setup,
    StageOnePreset,
    TrainPrecisionOpt,
    VerboseOpt,
    at_least,
    model_size,
    option_value,
    stage1_size,
)
from threedsr_cli.scan_units import (
    CameraOpt,
    DepthUnitOpt,
    FocalPxOpt,
    GridOpt,
    PrincipalPointOpt,
)
from threedsr_cli.ui import UI

__all__ = ["demo", "train", "train_dada"]


def demo(
    out: Annotated[Path, typer.Option("--out", help="Run folder to write.")] = Path("demo-run"),
    fast: Annotated[
        bool, typer.Option("--fast", help="Tiny sizes and iterations (< 1 min).", metavar="")
    ] = False,
    stage1: Annotated[
        bool,
        typer.Option(
            "--stage1",
            help="Also train the stage-1 backbones (default: the pretrained ones that ship "
            "with threedsr); the memory reads them only for RGB alone.",
            metavar="",
        ),
    ] = False,
    method: Annotated[
        Optional[Method],
        typer.Option(
            "--method",
            help="memory (no training), 3dsr (the network: on CUDA the gpu preset, 2,500 "
            "iterations per detector; on the CPU 400, near chance) or fused. Default: 3dsr on "
            "CUDA, memory on the CPU.",
        ),
    ] = None,
    resume: ResumeOpt = False,
    overwrite: OverwriteOpt = False,
    device: DeviceOpt = Device.auto,
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Generate a synthetic dataset, fit RGB+D and RGB-only detectors, evaluate, report.

    Nothing is downloaded. The run folder gets metrics.json, report.md, report.html, ROC and PRO
    curves and overlays of anomaly maps on RGB and depth for every defect type.
    """
    from threedsr_cli.commands.demo import demo_command

    with guard(verbose):
        demo_command(
            out=out,
            fast=fast,
            method=None if method is None else option_value(method),
            stage1=stage1,
            resume=resume,
            overwrite=overwrite,
            device=option_value(device),
            seed=seed,
            ui=UI(quiet, verbose),
        )


def train_dada(
    out: Annotated[Path, typer.Option("--out", help="Run folder (gets backbone.pt).")],
    preset: Annotated[
        StageOnePreset,
        typer.Option("--preset", help="paper (GPU, 100k it) or cpu (minutes)."),
    ] = StageOnePreset.cpu,
    setup: Annotated[
        Setup, typer.Option("--setup", help="rgbd = DADA; depth / rgb = single-modality VQ-VAE.")
    ] = Setup.rgbd,
    rgb_dir: Annotated[
        Optional[Path],
        typer.Option(
            "--rgb-dir",
            help="Folder tree of RGB images (ImageNet style); default: procedural textures.",
        ),
    ] = None,
    iterations: Annotated[
        Optional[int],
        typer.Option(
            "--iterations", callback=at_least("--iterations", 1), help="Override the preset."
        ),
    ] = None,
    batch_size: Annotated[
        Optional[int],
        typer.Option(
            "--batch-size", callback=at_least("--batch-size", 1), help="Override the preset."
        ),
    ] = None,
    image_size: Annotated[
        Optional[int],
        typer.Option(
            "--size",
            callback=stage1_size,
            help="Training image side (multiple of 8); overrides the preset.",
        ),
    ] = None,
    precision: TrainPrecisionOpt = None,
    resume: ResumeOpt = False,
    overwrite: OverwriteOpt = False,
    device: DeviceOpt = Device.auto,
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Stage 1: train the depth-aware discrete autoencoder (DADA) on RGB images and simulated depth.

    Progress shows loss, codebook perplexity (top/bottom), it/s and ETA. Ctrl-C saves a
    checkpoint; --resume continues exactly.
    """
    from threedsr_cli.commands.train_dada import train_dada_command

    with guard(verbose):
        train_dada_command(
            preset=option_value(preset),
            setup=option_value(setup),
            rgb_dir=rgb_dir,
            out=out,
            resume=resume,
            overwrite=overwrite,
            iterations=iterations,
            batch_size=batch_size,
            image_size=image_size,
            precision=None if precision is None else option_value(precision),
            device=option_value(device),
            seed=seed,
            ui=UI(quiet, verbose),
        )


def train(
    data: Annotated[
        Path,
        typer.Option(
            "--data", help="Dataset root (MVTec 3D-AD, Eyecandies or own scans) or a pack."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Run folder (gets detector.pt).")],
    category: Annotated[
        Optional[str],
        typer.Option("--category", help="Object class to train on (a pack: its own class)."),
    ] = None,
    dada: Annotated[
        Optional[Path],
        typer.Option(
            "--dada",
            help="Stage-1 folder or backbone.pt written by train-dada. Default: the pretrained "
            "backbone of --setup that ships with threedsr (vqcore).",
        ),
    ] = None,
    setup: Annotated[
        Setup, typer.Option("--setup", help="rgbd, depth or rgb; must match --dada.")
    ] = Setup.rgbd,
    method: Annotated[
        Method,
        typer.Option(
            "--method",
            help="memory (no training, minutes on a CPU), 3dsr (the network, GPU-scale "
            "training) or fused (both); see below.",
        ),
    ] = Method.memory,
    preset: Annotated[
        Optional[Preset],
        typer.Option(
            "--preset",
            help="3DSR schedule of --method 3dsr / fused: paper (30k it, 384 px; GPU hours), "
            "gpu (the paper's network, 7k it at 256 px: <= 10 min on one H200) or cpu (400 it, "
            "minutes). Default: gpu on CUDA, cpu on the CPU.",
        ),
    ] = None,
    iterations: Annotated[
        Optional[int],
        typer.Option(
            "--iterations",
            callback=at_least("--iterations", 1),
            help="3DSR iterations (overrides the preset).",
        ),
    ] = None,
    batch_size: Annotated[
        Optional[int],
        typer.Option(
            "--batch-size",
            callback=at_least("--batch-size", 1),
            help="3DSR batch size (overrides the preset).",
        ),
    ] = None,
    size: Annotated[
        Optional[int],
        typer.Option(
            "--size", callback=model_size, help="Model input side (a multiple of 32, at least 64)."
        ),
    ] = None,
    cache_dir: CacheDirOpt = None,
    depth_unit: DepthUnitOpt = None,
    focal_px: FocalPxOpt = None,
    principal_point: PrincipalPointOpt = None,
    grid: GridOpt = None,
    camera: CameraOpt = None,
    precision: TrainPrecisionOpt = None,
    resume: ResumeOpt = False,
    overwrite: OverwriteOpt = False,
    device: DeviceOpt = Device.auto,
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Make the detector of one class from its good training scans.

    The descriptor memory (the default: nothing trained), the 3DSR network (stage 2), or both
    fused.
    """
    from threedsr_cli.commands.train import train_command

    with guard(verbose):
        train_command(
            data=data,
            category=category,
            setup=option_value(setup),
            method=option_value(method),
            preset=None if preset is None else option_value(preset),
            dada=dada,
            out=out,
            resume=resume,
            overwrite=overwrite,
            iterations=iterations,
            batch_size=batch_size,
            size=size,
            cache_dir=cache_dir,
            precision=None if precision is None else option_value(precision),
            depth_unit=None if depth_unit is None else option_value(depth_unit),
            focal_px=focal_px,
            principal_point=principal_point,
            grid=grid,
            camera=camera,
            device=option_value(device),
            seed=seed,
            ui=UI(quiet, verbose),
        )
