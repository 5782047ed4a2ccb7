"""The ``threedsr-cli`` Typer application.

Module import stays light (typer, rich): torch and the threedsr libraries are imported inside the
commands, so ``threedsr-cli --help`` starts in well under a second.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
import typer.core

from threedsr_cli import __version__
from threedsr_cli.commands.pack import RgbCodec
from threedsr_cli.compat import check_typer_click
from threedsr_cli.errors import guard
from threedsr_cli.helptext import EPILOGS
from threedsr_cli.options import (
    Backend,
    BatchSizeOpt,
    CacheDirOpt,
    Device,
    DeviceOpt,
    ExportFormat,
    ExportThresholdOpt,
    Method,
    MethodOpt,
    OverwriteOpt,
    Precision,
    PrecisionOpt,
    PredictThresholdOpt,
    Preset,
    QuietOpt,
    ResumeOpt,
    RunOpt,
    SeedOpt,
    Setup,
    TrainPrecisionOpt,
    VerboseOpt,
    at_least,
    model_size,
    stage1_size,
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


@app.command("demo", epilog=EPILOGS["demo"])
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
            method=None if method is None else _value(method),
            stage1=stage1,
            resume=resume,
            overwrite=overwrite,
            device=_value(device),
            seed=seed,
            ui=UI(quiet, verbose),
        )


def _value(option: object) -> str:
    return str(getattr(option, "value", option))


@app.command("train-dada", epilog=EPILOGS["train-dada"])
def train_dada(
    out: Annotated[Path, typer.Option("--out", help="Run folder (gets backbone.pt).")],
    preset: Annotated[
        Preset, typer.Option("--preset", help="paper (GPU, 100k it) or cpu (minutes).")
    ] = Preset.cpu,
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


@app.command("train", epilog=EPILOGS["train"])
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


@app.command("eval", epilog=EPILOGS["eval"])
def evaluate(
    run: RunOpt,
    data: Annotated[Path, typer.Option("--data", help="Dataset root or a pack.")],
    category: Annotated[
        Optional[str],
        typer.Option("--category", help="Class to test on (default: the detector's)."),
    ] = None,
    out: Annotated[
        Optional[Path],
        typer.Option("--out", help="Where metrics.json goes (default: the run folder)."),
    ] = None,
    cache_dir: CacheDirOpt = None,
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
    batch_size: BatchSizeOpt = None,
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
            batch_size=batch_size,
        )


@app.command("pack", epilog=EPILOGS["pack"])
def pack(
    data: Annotated[Path, typer.Option("--data", help="Dataset root.")],
    category: Annotated[str, typer.Option("--category", help="Object class to pack.")],
    out: Annotated[Path, typer.Option("--out", help="File to write (NAME.3dsrpack).")],
    size: Annotated[
        Optional[int],
        typer.Option(
            "--size",
            callback=model_size,
            help="Model input side the pack serves (train/eval refuse another). Default: 256.",
        ),
    ] = None,
    rgb: Annotated[
        RgbCodec,
        typer.Option(
            "--rgb",
            help="exact: the colour train/eval compute from the folder, bit for bit; uint8: "
            "rounded to 8 bits (smaller, results differ slightly). Depth is always exact.",
        ),
    ] = RgbCodec.exact,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an earlier pack at --out.", metavar="")
    ] = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Pack a class's preprocessed train, validation and test splits into one compact file that
    train, eval and predict --threshold auto take as --data (depth stored losslessly)."""
    from threedsr_cli.commands.pack import pack_command

    with guard(verbose):
        pack_command(
            data=data,
            category=category,
            out=out,
            size=size,
            rgb=_value(rgb),
            overwrite=overwrite,
            ui=UI(quiet, verbose),
        )


@app.command("predict", epilog=EPILOGS["predict"])
def predict(
    run: RunOpt,
    inputs: Annotated[
        Optional[list[Path]],
        typer.Argument(
            help=(
                "Sample folders (xyz/ + rgb/), XYZ RGB file pairs, Eyecandies samples "
                "(ID_depth.png, ID_image_K.png or the .../data/ID prefix), or directories."
            ),
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Optional[Path], typer.Option("--out", help="Output folder (default: <run>/predictions).")
    ] = None,
    threshold: PredictThresholdOpt = None,
    data: Annotated[
        Optional[Path],
        typer.Option(
            "--data", help="Dataset root for --threshold auto (default: the training data)."
        ),
    ] = None,
    category: Annotated[
        Optional[str],
        typer.Option("--category", help="Class for --threshold auto (default: the detector's)."),
    ] = None,
    batch_size: BatchSizeOpt = None,
    backend: Annotated[
        Backend,
        typer.Option(
            "--backend",
            help=(
                "torch: the run's detector.pt; onnxruntime: a file written by export "
                "(--run FILE.onnx, or a run folder holding detector.onnx; needs threedsr\\[onnx])."
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
    """Anomaly maps for new scans: PNG overlays on RGB and depth, maps, and scores.json.

    An input that cannot be read is skipped with a "warning: FILE: problem" line and the others
    are written; the exit status is then 2 (as for any bad input), 0 when every input was read.
    """
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


@app.command("export", epilog=EPILOGS["export"])
def export(
    run: RunOpt,
    fmt: Annotated[
        ExportFormat,
        typer.Option(
            "--format",
            help="onnx (onnxruntime, ...; the checker and runtime need threedsr\\[onnx]) or "
            "torchscript.",
        ),
    ] = ExportFormat.onnx,
    out: Annotated[
        Optional[Path],
        typer.Option(
            "--out",
            help="File to write (default: <run>/detector.onnx or <run>/detector.torchscript.pt); "
            "the JSON sidecar goes to <out>.json. An existing file is replaced only with "
            "--overwrite, and only when it is an earlier export; a run's own files never.",
        ),
    ] = None,
    size: Annotated[
        Optional[int],
        typer.Option(
            "--size",
            callback=model_size,
            help="Model input side: the one the detector was made at (its default); another "
            "is refused.",
        ),
    ] = None,
    dynamic_batch: Annotated[
        bool, typer.Option("--dynamic-batch", help="Any batch size (default: batch 1).", metavar="")
    ] = False,
    threshold: ExportThresholdOpt = None,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite", help="Replace an earlier export at --out (nothing else).", metavar=""
        ),
    ] = False,
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
            overwrite=overwrite,
            method=None if method is None else _value(method),
            ui=UI(quiet, verbose),
        )


def main() -> None:
    """Console entry point (also ``python -m threedsr_cli``)."""
    check_typer_click()  # before Typer builds the command line, where a bad pair fails
    app(prog_name="threedsr-cli")  # not "python -m threedsr_cli" (tools/portable.sh)


if __name__ == "__main__":
    main()
