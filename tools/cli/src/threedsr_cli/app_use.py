"""The signatures of the commands that use a detector or its data: ``eval``, ``pack``, ``predict``
and ``export``.

Each parses its options (Typer) and hands them to its ``threedsr_cli.commands`` module, imported
inside the call so that ``threedsr-cli --help`` stays light. :mod:`threedsr_cli.app` registers
them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from threedsr_cli.commands.pack import RgbCodec
from threedsr_cli.errors import guard
from threedsr_cli.options import (
    Backend,
    BatchSizeOpt,
    CacheDirOpt,
    Device,
    DeviceOpt,
    ExportFormat,
    ExportThresholdOpt,
    MethodOpt,
    Precision,
    PrecisionOpt,
    PredictThresholdOpt,
    QuietOpt,
    RunOpt,
    SeedOpt,
    VerboseOpt,
    model_size,
    option_value,
)
from threedsr_cli.scan_units import (
    CameraOpt,
    DepthUnitOpt,
    FocalPxOpt,
    GridOpt,
    PrincipalPointOpt,
)
from threedsr_cli.ui import UI

__all__ = ["evaluate", "export", "pack", "predict"]


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
            device=option_value(device),
            precision=option_value(precision),
            method=None if method is None else option_value(method),
            seed=seed,
            ui=UI(quiet, verbose),
            overwrite=overwrite,
            allow_missing_masks=allow_missing_masks,
            batch_size=batch_size,
        )


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
    depth_unit: DepthUnitOpt = None,
    focal_px: FocalPxOpt = None,
    principal_point: PrincipalPointOpt = None,
    grid: GridOpt = None,
    camera: CameraOpt = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an earlier pack at --out.", metavar="")
    ] = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Pack a class's preprocessed scans into one compact file that train and eval take as --data.

    The train, validation and test splits at one model size, depth stored losslessly; predict
    --threshold auto takes it too.
    """
    from threedsr_cli.commands.pack import pack_command

    with guard(verbose):
        pack_command(
            data=data,
            category=category,
            out=out,
            size=size,
            rgb=option_value(rgb),
            depth_unit=None if depth_unit is None else option_value(depth_unit),
            focal_px=focal_px,
            principal_point=principal_point,
            grid=grid,
            camera=camera,
            overwrite=overwrite,
            ui=UI(quiet, verbose),
        )


def predict(
    run: RunOpt,
    inputs: Annotated[
        Optional[list[Path]],
        typer.Argument(
            help=(
                "Sample folders (xyz/ or depth/ + rgb/), XYZ RGB file pairs, Eyecandies samples "
                "(ID_depth.png, ID_image_K.png or the .../data/ID prefix), or directories "
                "(searched recursively)."
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
    raw_maps: Annotated[
        bool,
        typer.Option(
            "--raw-maps",
            help=(
                "Also write each map's values as a float32 TIFF at the scan's own height and "
                "width (<name>_map.tiff), for your own measurements."
            ),
            metavar="",
        ),
    ] = False,
    point_clouds: Annotated[
        bool,
        typer.Option(
            "--point-clouds",
            help=(
                "Also write each scan's points coloured by its map, with the map's value per "
                "point, as a PLY (<name>_map.ply) for 3D viewers such as CloudCompare."
            ),
            metavar="",
        ),
    ] = False,
    camera: Annotated[
        Optional[Path],
        typer.Option(
            "--camera",
            help="For a run trained without a camera: the calibration file of the camera whose "
            "unorganized PCD / PLY clouds are given (as train --camera takes it). Other inputs "
            "read as training read them; a run that has its camera refuses another.",
            show_default=False,
        ),
    ] = None,
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
            backend=option_value(backend),
            inputs=list(inputs or []),
            out=out,
            threshold=threshold,
            data=data,
            category=category,
            batch_size=batch_size,
            device=option_value(device),
            precision=option_value(precision),
            method=None if method is None else option_value(method),
            seed=seed,
            ui=UI(quiet, verbose),
            overwrite=overwrite,
            raw_maps=raw_maps,
            point_clouds=point_clouds,
            camera=camera,
        )


def export(
    run: RunOpt,
    fmt: Annotated[
        ExportFormat,
        typer.Option(
            "--format",
            help="onnx (onnxruntime, ...; the checker and runtime need threedsr\\[onnx]), "
            "torchscript (torch.jit, which torch deprecates) or pt2 (a torch.export program: "
            "torch.export.load, torch >= 2.11).",
        ),
    ] = ExportFormat.onnx,
    out: Annotated[
        Optional[Path],
        typer.Option(
            "--out",
            help="File to write (default: <run>/detector.onnx, detector.torchscript.pt or "
            "detector.pt2); "
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
    """Export the whole inference map as one graph: an input in, its anomaly map and score out.

    The graph holds the encoder, quantisations, subspace restriction, decoders, UNet, feature
    memory, fusion and smoothing, at the model's resolution. pcprep's preprocessing stays
    outside: call it with the sidecar's parameters.
    """
    from threedsr_cli.commands.export import export_command

    with guard(verbose):
        export_command(
            run=run,
            fmt=option_value(fmt),
            out=out,
            size=size,
            dynamic_batch=dynamic_batch,
            threshold=threshold,
            overwrite=overwrite,
            method=None if method is None else option_value(method),
            ui=UI(quiet, verbose),
        )
