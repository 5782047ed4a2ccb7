"""``threedsr-cli pack``: one class's preprocessed splits in one compact file (``.3dsrpack``)
that ``train``, ``eval`` and ``predict --threshold auto`` take as ``--data``."""

from __future__ import annotations

import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from threedsr_cli.errors import CLIError
from threedsr_cli.locks import folder_lock
from threedsr_cli.ownership import temporaries_of
from threedsr_cli.ui import UI

if TYPE_CHECKING:
    from threedsr import Pack

__all__ = ["DEFAULT_PACK_SIZE", "RgbCodec", "check_pack_target", "open_pack", "pack_command"]


class RgbCodec(StrEnum):
    """How a pack stores colour (``threedsr.RGB_CODECS``)."""

    exact = "exact"
    uint8 = "uint8"


#: The side of the memory method and of the cpu 3DSR schedule (rgbd and depth).
DEFAULT_PACK_SIZE = 256


def open_pack(path: Path | str | None) -> Pack | None:
    """The pack at ``path``, or None when ``path`` is no pack (a dataset folder, nothing).

    Raises:
        ThreedsrError: a pack that is truncated, corrupt or of another format version.
    """
    import threedsr

    return threedsr.Pack(path) if threedsr.is_pack(path) else None


def check_pack_target(out: Path, data: Path, overwrite: bool) -> None:
    """``--out`` ends in the pack suffix (which .gitignore lists), lies outside the dataset, and
    replaces only an earlier pack, with ``--overwrite``.

    Example:
        >>> check_pack_target(Path("/tmp/x.npz"), Path("/d"), False)
        Traceback (most recent call last):
        ...
        threedsr_cli.errors.CLIError: /tmp/x.npz: --out must end in .3dsrpack (the suffix .gitignore keeps out of git)
    """
    import threedsr

    from threedsr_cli.outputs import check_output_folder
    from threedsr_cli.path_checks import check_outside_data

    if out.suffix != threedsr.PACK_SUFFIX:
        raise CLIError(
            f"{out}: --out must end in {threedsr.PACK_SUFFIX} (the suffix .gitignore keeps "
            "out of git)"
        )
    check_outside_data(out, data, "--out")
    if out.is_dir():
        raise CLIError(f"{out}: --out is a folder, not a file")
    if out.exists() or out.is_symlink():
        if not overwrite:
            raise CLIError(f"{out}: exists; pass --overwrite to replace it")
        if not threedsr.is_pack(out):
            raise CLIError(f"{out}: exists and was not written by pack; not replaced")
    # Made by the lock if missing, as export, eval and predict make theirs.
    check_output_folder(out.parent)


def pack_command(
    *,
    data: Path,
    category: str,
    out: Path,
    size: int | None,
    rgb: str,
    overwrite: bool,
    ui: UI,
    depth_unit: str | None = None,
    focal_px: str | None = None,
    principal_point: str | None = None,
    grid: str | None = None,
    camera: Path | None = None,
) -> Pack:
    import pcprep
    import threedsr

    from threedsr_cli.libs import check_category
    from threedsr_cli.scan_units import scan_read_options

    if threedsr.is_pack(data):
        raise CLIError(f"{data}: is a pack already; --data takes the dataset folder")
    check_category(data, category)
    out = Path(out)
    check_pack_target(out, Path(data), overwrite)
    read_options = scan_read_options(
        Path(data),
        None,
        depth_unit=depth_unit,
        focal_px=focal_px,
        principal_point=principal_point,
        grid=grid,
        camera=camera,
    )
    side = DEFAULT_PACK_SIZE if size is None else size
    # The keywords train and eval would use on this folder (detector.pt's "preprocess").
    params = threedsr.PreprocessConfig(**read_options).kwargs(side, pcprep.detect_layout(data))
    start = time.perf_counter()
    # One writer per folder, as export: a second pack to the same --out stops at once instead
    # of both writing it and the last one winning.
    with folder_lock(out.parent):
        for tmp in temporaries_of(out.parent, [out.name]):
            tmp.unlink()  # what a killed pack of this file left
        check_pack_target(out, Path(data), overwrite)  # again: another pack may have written it
        with ui.stage(f"pack {category}") as progress:
            pack = threedsr.write_pack(
                out, data, category, params, rgb=rgb, progress=progress, read_options=read_options
            )
    seconds = time.perf_counter() - start
    counts = ", ".join(f"{split} {len(s)}" for split, s in pack.samples.items())
    mib = Path(out).stat().st_size / 2**20
    ui.info(
        f"wrote {out}: {category} at {side} px ({counts} scans), rgb {rgb}, "
        f"{mib:.1f} MiB in {seconds:.0f} s"
    )
    return pack
