"""Pairing of own scans in a generic folder: geometry files with their colour images."""

from __future__ import annotations

from pathlib import Path

from pcprep.errors import PcprepError

__all__ = ["generic_pairs", "has_generic_pairs"]

IMG_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
GEO_EXT = (".tiff", ".tif", ".npy", ".png")


def generic_pairs(folder: Path) -> list[tuple[Path, Path, Path | None]]:
    """(geometry, rgb, gt) triples in ``folder``: ``rgb/`` + ``xyz/`` or ``depth/`` (+ ``gt/``)
    subfolders paired by stem, or flat ``<stem>_rgb.*`` + ``<stem>_xyz.*``/``<stem>_depth.*``."""
    pairs: list[tuple[Path, Path, Path | None]] = []
    geo_dir = next((folder / d for d in ("xyz", "depth") if (folder / d).is_dir()), None)
    if geo_dir is not None and (folder / "rgb").is_dir():
        rgbs = {
            p.stem: p for p in sorted((folder / "rgb").iterdir()) if p.suffix.lower() in IMG_EXT
        }
        gts = (
            {p.stem: p for p in sorted((folder / "gt").glob("*"))}
            if (folder / "gt").is_dir()
            else {}
        )
        for geo in sorted(geo_dir.iterdir()):
            if geo.suffix.lower() not in GEO_EXT:
                continue
            if geo.stem not in rgbs:
                raise PcprepError.at(geo, f"no colour image {geo.stem}.* in {folder / 'rgb'}")
            pairs.append((geo, rgbs[geo.stem], gts.get(geo.stem)))
        return pairs
    files = sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
    rgbs = {p.stem[: -len("_rgb")]: p for p in files if p.stem.endswith("_rgb")}
    gts = {p.stem[: -len("_gt")]: p for p in files if p.stem.endswith("_gt")}
    for geo in files:
        for tag in ("_xyz", "_depth"):
            if geo.stem.endswith(tag) and geo.suffix.lower() in GEO_EXT:
                stem = geo.stem[: -len(tag)]
                if stem not in rgbs:
                    raise PcprepError.at(geo, f"no colour image {stem}_rgb.* next to it")
                pairs.append((geo, rgbs[stem], gts.get(stem)))
    return pairs


def has_generic_pairs(folder: Path) -> bool:
    try:
        return bool(generic_pairs(folder))
    except PcprepError:
        return True  # pairs exist but are broken: indexing will report them
