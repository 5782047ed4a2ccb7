"""The ``threedsr-cli`` Typer application.

Module import stays light (typer, rich): torch and the threedsr libraries are imported inside the
commands, so ``threedsr-cli --help`` starts in well under a second.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import typer.core

from threedsr_cli import __version__
from threedsr_cli.errors import guard
from threedsr_cli.options import (
    Backend,
    Device,
    DeviceOpt,
    ExportFormat,
    Method,
    MethodOpt,
    OverwriteOpt,
    Precision,
    PrecisionOpt,
    Preset,
    QuietOpt,
    ResumeOpt,
    SeedOpt,
    Setup,
    TrainPrecisionOpt,
    VerboseOpt,
)
from threedsr_cli.ui import UI

app = typer.Typer(
    name="threedsr-cli",
    help=(
        "Surface anomaly detection on RGB + depth scans with two methods: the descriptor memory "
        "(a kNN over hand-made descriptors; fits in minutes on a CPU, the default) and the 3DSR "
        "network (Zavrtanik et al., WACV 2024; GPU-scale training), or both fused.\n\n"
        "Start with [bold]threedsr-cli demo[/bold]: it generates a synthetic dataset, fits and "
        "evaluates RGB+D and RGB-only detectors on the CPU and writes a report."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"threedsr-cli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version,
            is_eager=True,
            help="Print the version and exit.",
            metavar="",
        ),
    ] = False,
) -> None:
    """Surface anomaly detection on RGB + depth scans: the descriptor memory or 3DSR."""


@app.command(
    "demo",
    epilog=(
        "Examples:\n\n"
        "  threedsr-cli demo                      # full demo into ./demo-run (< 10 min, 2 cores)\n\n"
        "  threedsr-cli demo --fast --out /tmp/d  # sub-minute smoke run\n\n"
        "  threedsr-cli demo --resume             # continue an interrupted demo"
    ),
)
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
        Method,
        typer.Option(
            "--method",
            help="memory (no training), 3dsr (the network, trained 400 iterations on the CPU: "
            "near chance) or fused.",
        ),
    ] = Method.memory,
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
            method=_value(method),
            stage1=stage1,
            resume=resume,
            overwrite=overwrite,
            device=_value(device),
            seed=seed,
            ui=UI(quiet, verbose),
        )


def _value(option: object) -> str:
    return str(getattr(option, "value", option))


@app.command(
    "train-dada",
    epilog=(
        "Examples:\n\n"
        "  threedsr-cli train-dada --preset cpu --out runs/dada\n\n"
        "  threedsr-cli train-dada --preset paper --rgb-dir ~/imagenet/train --out runs/dada "
        "--device cuda\n\n"
        "  threedsr-cli train-dada --preset cpu --setup rgb --out runs/rgb-backbone\n\n"
        "  threedsr-cli train-dada --preset cpu --out runs/dada --resume   # after Ctrl-C"
    ),
)
def train_dada(
    out: Annotated[Path, typer.Option("--out", help="Run folder (gets backbone.pt).")],
    preset: Annotated[
        Preset, typer.Option("--preset", help="paper (GPU, 100k it) or cpu (minutes).")
    ] = Preset.cpu,
    setup: Annotated[
        Setup, typer.Option("--setup", help="rgbd = DADA; depth / rgb = single-modality VQ-VAE.")
    ] = Setup.rgbd,
    rgb_dir: Annotated[
        Path | None,
        typer.Option(
            "--rgb-dir",
            help="Folder tree of RGB images (ImageNet style); default: procedural textures.",
        ),
    ] = None,
    iterations: Annotated[
        int | None, typer.Option("--iterations", min=1, help="Override the preset.")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", min=1, help="Override the preset.")
    ] = None,
    image_size: Annotated[
        int | None, typer.Option("--image-size", min=8, help="Override the preset (multiple of 8).")
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
            preset=_value(preset),
            setup=_value(setup),
            rgb_dir=rgb_dir,
            out=out,
            resume=resume,
            overwrite=overwrite,
            iterations=iterations,
            batch_size=batch_size,
            image_size=image_size,
            precision=None if precision is None else _value(precision),
            device=_value(device),
            seed=seed,
            ui=UI(quiet, verbose),
        )


@app.command(
    "train",
    epilog=(
        "Methods (--method):\n\n"
        "  memory  the descriptor memory: a kNN over hand-made surface, colour, texture and "
        "interior descriptors of the good scans. Nothing is trained: 2-3 minutes on 2 CPU "
        "cores for 223 scans (MVTec 3D-AD cable_gland). The default.\n\n"
        "  3dsr    the 3DSR network (Zavrtanik et al., WACV 2024): heads trained on a frozen "
        "stage-1 backbone. Needs GPU-scale training (--preset paper: 30k iterations, hours); "
        "--preset cpu is a minutes-long CPU schedule whose map is near chance on real data.\n\n"
        "  fused   both maps fused; costs the 3DSR training.\n\n"
        "Examples:\n\n"
        "  threedsr-cli train --data mvtec3d --category bagel --out runs/bagel   "
        "# descriptor memory\n\n"
        "  threedsr-cli train --data mvtec3d --category bagel --setup depth --method 3dsr "
        "--preset paper --dada runs/dada-depth/backbone.pt --out runs/bagel-3dsr --device cuda\n\n"
        "  threedsr-cli train ... --method 3dsr --out runs/bagel-3dsr --resume   # after Ctrl-C"
    ),
)
def train(
    data: Annotated[
        Path, typer.Option("--data", help="Dataset root (MVTec 3D-AD, Eyecandies or own scans).")
    ],
    category: Annotated[str, typer.Option("--category", help="Object class to train on.")],
    out: Annotated[Path, typer.Option("--out", help="Run folder (gets detector.pt).")],
    dada: Annotated[
        Path | None,
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
        Preset | None,
        typer.Option(
            "--preset",
            help="3DSR schedule of --method 3dsr / fused: paper (30k it, 384 px) or cpu "
            "(400 it, minutes). Default: cpu.",
        ),
    ] = None,
    iterations: Annotated[
        int | None,
        typer.Option("--iterations", min=1, help="3DSR iterations (overrides the preset)."),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option("--batch-size", min=1, help="3DSR batch size (overrides the preset)."),
    ] = None,
    size: Annotated[
        int | None, typer.Option("--size", min=32, help="Model input side (multiple of 32).")
    ] = None,
    cache_dir: Annotated[
        Path | None, typer.Option("--cache-dir", help="Preprocessing cache (outside the dataset).")
    ] = None,
    precision: TrainPrecisionOpt = None,
    resume: ResumeOpt = False,
    overwrite: OverwriteOpt = False,
    device: DeviceOpt = Device.auto,
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Make the detector of one class from its good training scans: the descriptor memory (the
    default, nothing trained) or the 3DSR network (stage 2), or both fused."""
    from threedsr_cli.commands.train import train_command

    with guard(verbose):
        train_command(
            data=data,
            category=category,
            setup=_value(setup),
            method=_value(method),
            preset=None if preset is None else _value(preset),
            dada=dada,
            out=out,
            resume=resume,
            overwrite=overwrite,
            iterations=iterations,
            batch_size=batch_size,
            size=size,
            cache_dir=cache_dir,
            precision=None if precision is None else _value(precision),
            device=_value(device),
            seed=seed,
            ui=UI(quiet, verbose),
        )


@app.command(
    "eval",
    epilog=(
        "Examples:\n\n"
        "  threedsr-cli eval --run runs/bagel --data mvtec3d\n\n"
        "  threedsr-cli eval --run runs/bagel/detector.pt --data mvtec3d --category bagel "
        "--out results/bagel"
    ),
)
def evaluate(
    run: Annotated[
        Path, typer.Option("--run", help="Run folder (or detector.pt) written by train.")
    ],
    data: Annotated[Path, typer.Option("--data", help="Dataset root.")],
    category: Annotated[
        str | None, typer.Option("--category", help="Class to test on (default: the detector's).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Where metrics.json goes (default: the run folder)."),
    ] = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option("--cache-dir", help="Preprocessing cache (outside the dataset)."),
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="Replace metrics of another detector or class already in --out.",
            metavar="",
        ),
    ] = False,
    allow_missing_masks: Annotated[
        bool,
        typer.Option(
            "--allow-missing-masks",
            help="Score defective test scans without a ground-truth mask as all-normal pixels "
            "(a warning names them); without it a missing mask is an error.",
            metavar="",
        ),
    ] = False,
    device: DeviceOpt = Device.auto,
    precision: PrecisionOpt = Precision.auto,
    method: MethodOpt = None,
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Evaluate on <data>/<category>/test: I-AUROC, P-AUROC, AUPRO@0.3 and per-defect-type I-AUROC.

    Prints the table and writes metrics.json and metrics.md.
    """
    from threedsr_cli.commands.evaluate import eval_command

    with guard(verbose):
        eval_command(
            run=run,
            data=data,
            category=category,
            out=out,
            cache_dir=cache_dir,
            device=_value(device),
            precision=_value(precision),
            method=None if method is None else _value(method),
            seed=seed,
            ui=UI(quiet, verbose),
            overwrite=overwrite,
            allow_missing_masks=allow_missing_masks,
        )


@app.command(
    "predict",
    epilog=(
        "Examples:\n\n"
        "  threedsr-cli predict --run runs/bagel mvtec3d/bagel/test/crack\n\n"
        "  threedsr-cli predict --run runs/bagel scan1.tiff scan1.png scan2.tiff scan2.png\n\n"
        "  threedsr-cli predict --run runs/bagel my_scans/ --threshold auto --data mvtec3d\n\n"
        "  threedsr-cli predict --run runs/candy eyecandies/CandyCane/test_public/data/25_depth.png\n\n"
        "  threedsr-cli predict --run runs/bagel part.tiff part.png --threshold 0.42 --out preds\n\n"
        "  threedsr-cli predict --run runs/bagel/detector.onnx --backend onnxruntime scans/"
    ),
)
def predict(
    run: Annotated[
        Path, typer.Option("--run", help="Run folder (or detector.pt) written by train.")
    ],
    inputs: Annotated[
        list[Path] | None,
        typer.Argument(
            help=(
                "Sample folders (xyz/ + rgb/), XYZ RGB file pairs, Eyecandies samples "
                "(ID_depth.png, ID_image_K.png or the .../data/ID prefix), or directories."
            ),
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Output folder (default: <run>/predictions).")
    ] = None,
    threshold: Annotated[
        str | None,
        typer.Option(
            "--threshold",
            help="Image-score threshold, or 'auto' (max over good validation samples).",
        ),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data", help="Dataset root for --threshold auto (default: the training data)."
        ),
    ] = None,
    category: Annotated[
        str | None,
        typer.Option("--category", help="Class for --threshold auto (default: the detector's)."),
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Images per forward pass.")
    ] = 8,
    backend: Annotated[
        Backend,
        typer.Option(
            "--backend",
            help=(
                "torch: the run's detector.pt; onnxruntime: a file written by export "
                "(--run FILE.onnx, or a run folder holding detector.onnx; needs threedsr[onnx])."
            ),
        ),
    ] = Backend.torch,
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help="Replace the predictions already in --out.", metavar=""),
    ] = False,
    device: DeviceOpt = Device.auto,
    precision: PrecisionOpt = Precision.auto,
    method: MethodOpt = None,
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Anomaly maps for new scans: PNG overlays on RGB and depth, maps, and scores.json."""
    from threedsr_cli.commands.predict import predict_command

    with guard(verbose):
        predict_command(
            run=run,
            backend=_value(backend),
            inputs=list(inputs or []),
            out=out,
            threshold=threshold,
            data=data,
            category=category,
            batch_size=batch_size,
            device=_value(device),
            precision=_value(precision),
            method=None if method is None else _value(method),
            seed=seed,
            ui=UI(quiet, verbose),
            overwrite=overwrite,
        )


@app.command(
    "export",
    epilog=(
        "Examples:\n\n"
        "  threedsr-cli export --run runs/bagel                 # runs/bagel/detector.onnx\n\n"
        "  threedsr-cli export --run runs/bagel --format torchscript --out bagel.pt\n\n"
        "  threedsr-cli export --run runs/bagel --out bagel.onnx --dynamic-batch --threshold 0.42"
    ),
)
def export(
    run: Annotated[
        Path, typer.Option("--run", help="Run folder (or detector.pt) written by train.")
    ],
    fmt: Annotated[
        ExportFormat, typer.Option("--format", help="onnx (onnxruntime, ...) or torchscript.")
    ] = ExportFormat.onnx,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="File to write (default: <run>/detector.onnx or <run>/detector.torchscript.pt); "
            "the JSON sidecar goes to <out>.json.",
        ),
    ] = None,
    size: Annotated[
        int | None,
        typer.Option("--size", help="Model input side (default: the detector's; multiple of 32)."),
    ] = None,
    dynamic_batch: Annotated[
        bool, typer.Option("--dynamic-batch", help="Any batch size (default: batch 1).", metavar="")
    ] = False,
    threshold: Annotated[
        float | None,
        typer.Option("--threshold", help="Image-score threshold to record in the sidecar."),
    ] = None,
    method: MethodOpt = None,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Export the whole inference map (encoder, quantisations, subspace restriction, decoders,
    UNet, feature memory, fusion, smoothing) as one graph: model-resolution input in, anomaly map
    and image score out. pcprep's preprocessing stays outside: call it with the sidecar's
    parameters."""
    from threedsr_cli.commands.export import export_command

    with guard(verbose):
        export_command(
            run=run,
            fmt=_value(fmt),
            out=out,
            size=size,
            dynamic_batch=dynamic_batch,
            threshold=threshold,
            method=None if method is None else _value(method),
            ui=UI(quiet, verbose),
        )


def main() -> None:
    """Console entry point."""
    app()


if __name__ == "__main__":
    main()
