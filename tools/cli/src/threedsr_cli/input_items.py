"""One sample that ``predict`` reads (`InputItem`), the Eyecandies and MVTec 3D-AD naming rules it
follows, and `printable` names; :mod:`threedsr_cli.inputs` finds the samples."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from threedsr_cli.errors import CLIError

if TYPE_CHECKING:
    from pcprep import Sample

__all__ = [
    "CLOUD_EXT",
    "EYECANDIES_RGB_INDEX",
    "GEOMETRY_EXT",
    "IMAGE_EXT",
    "InputItem",
    "coloured_cloud",
    "eyecandies_item",
    "eyecandies_prefix",
    "is_eyecandies_image",
    "item_name",
    "printable",
    "sibling_rgb",
]

GEOMETRY_EXT = {".tif", ".tiff", ".npy", ".pcd", ".ply"}
#: Point clouds that may carry their own colour (then they need no rgb image): pcprep's
#: POINT_CLOUD_EXT, copied because importing pcprep here would load numba at start-up.
CLOUD_EXT = {".pcd", ".ply"}
IMAGE_EXT = {".png", ".jpg", ".jpeg", ".bmp"}
#: The Eyecandies light that train/eval read (pcprep's default: 5, all lights on); predict reads
#: the same one whichever ``<id>_image_<k>.png`` names the sample, so its inputs match training.
EYECANDIES_RGB_INDEX = 5
_EYE_IMAGE = re.compile(r"^(?P<id>.+)_image_\d+$")


def printable(value: Any) -> Any:
    """``value`` (a string, or a JSON-able dict / list of them) with every undecodable byte of a
    file name (kept by Python as a lone surrogate, ``os.fsdecode``) written as ``\\xNN``: text
    that UTF-8 files, JSON readers, terminals and matplotlib all accept.

    Example:
        >>> printable("scan_\\udcff.tiff")
        'scan_\\\\xff.tiff'
        >>> printable({"d\\udce9nt": ["ok"]})
        {'d\\\\xe9nt': ['ok']}
    """
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    if isinstance(value, dict):
        return {printable(k): printable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [printable(v) for v in value]
    return value


@dataclass(frozen=True)
class InputItem:
    """One sample to predict: a display name and how to read it (a pcprep ``Sample``).

    ``layout`` is ``"mvtec3d"`` (``rgb`` found by the reader), ``"pair"`` (own xyz/depth + rgb;
    ``rgb`` ``None`` for a PCD / PLY cloud with its own colour) or
    ``"eyecandies"`` (``geometry`` is ``<id>_depth.png``, ``rgb`` its ``<id>_image_5.png``).
    """

    name: str
    geometry: Path
    rgb: Path | None
    layout: str = "pair"
    #: predict --camera's reader keywords, for a PCD / PLY geometry only
    cloud_options: tuple[tuple[str, Any], ...] = ()

    def load(self, read_options: Mapping[str, Any] | None = None) -> Sample:
        """Read the sample; ``read_options`` are the detector's (own scans' ``depth_unit`` and
        ``focal_px``), so the scan reads as training read it. A cloud also takes
        ``cloud_options`` (a depth map keeps the back-projection training used)."""
        import pcprep

        opts = dict(read_options or {})
        if self.geometry.suffix.lower() in CLOUD_EXT:
            opts.update(self.cloud_options)
        if self.layout == "eyecandies":
            # The call pcprep.SampleRef.load makes for eval's Eyecandies refs (an own-scan unit
            # does not apply): the same metres, back-projection and RGB, hence the same inputs.
            return pcprep.read_eyecandies(eyecandies_prefix(self.geometry))
        if self.rgb is None and self.layout == "mvtec3d":
            return pcprep.read_mvtec3d(self.geometry, depth_unit=opts.get("depth_unit"))
        # An MVTec sample reads as the pair it is (same xyz, same rgb); so does a depth map that
        # an own-scan xyz/ folder holds, which train's generic reader accepts.
        return pcprep.read_pair(self.geometry, self.rgb, **opts)


def eyecandies_prefix(path: Path) -> Path | None:
    """The sample prefix (``.../data/25``) that an Eyecandies path names, else ``None``.

    ``<id>_depth.png``, an ``<id>_image_<k>.png`` next to ``<id>_depth.png``, any ``<id>_*`` file
    next to ``<id>_info_depth.yaml``, or the prefix itself when ``<prefix>_depth.png`` exists.

    Example:
        >>> eyecandies_prefix(Path("CandyCane/test_public/data/25_depth.png")).name
        '25'
        >>> eyecandies_prefix(Path("scan.tiff")) is None
        True
    """
    name = path.name
    if name.endswith("_depth.png"):
        return path.with_name(name[: -len("_depth.png")])
    if not path.exists() and path.with_name(f"{name}_depth.png").is_file():
        return path
    if not path.is_file():
        return None
    m = _EYE_IMAGE.match(path.stem)
    if m and path.suffix.lower() == ".png" and path.with_name(f"{m['id']}_depth.png").is_file():
        return path.with_name(m["id"])
    for k in (i for i, c in enumerate(name) if c == "_"):
        if path.with_name(f"{name[:k]}_info_depth.yaml").is_file():
            return path.with_name(name[:k])
    return None


def eyecandies_item(prefix: Path) -> InputItem:
    """Check that the files `pcprep.read_eyecandies` needs are there (their contents are read
    later, naming the file on any problem)."""
    depth = prefix.with_name(f"{prefix.name}_depth.png")
    if not depth.is_file():
        raise CLIError(f"{depth}: not found (the depth of Eyecandies sample {prefix.name})")
    info = prefix.with_name(f"{prefix.name}_info_depth.yaml")
    if not info.is_file():
        raise CLIError(
            f"{depth}: Eyecandies depth without its {info.name} (needed for metres; "
            "for an own depth map pass 'DEPTH RGB')"
        )
    rgb = prefix.with_name(f"{prefix.name}_image_{EYECANDIES_RGB_INDEX}.png")
    if not rgb.is_file():
        raise CLIError(
            f"{depth}: Eyecandies depth without its rgb (expected {rgb.name} next to it)"
        )
    data = prefix.parent
    name = f"{data.parent.parent.name}_{prefix.name}" if data.name == "data" else prefix.name
    return InputItem(printable(name), depth, rgb, "eyecandies")


def sibling_rgb(xyz: Path) -> Path | None:
    folder = xyz.parent.parent / "rgb"
    for ext in (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"):
        if (folder / f"{xyz.stem}{ext}").is_file():
            return folder / f"{xyz.stem}{ext}"
    return None


def coloured_cloud(geometry: Path) -> bool:
    """Whether ``geometry`` is a PCD / PLY cloud whose header declares colour (then it stands
    alone); a malformed header is reported when the sample is read."""
    if geometry.suffix.lower() not in CLOUD_EXT:
        return False
    import pcprep

    try:
        return pcprep.point_cloud_has_colour(geometry)
    except pcprep.PcprepError:
        return True  # read it: the reader's error names the file and what is wrong


def item_name(geometry: Path) -> str:
    """The sample's output name (printable: its files and titles take any file name)."""
    if geometry.parent.name in ("xyz", "depth"):
        return printable(f"{geometry.parent.parent.name}_{geometry.stem}")
    stem = geometry.stem
    for tag in ("_xyz", "_depth"):
        if stem.endswith(tag):
            return printable(stem[: -len(tag)])
    return printable(stem)


def is_eyecandies_image(stem: str) -> bool:
    """Whether ``stem`` is an Eyecandies ``<id>_image_<k>``."""
    return _EYE_IMAGE.match(stem) is not None
