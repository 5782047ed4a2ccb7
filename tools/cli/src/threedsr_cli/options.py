"""Options every command shares, and the small validations that need no library."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from threedsr_cli.errors import CLIError

__all__ = [
    "Backend",
    "Device",
    "DeviceOpt",
    "ExportFormat",
    "Preset",
    "QuietOpt",
    "SeedOpt",
    "Setup",
    "TrainPrecisionOpt",
    "VerboseOpt",
    "check_cache_dir",
    "check_data_root",
    "check_image_folder",
]


class Device(StrEnum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Precision(StrEnum):
    auto = "auto"
    fp32 = "fp32"
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
    cpu = "cpu"


class Method(StrEnum):
    # threedsr.METHODS, spelled out (no torch at start-up; a test keeps them equal).
    memory = "memory"
    dsr = "3dsr"
    fused = "fused"


DeviceOpt = Annotated[
    Device, typer.Option("--device", help="Where to run: auto (CUDA when present), cpu or cuda.")
]
PrecisionOpt = Annotated[
    Precision,
    typer.Option(
        "--precision",
        help=(
            "Inference arithmetic: auto (bf16 on CUDA, fp32 on the CPU), fp32, or bf16 "
            "(fast on CPUs with AMX / AVX512-BF16; maps then differ slightly from fp32)."
        ),
    ),
]
TrainPrecisionOpt = Annotated[
    Precision | None,
    typer.Option(
        "--precision",
        help=(
            "Training arithmetic: fp32 (the reference; default of --preset paper), bf16 "
            "(bf16 autocast, a GPU speed option; slow on CPUs without native bf16) or auto "
            "(bf16 on CUDA, fp32 on the CPU; default of --preset cpu)."
        ),
    ),
]
MethodOpt = Annotated[
    Method | None,
    typer.Option(
        "--method",
        help=(
            "Which of the detector's maps to use: memory (the descriptor memory), 3dsr (the "
            "3DSR network) or fused; a fused detector holds all three (default: the method it "
            "was made with)."
        ),
    ),
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of every random draw (reproducible).")]
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
    cache, root = Path(cache_dir).resolve(), Path(data).resolve()
    if cache == root or root in cache.parents:
        raise CLIError(
            f"{cache_dir}: --cache-dir lies inside the dataset {data}; choose a folder outside "
            "it (the dataset is never written)"
        )
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
