"""Options every command shares, and the small validations that need no library."""

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
    "TrainPrecisionOpt",
    "VerboseOpt",
    "at_least",
    "check_cache_dir",
    "check_data_root",
    "check_image_folder",
    "check_outside_data",
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


SeedOpt = Annotated[
    int,
    typer.Option(
        "--seed",
        help="Seed of every random draw (reproducible); a non-negative integer.",
        callback=at_least("--seed", 0),
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

_IMAGE_EXT = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def check_data_root(root: Path) -> Path:
    """The dataset root must be an existing, non-empty folder.

    Example:
        >>> check_data_root(Path("/nonexistent/data"))
        Traceback (most recent call last):
        ...
        threedsr_cli.errors.CLIError: /nonexistent/data: data root not found
    """
    root = Path(root)
    _check_link(root, "data root")
    if not root.exists():
        raise CLIError(f"{root}: data root not found")
    if not root.is_dir():
        raise CLIError(f"{root}: data root is not a folder")
    if not any(p for p in root.iterdir() if not p.name.startswith(".")):
        raise CLIError(f"{root}: data root is empty")
    return root


def _check_link(path: Path, what: str) -> None:
    """A symbolic-link loop or a dangling link is named as such, not as "not found"."""
    if not path.is_symlink() and not any(p.is_symlink() for p in path.parents):
        return
    try:
        path.resolve(strict=True)
    except RuntimeError:  # Python < 3.13
        raise CLIError(f"{path}: {what} is a symbolic-link loop") from None
    except OSError as exc:
        if exc.errno == 40:  # ELOOP
            raise CLIError(f"{path}: {what} is a symbolic-link loop") from None
        if path.is_symlink():
            raise CLIError(f"{path}: {what} is a broken symbolic link") from None


def check_outside_data(path: Path | None, data: Path | None, option: str) -> None:
    """An output folder (``option``) must lie outside the dataset: the dataset is only read.

    Example:
        >>> check_outside_data(Path("/d/mvtec/out"), Path("/d/mvtec"), "--out")
        Traceback (most recent call last):
        ...
        threedsr_cli.errors.CLIError: /d/mvtec/out: --out lies inside the dataset /d/mvtec; choose a folder outside it (the dataset is never written)
    """
    if path is None or data is None:
        return
    target, root = Path(path).resolve(), Path(data).resolve()
    if target == root or root in target.parents:
        raise CLIError(
            f"{path}: {option} lies inside the dataset {data}; choose a folder outside "
            "it (the dataset is never written)"
        )


def check_cache_dir(cache_dir: Path | None, data: Path) -> None:
    """The preprocessing cache must lie outside the dataset (the dataset is only read).

    Example:
        >>> check_cache_dir(Path("/d/mvtec/cache"), Path("/d/mvtec"))
        Traceback (most recent call last):
        ...
        threedsr_cli.errors.CLIError: /d/mvtec/cache: --cache-dir lies inside the dataset /d/mvtec; choose a folder outside it (the dataset is never written)
    """
    if cache_dir is None:
        return
    check_outside_data(cache_dir, data, "--cache-dir")
    cache = Path(cache_dir).resolve()
    if cache.exists() and not cache.is_dir():
        raise CLIError(f"{cache_dir}: --cache-dir exists and is not a folder")


def check_image_folder(folder: Path) -> Path:
    """A folder tree that holds at least one image (stage-1 RGB source)."""
    folder = Path(folder)
    _check_link(folder, "image folder")
    if folder.exists() and not folder.is_dir():
        raise CLIError(f"{folder}: image folder is a file, not a folder")
    if not folder.is_dir():
        raise CLIError(f"{folder}: image folder not found")
    for p in folder.rglob("*"):
        if p.suffix.lower() in _IMAGE_EXT and p.is_file():
            return folder
    raise CLIError(f"{folder}: holds no images (.png, .jpg, ...)")
