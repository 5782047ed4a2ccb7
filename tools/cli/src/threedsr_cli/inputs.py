"""What ``predict`` accepts: MVTec sample folders, ``XYZ RGB`` pairs, Eyecandies samples and
directories of any of them (each sample an :class:`~threedsr_cli.input_items.InputItem`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from threedsr_cli.errors import CLIError
from threedsr_cli.input_items import (
    CLOUD_EXT,
    EYECANDIES_RGB_INDEX,
    GEOMETRY_EXT,
    IMAGE_EXT,
    InputItem,
    coloured_cloud,
    eyecandies_item,
    eyecandies_prefix,
    is_eyecandies_image,
    item_name,
    printable,
    sibling_rgb,
)

__all__ = ["EYECANDIES_RGB_INDEX", "InputItem", "eyecandies_prefix", "printable", "resolve_inputs"]


def _from_geometry_folder(geo_dir: Path, colour: bool) -> list[InputItem]:
    """An ``xyz/`` (MVTec 3D-AD, own scans) or ``depth/`` folder, paired by stem with ``../rgb/``:
    the generic layout that ``train`` reads, so a class's own test folder predicts as it trains.
    Without ``colour`` a file without its rgb is a scan without colour."""
    items = []
    for geo in sorted(geo_dir.iterdir()):
        suffix = geo.suffix.lower()
        if suffix not in GEOMETRY_EXT | {".png"} or not geo.is_file() or geo.name[0] == ".":
            continue
        rgb = sibling_rgb(geo)
        if rgb is None and (not colour or coloured_cloud(geo)):
            items.append(InputItem(item_name(geo), geo, None))
            continue
        if rgb is None:
            raise CLIError(
                f"{geo}: {geo_dir.name} without its rgb (expected "
                f"{geo_dir.parent / 'rgb'}/{geo.stem}.png){_no_colour(geo)}"
            )
        layout = "mvtec3d" if geo_dir.name == "xyz" and suffix in (".tif", ".tiff") else "pair"
        items.append(InputItem(item_name(geo), geo, rgb, layout))
    paired = {it.rgb for it in items}
    rgb_dir = geo_dir.parent / "rgb"
    for img in sorted(rgb_dir.iterdir()) if rgb_dir.is_dir() else []:
        if img.suffix.lower() in IMAGE_EXT | {".tif", ".tiff"} and img not in paired:
            if img.is_file() and img.name[0] != ".":
                raise CLIError(
                    f"{img}: an rgb image without its xyz (expected {geo_dir}/{img.stem}.*)"
                )
    return items


def _no_colour(geometry: Path) -> str:
    """What an error about a lone geometry file adds for a point cloud: why it cannot stand
    alone."""
    return "; the point cloud has no colour" if geometry.suffix.lower() in CLOUD_EXT else ""


def _own_depth_png(depth: Path, stem: str) -> bool:
    """A ``<stem>_depth.png`` with nothing of an Eyecandies sample next to it (no depth yaml, no
    ``<stem>_image_<k>.png``): an own depth map whose rgb is missing."""
    if depth.with_name(f"{stem}_info_depth.yaml").exists():
        return False
    return not any(is_eyecandies_image(p.stem) for p in depth.parent.glob(f"{stem}_image_*.png"))


def _flat_pairs(folder: Path, colour: bool) -> list[InputItem]:
    """``NAME_xyz``/``NAME_depth`` + ``NAME_rgb`` pairs, and Eyecandies samples: a
    ``<id>_depth.png`` without ``<id>_rgb`` (one item per sample, whatever else lies next to it)."""
    files = sorted(p for p in folder.iterdir() if p.is_file())
    rgbs = {p.stem[: -len("_rgb")]: p for p in files if p.stem.endswith("_rgb")}
    items = []
    for geo in files:
        for tag in ("_xyz", "_depth"):
            if geo.stem.endswith(tag) and geo.suffix.lower() in GEOMETRY_EXT | {".png"}:
                stem = geo.stem[: -len(tag)]
                if stem in rgbs or coloured_cloud(geo):
                    items.append(InputItem(printable(stem), geo, rgbs.get(stem)))
                elif geo.name.endswith("_depth.png") and not _own_depth_png(geo, stem):
                    items.append(eyecandies_item(geo.with_name(stem)))
                elif not colour:
                    items.append(InputItem(printable(stem), geo, None))
                else:
                    raise CLIError(
                        f"{geo}: {tag[1:]} without its rgb (expected {stem}_rgb.png next to "
                        f"it){_no_colour(geo)}"
                    )
    paired = {it.rgb for it in items}
    for stem, img in rgbs.items():
        if img not in paired and img.suffix.lower() in IMAGE_EXT and img.name[0] != ".":
            raise CLIError(
                f"{img}: an rgb image without its xyz (expected {stem}_xyz.tiff or "
                f"{stem}_depth.png next to it)"
            )
    return items


def _from_directory(folder: Path, colour: bool) -> list[InputItem]:
    # Every folder below is searched: own scans sorted into <type>/ folders hold their pairs
    # flat (NAME_depth.png + NAME_rgb.png) or in xyz/ | depth/ + rgb/, and Eyecandies keeps a
    # split's samples flat in <Class>/<split>/data/.
    folders = [folder, *sorted(p for p in folder.rglob("*") if p.is_dir())]
    items: list[InputItem] = []
    for d in folders:
        if any(part.startswith(".") for part in d.relative_to(folder).parts):
            continue  # e.g. an .incomplete-* staging folder of an earlier predict
        if d.name == "xyz" or (d.name == "depth" and (not colour or (d.parent / "rgb").is_dir())):
            items += _from_geometry_folder(d, colour)
        elif d.name not in ("rgb", "gt"):
            items += _flat_pairs(d, colour)
    if not items:
        raise CLIError(
            f"{folder}: no samples found (expected xyz/ or depth/ + rgb/ folders, "
            "NAME_xyz.tiff | NAME_depth.png + NAME_rgb.png pairs, NAME_xyz.pcd | .ply clouds with "
            "colour or Eyecandies ID_depth.png files)"
        )
    return items


def _from_file(p: Path, nxt: Path | None, colour: bool) -> tuple[InputItem, int]:
    """The sample that argument ``p`` (and perhaps the next one, its rgb) names; how many
    arguments it used."""
    suffix = p.suffix.lower()
    prefix = eyecandies_prefix(p)
    own_rgb = (
        nxt is not None
        and nxt.suffix.lower() in IMAGE_EXT
        and not nxt.stem.endswith(("_xyz", "_depth"))
        and eyecandies_prefix(nxt) is None
    )
    stem = p.name[: -len("_depth.png")]
    own_depth = p.name.endswith("_depth.png") and (own_rgb or _own_depth_png(p, stem))
    if prefix is not None and not own_depth:
        # an Eyecandies file; a "_depth.png" followed by an own rgb image, or with nothing of an
        # Eyecandies sample next to it, is an own depth map (DEPTH RGB)
        return eyecandies_item(prefix), 1
    if not p.exists():
        if p.is_symlink():
            raise CLIError(f"{p}: a broken or looping symbolic link")
        raise CLIError(f"{p}: not found")
    if suffix in GEOMETRY_EXT or p.stem.endswith(("_xyz", "_depth")):
        if own_rgb and nxt is not None:
            if nxt.is_dir():
                raise CLIError(f"{nxt}: is a folder, not an image (the rgb image of {p})")
            if not nxt.is_file():
                raise CLIError(f"{nxt}: not found (the rgb image of {p})")
            return InputItem(item_name(p), p, nxt), 2
        if p.parent.name in ("xyz", "depth") and sibling_rgb(p) is not None:
            layout = "mvtec3d" if p.parent.name == "xyz" and suffix in (".tif", ".tiff") else "pair"
            return InputItem(item_name(p), p, sibling_rgb(p), layout), 1
        if not colour or coloured_cloud(p):
            return InputItem(item_name(p), p, None), 1
        what = "depth" if p.stem.endswith("_depth") or p.parent.name == "depth" else "xyz"
        raise CLIError(
            f"{p}: {what} without its rgb (pass '{what.upper()} RGB', or keep the "
            f"layout xyz/NNN.tiff + rgb/NNN.png){_no_colour(p)}"
        )
    if suffix in IMAGE_EXT:
        raise CLIError(f"{p}: an rgb image without its xyz (pass 'XYZ RGB' pairs)")
    raise CLIError(f"{p}: not a point cloud (.tiff/.npy/.pcd/.ply), image or folder")


def resolve_inputs(args: Sequence[Path], *, colour: bool = True) -> list[InputItem]:
    """Turn ``predict``'s INPUT arguments into samples, in order, with unique names.

    An MVTec sample folder (``.../test/dent`` holding ``xyz/`` and ``rgb/``) or any directory
    (searched recursively for ``xyz/`` folders, ``NAME_xyz`` + ``NAME_rgb`` files and Eyecandies
    ``data/`` folders); an xyz file followed by its rgb image (``XYZ RGB`` pairs); an xyz file
    inside the MVTec layout alone; an Eyecandies sample named by its ``<id>_depth.png``, any
    ``<id>_image_<k>.png`` (the model still reads image 5, as in training) or its prefix
    ``.../data/<id>``. An Eyecandies sample named several times is predicted once. Without
    ``colour`` (a ``depth`` detector) an xyz or depth file without its rgb is a scan without
    colour rather than an error.

    Raises:
        CLIError: a missing path, an xyz without its rgb, an rgb without its xyz, an Eyecandies
            depth without its ``info_depth.yaml`` or rgb, or an empty folder.

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
        if p.is_dir():
            items += _from_directory(p, colour)
            i += 1
            continue
        item, used = _from_file(p, args[i + 1] if i + 1 < len(args) else None, colour)
        items.append(item)
        i += used
    seen_eye: set[Path] = set()
    kept = []
    for it in items:
        if it.layout == "eyecandies":
            key = it.geometry.resolve()
            if key in seen_eye:
                continue
            seen_eye.add(key)
        kept.append(it)
    # A repeated name gets the first free "-N": never one that another sample has (their files
    # would overwrite each other).
    taken = {it.name for it in kept}
    used: set[str] = set()
    unique = []
    for it in kept:
        name, n = it.name, 0
        while name in used or (n and name in taken):
            n += 1
            name = f"{it.name}-{n}"
        used.add(name)
        unique.append(it if name == it.name else replace(it, name=name))
    return unique
