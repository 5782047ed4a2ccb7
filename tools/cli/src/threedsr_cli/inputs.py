"""What ``predict`` accepts: MVTec sample folders, ``XYZ RGB`` pairs, and directories."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from threedsr_cli.errors import CLIError

__all__ = ["InputItem", "resolve_inputs"]

GEOMETRY_EXT = {".tif", ".tiff", ".npy"}
IMAGE_EXT = {".png", ".jpg", ".jpeg", ".bmp"}


@dataclass(frozen=True)
class InputItem:
    """One sample to predict: a display name and how to read it (a pcprep ``Sample``)."""

    name: str
    geometry: Path
    rgb: Path | None

    def load(self) -> Any:
        import pcprep

        if self.rgb is None:
            return pcprep.read_mvtec3d(self.geometry)
        return pcprep.read_pair(self.geometry, self.rgb)


def _mvtec_rgb(xyz: Path) -> Path | None:
    folder = xyz.parent.parent / "rgb"
    for ext in (".png", ".jpg", ".jpeg"):
        if (folder / f"{xyz.stem}{ext}").is_file():
            return folder / f"{xyz.stem}{ext}"
    return None


def _name(geometry: Path) -> str:
    if geometry.parent.name == "xyz":
        return f"{geometry.parent.parent.name}_{geometry.stem}"
    stem = geometry.stem
    for tag in ("_xyz", "_depth"):
        if stem.endswith(tag):
            return stem[: -len(tag)]
    return stem


def _from_xyz_folder(xyz_dir: Path) -> list[InputItem]:
    items = []
    for geo in sorted(xyz_dir.iterdir()):
        if geo.suffix.lower() not in GEOMETRY_EXT or not geo.is_file():
            continue
        if _mvtec_rgb(geo) is None:
            raise CLIError(
                f"{geo}: xyz without its rgb (expected {xyz_dir.parent / 'rgb'}/{geo.stem}.png)"
            )
        items.append(InputItem(_name(geo), geo, None))
    return items


def _flat_pairs(folder: Path) -> list[InputItem]:
    files = sorted(p for p in folder.iterdir() if p.is_file())
    rgbs = {p.stem[: -len("_rgb")]: p for p in files if p.stem.endswith("_rgb")}
    items = []
    for geo in files:
        for tag in ("_xyz", "_depth"):
            if geo.stem.endswith(tag) and geo.suffix.lower() in GEOMETRY_EXT | {".png"}:
                stem = geo.stem[: -len(tag)]
                if stem not in rgbs:
                    raise CLIError(
                        f"{geo}: xyz without its rgb (expected {stem}_rgb.png next to it)"
                    )
                items.append(InputItem(stem, geo, rgbs[stem]))
    return items


def _from_directory(folder: Path) -> list[InputItem]:
    if (folder / "xyz").is_dir():
        return _from_xyz_folder(folder / "xyz")
    items: list[InputItem] = []
    for xyz_dir in sorted(p for p in folder.rglob("xyz") if p.is_dir()):
        items += _from_xyz_folder(xyz_dir)
    items += _flat_pairs(folder)
    if not items:
        raise CLIError(
            f"{folder}: no samples found (expected xyz/NNN.tiff + rgb/NNN.png folders or "
            "NAME_xyz.tiff + NAME_rgb.png pairs)"
        )
    return items


def resolve_inputs(args: Sequence[Path]) -> list[InputItem]:
    """Turn ``predict``'s INPUT arguments into samples, in order, with unique names.

    An MVTec sample folder (``.../test/dent`` holding ``xyz/`` and ``rgb/``) or any directory
    (searched recursively for ``xyz/`` folders and ``NAME_xyz`` + ``NAME_rgb`` files); an xyz file
    followed by its rgb image (``XYZ RGB`` pairs); or an xyz file inside the MVTec layout alone.

    Raises:
        CLIError: a missing path, an xyz without its rgb, an rgb without its xyz, or an empty folder.

    Example:
        >>> resolve_inputs([Path("/nonexistent.tiff")])
        Traceback (most recent call last):
        ...
        threedsr_cli.errors.CLIError: /nonexistent.tiff: not found
    """
    items: list[InputItem] = []
    args = [Path(a) for a in args]
    i = 0
    while i < len(args):
        p = args[i]
        if not p.exists():
            raise CLIError(f"{p}: not found")
        if p.is_dir():
            items += _from_directory(p)
            i += 1
            continue
        suffix = p.suffix.lower()
        nxt = args[i + 1] if i + 1 < len(args) else None
        if suffix in GEOMETRY_EXT or p.stem.endswith(("_xyz", "_depth")):
            if (
                nxt is not None
                and nxt.suffix.lower() in IMAGE_EXT
                and not nxt.stem.endswith(("_xyz", "_depth"))
            ):
                if not nxt.is_file():
                    raise CLIError(f"{nxt}: not found (the rgb image of {p})")
                items.append(InputItem(_name(p), p, nxt))
                i += 2
                continue
            if p.parent.name == "xyz" and _mvtec_rgb(p) is not None:
                items.append(InputItem(_name(p), p, None))
                i += 1
                continue
            raise CLIError(
                f"{p}: xyz without its rgb (pass it as 'XYZ RGB', or keep the MVTec "
                "layout xyz/NNN.tiff + rgb/NNN.png)"
            )
        if suffix in IMAGE_EXT:
            raise CLIError(f"{p}: an rgb image without its xyz (pass 'XYZ RGB' pairs)")
        raise CLIError(f"{p}: not a point cloud (.tiff/.npy), image or folder")
    seen: dict[str, int] = {}
    unique = []
    for it in items:
        n = seen.get(it.name, 0)
        seen[it.name] = n + 1
        unique.append(it if n == 0 else InputItem(f"{it.name}-{n}", it.geometry, it.rgb))
    return unique
