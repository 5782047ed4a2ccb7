"""Options every command shares, and the checks of their values while parsing (the folders they
name are checked by :mod:`threedsr_cli.path_checks`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Optional

import typer

from threedsr_cli.errors import CLIError, option_error

__all__ = [
    "Backend",
    "BatchSizeOpt",
    "CacheDirOpt",
    "Device",
    "DeviceOpt",
    "ExportFormat",
    "ExportThresholdOpt",
    "PredictThresholdOpt",
    "Preset",
    "QuietOpt",
    "RunOpt",
    "SeedOpt",
    "Setup",
    "StageOnePreset",
    "TrainPrecisionOpt",
    "VerboseOpt",
    "at_least",
    "model_size",
    "parse_threshold",
    "stage1_size",
]


class Device(StrEnum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Precision(StrEnum):
    auto = "auto"
    fp32 = "fp32"
    tf32 = "tf32"
    bf16 = "bf16"


class Backend(StrEnum):
    torch = "torch"
    onnxruntime = "onnxruntime"


class ExportFormat(StrEnum):
    onnx = "onnx"
    torchscript = "torchscript"
    pt2 = "pt2"


class Setup(StrEnum):
    # vqcore.SETUPS, spelled out: importing vqcore here would load torch at start-up (a test
    # keeps the two equal).
    rgbd = "rgbd"
    depth = "depth"
    rgb = "rgb"


class Preset(StrEnum):
    paper = "paper"
    gpu = "gpu"
    cpu = "cpu"


class StageOnePreset(StrEnum):
    # vqcore.PRESETS, spelled out (no torch at start-up; a test keeps them equal)
    paper = "paper"
    cpu = "cpu"


class Method(StrEnum):
    # threedsr.METHODS, spelled out (no torch at start-up; a test keeps them equal).
    memory = "memory"
    dsr = "3dsr"
    fused = "fused"


CacheDirOpt = Annotated[
    Optional[Path], typer.Option("--cache-dir", help="Preprocessing cache (outside the dataset).")
]
RunOpt = Annotated[
    Path, typer.Option("--run", help="Run folder (or detector.pt) written by train.")
]
DeviceOpt = Annotated[
    Device, typer.Option("--device", help="Where to run: auto (CUDA when present), cpu or cuda.")
]
PrecisionOpt = Annotated[
    Precision,
    typer.Option(
        "--precision",
        help=(
            "Inference arithmetic: auto (bf16 on CUDA, fp32 on the CPU), fp32 (on CUDA with "
            "TF32 off: the reference's arithmetic), tf32 (TF32 on CUDA; on the CPU the same as "
            "fp32) or bf16 (fast on CPUs with AMX / AVX512-BF16; maps then differ slightly "
            "from fp32)."
        ),
    ),
]
TrainPrecisionOpt = Annotated[
    Optional[Precision],
    typer.Option(
        "--precision",
        help=(
            "Training arithmetic: fp32 (the reference, TF32 off on CUDA; default of --preset "
            "paper), tf32 (TF32 on CUDA, a speed option; on the CPU the same as fp32), bf16 "
            "(bf16 autocast, a GPU speed option; slow on CPUs without native bf16) or auto "
            "(bf16 on CUDA, fp32 on the CPU; default of --preset cpu)."
        ),
    ),
]
MethodOpt = Annotated[
    Optional[Method],
    typer.Option(
        "--method",
        help=(
            "Which of the detector's maps to use: memory (the descriptor memory), 3dsr (the "
            "3DSR network) or fused; a fused detector holds all three (default: the method it "
            "was made with)."
        ),
    ),
]


def option_value(option: object) -> str:
    """An enum option's string (``Device.cpu`` -> ``"cpu"``); a plain string unchanged."""
    return str(getattr(option, "value", option))


# ----------------------------------------------------------------- values checked while parsing
# Each check runs as the option's callback, so a bad value is one "error: --option: ..." line and
# exit 2 before any work, like every other bad input (Typer's own min=/max= would print its
# multi-line usage box instead).


def at_least(option: str, low: int) -> Callable[[int | None], int | None]:
    """A callback refusing integers below ``low`` (None = the option was not given)."""

    def check(value: int | None) -> int | None:
        if value is not None and value < low:
            what = "a non-negative integer" if low == 0 else f"an integer of at least {low}"
            option_error(f"{option}: must be {what} (got {value})")
        return value

    return check


def _sides(option: str, multiple: int, low: int) -> Callable[[int | None], int | None]:
    def check(value: int | None) -> int | None:
        if value is not None and (value % multiple or value < low):
            option_error(
                f"{option}: must be a multiple of {multiple} and at least {low} (got {value})"
            )
        return value

    return check


#: the model input side of a detector (train, export): the graph needs a multiple of 32, >= 64
model_size = _sides("--size", 32, 64)
#: the stage-1 training side (train-dada): a multiple of 8
stage1_size = _sides("--size", 8, 8)


def parse_threshold(value: str | None) -> float | str | None:
    """``None``, ``"auto"`` or a finite float (``--threshold`` of predict and export).

    Example:
        >>> parse_threshold("0.5"), parse_threshold("auto"), parse_threshold(None)
        (0.5, 'auto', None)
    """
    if value is None or value == "auto":
        return value
    try:
        t = float(value)
    except ValueError:
        raise CLIError(f"--threshold: expected a number or 'auto', got {value!r}") from None
    if not math.isfinite(t):
        raise CLIError(f"--threshold: must be finite, got {value!r}")
    return t


def _check_threshold(value: str | None) -> str | None:
    try:
        parse_threshold(value)
    except CLIError as exc:
        option_error(str(exc))
    return value


#: the largest seed torch's generators take (torch.manual_seed: 2**64 - 1)
MAX_SEED = 2**64 - 1


def _check_seed(value: int | None) -> int | None:
    value = at_least("--seed", 0)(value)
    if value is not None and value > MAX_SEED:
        option_error(f"--seed: must be an integer from 0 to {MAX_SEED} (got {value})")
    return value


SeedOpt = Annotated[
    int,
    typer.Option(
        "--seed",
        help="Seed of every random draw (reproducible); a non-negative integer.",
        callback=_check_seed,
    ),
]
#: --threshold of predict and export: one type, one metavar
PredictThresholdOpt = Annotated[
    Optional[str],
    typer.Option(
        "--threshold",
        metavar="<auto|number>",
        callback=_check_threshold,
        help="Image-score threshold: a number, or 'auto' (the largest score of the good "
        "validation scans of --data, computed now). Default: the one the detector calibrated "
        "the same way when it was made.",
        show_default=False,
    ),
]
ExportThresholdOpt = Annotated[
    Optional[str],
    typer.Option(
        "--threshold",
        metavar="<auto|number>",
        callback=_check_threshold,
        help="Image-score threshold the sidecar records: a number, or 'auto' (the default: "
        "the largest score of the good validation scans, calibrated when the detector was made).",
        show_default=False,
    ),
]
#: --batch-size of the inference commands (eval, predict): the detector's forward batch
BatchSizeOpt = Annotated[
    Optional[int],
    typer.Option(
        "--batch-size",
        callback=at_least("--batch-size", 1),
        help="Images per forward pass (default: 8 on CUDA, 1 on the CPU, where batching "
        "measured slower).",
        show_default=False,
    ),
]
QuietOpt = Annotated[
    bool,
    typer.Option("--quiet", "-q", help="No progress bars or info lines; results only.", metavar=""),
]
VerboseOpt = Annotated[
    bool,
    typer.Option("--verbose", "-v", help="More detail, and the traceback on errors.", metavar=""),
]
ResumeOpt = Annotated[
    bool,
    typer.Option(
        "--resume", help="Continue the unfinished run in --out (same settings).", metavar=""
    ),
]
OverwriteOpt = Annotated[
    bool,
    typer.Option(
        "--overwrite", help="Replace the run already in --out (a run this tool wrote).", metavar=""
    ),
]
