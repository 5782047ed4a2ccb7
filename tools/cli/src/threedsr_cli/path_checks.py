"""The folders a command is given, checked before any work: the dataset root and the stage-1
image folder exist and hold something, and nothing is written inside a dataset (it is only
read)."""

from __future__ import annotations

from pathlib import Path

from threedsr_cli.errors import CLIError

__all__ = [
    "check_cache_dir",
    "check_data_root",
    "check_image_folder",
    "check_outside_data",
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
