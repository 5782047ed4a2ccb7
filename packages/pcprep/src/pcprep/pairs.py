"""Pairing of own scans in a generic folder: geometry files with their colour images."""

from __future__ import annotations

from pathlib import Path

from pcprep.errors import PcprepError
from pcprep.pointcloud_files import POINT_CLOUD_EXT

__all__ = ["generic_pairs", "has_generic_pairs"]

IMG_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
GEO_EXT = (".tiff", ".tif", ".npy", ".png", *POINT_CLOUD_EXT)


def generic_pairs(folder: Path) -> list[tuple[Path, Path | None, Path | None]]:
    """(geometry, rgb, gt) triples in ``folder``: ``rgb/`` + ``xyz/`` or ``depth/`` (+ ``gt/``)
    subfolders paired by stem, or flat ``<stem>_rgb.*`` + ``<stem>_xyz.*``/``<stem>_depth.*``.

    A geometry file without a colour image gets rgb ``None`` (``rgb/`` may be absent): a PCD /
    PLY cloud's own colour is then its colour, and any other scan has none, which only a
    ``depth`` detector takes (the others refuse it, naming the file). So a scan that lost its
    colour image stays in its split, and says so. A colour image without its geometry is an
    error: it must not drop out of a split unseen."""
    pairs: list[tuple[Path, Path | None, Path | None]] = []
    geo_dir = next((folder / d for d in ("xyz", "depth") if (folder / d).is_dir()), None)
    if geo_dir is not None:
        rgbs = {p.stem: p for p in _files(folder / "rgb") if p.suffix.lower() in IMG_EXT}
        gts = {p.stem: p for p in _files(folder / "gt")}
        geos = [p for p in _files(geo_dir) if p.suffix.lower() in GEO_EXT]
        for geo in geos:
            if geo.stem not in rgbs and (folder / "rgb").is_dir():
                _not_a_file(folder / "rgb", geo.stem, geo)
            pairs.append((geo, rgbs.get(geo.stem), gts.get(geo.stem)))
        lost = _lost(rgbs, {g.stem for g in geos})
        if lost:
            raise PcprepError.at(rgbs[lost[0]], f"no point cloud or depth {lost[0]}.* in {geo_dir}")
        return pairs
    files = _files(folder)
    rgbs = {p.stem[: -len("_rgb")]: p for p in files if p.stem.endswith("_rgb")}
    gts = {p.stem[: -len("_gt")]: p for p in files if p.stem.endswith("_gt")}
    stems = set()
    for geo in files:
        for tag in ("_xyz", "_depth"):
            if geo.stem.endswith(tag) and geo.suffix.lower() in GEO_EXT:
                stem = geo.stem[: -len(tag)]
                if stem not in rgbs:
                    _not_a_file(folder, f"{stem}_rgb", geo)
                pairs.append((geo, rgbs.get(stem), gts.get(stem)))
                stems.add(stem)
    lost = _lost(rgbs, stems)
    if lost:
        raise PcprepError.at(
            rgbs[lost[0]], f"no point cloud {lost[0]}_xyz.* or depth {lost[0]}_depth.* next to it"
        )
    return pairs


def _files(folder: Path) -> list[Path]:
    """Sorted files of ``folder``; hidden ones (``._x.png`` of macOS copies) are not scans."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def _not_a_file(folder: Path, stem: str, geo: Path) -> None:
    """The colour image's name taken by a folder or a dangling link is named as such (it looks
    like the missing file in a listing)."""
    for p in sorted(folder.iterdir()):
        if p.stem == stem and p.suffix.lower() in IMG_EXT and not p.is_file():
            what = "a folder" if p.is_dir() else "a broken or looping symbolic link"
            raise PcprepError.at(p, f"is {what}, not the colour image of {geo.name}")


def _lost(rgbs: dict[str, Path], stems: set[str]) -> list[str]:
    """Stems of colour images whose geometry is missing, sorted."""
    return sorted(set(rgbs) - stems)


def has_generic_pairs(folder: Path) -> bool:
    try:
        return bool(generic_pairs(folder))
    except PcprepError:
        return True  # pairs exist but are broken: indexing will report them
