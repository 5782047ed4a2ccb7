"""Organized point-cloud files that 3D cameras and PCL / ROS pipelines write: PCD and PLY.

`read_point_cloud` gives the ``(H, W, 3)`` xyz (as stored: metres unless the reader is told
another unit) and the colour the file carries; `read_cloud_points` the points in file order,
organized or not (for `pcprep.organize_points`); formats in `pcprep.pcd_file` and
`pcprep.ply_file`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pcprep.camera import Distortion
from pcprep.cloud_points import CloudPoints, organized, projected
from pcprep.errors import PcprepError
from pcprep.pcd_file import decode_pcd, parse_pcd_header
from pcprep.ply_file import decode_ply
from pcprep.ply_header import parse_ply_header

__all__ = [
    "POINT_CLOUD_EXT",
    "PointCloudFile",
    "is_point_cloud_file",
    "point_cloud_has_colour",
    "read_cloud_points",
    "read_point_cloud",
]

#: Suffixes of the point-cloud files `read_point_cloud` reads.
POINT_CLOUD_EXT = (".pcd", ".ply")
_HEADER_BYTES = 1 << 16


@dataclass(frozen=True)
class PointCloudFile:
    """An organized cloud: ``xyz`` ``(H, W, 3)`` float32 with exact zeros for invalid points,
    ``rgb`` ``(H, W, 3)`` uint8 or ``None`` when the file carries no colour."""

    xyz: np.ndarray
    rgb: np.ndarray | None


def is_point_cloud_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a PCD or PLY file (by its suffix)."""
    return Path(path).suffix.lower() in POINT_CLOUD_EXT


def _read_bytes(path: Path, limit: int = -1) -> bytes:
    if path.is_dir():
        raise PcprepError.at(path, "is a folder, not a file")
    if not path.is_file():
        raise PcprepError.at(path, "file not found")
    try:
        with path.open("rb") as f:
            return f.read(limit)
    except OSError as exc:
        raise PcprepError.at(path, f"cannot read ({exc.strerror or exc})") from None


def read_point_cloud(
    path: str | os.PathLike[str],
    *,
    grid_shape: tuple[int, int] | None = None,
    focal_px: float | tuple[float, float] | None = None,
    principal_point: tuple[float, float] | None = None,
    distortion: Distortion | None = None,
) -> PointCloudFile:
    """Read an organized PCD (PCL: HEIGHT > 1) or PLY (a grid stated in its header) file.

    An unorganized cloud is refused unless ``grid_shape`` ``(H, W)`` and ``focal_px`` (the
    camera's resolution and focal length in pixels, ``principal_point`` ``(cx, cy)`` by default
    the grid's centre, ``distortion`` its lens) say how to project its camera-frame points
    onto the pixels (`pcprep.organize_points`; `pcprep.read_camera` reads all four from a
    calibration file); one of exactly H x W points already in the grid's row order (an
    ordered export whose header states no grid) is laid out as written. An organized cloud
    keeps its own grid and ignores them.

    Raises:
        PcprepError: a one-line message naming the file: an unorganized cloud without a grid to
            project onto, or one whose points mostly miss it (`pcprep.cloud_points.projected`);
            a malformed or truncated file, missing x / y / z.

    Example:
        >>> import tempfile
        >>> head = b"FIELDS x y z rgb\\nSIZE 4 4 4 4\\nTYPE F F F U\\nWIDTH 2\\nHEIGHT 2\\nDATA ascii\\n"
        >>> rows = b"0 0 1 16711680\\n1 0 1 65280\\nnan nan nan 255\\n1 1 1 0\\n"
        >>> with tempfile.TemporaryDirectory() as d:
        ...     _ = Path(d, "scan.pcd").write_bytes(head + rows)
        ...     cloud = read_point_cloud(Path(d, "scan.pcd"))
        >>> cloud.xyz.shape, cloud.xyz[1, 0].tolist(), cloud.rgb[0].tolist()
        ((2, 2, 3), [0.0, 0.0, 0.0], [[255, 0, 0], [0, 255, 0]])
    """
    path = Path(path)
    points = _decode(path)
    if points.grid is None and grid_shape is not None:
        xyz, rgb = projected(points, path, grid_shape, focal_px, principal_point, distortion)
    else:
        xyz, rgb = organized(points, path)
    return PointCloudFile(xyz, rgb)


def read_cloud_points(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray | None]:
    """The points of any PCD / PLY file, organized or not, in file order: ``(points, colours)``,
    ``(N, 3)`` float32 as stored (NaN / inf points kept) and ``(N, 3)`` uint8 or ``None``.

    For an unorganized cloud, which `read_point_cloud` refuses: `pcprep.organize_points`
    projects the points onto the camera's pixel grid. A PLY ``range_grid`` gives its vertices.

    Raises:
        PcprepError: a one-line message naming the file: a malformed or truncated file,
            missing x / y / z.

    Example:
        >>> import tempfile
        >>> head = b"FIELDS x y z\\nSIZE 4 4 4\\nTYPE F F F\\nWIDTH 3\\nHEIGHT 1\\nDATA ascii\\n"
        >>> with tempfile.TemporaryDirectory() as d:
        ...     _ = Path(d, "scan.pcd").write_bytes(head + b"0 0 1\\n1 0 2\\nnan 0 1\\n")
        ...     points, colours = read_cloud_points(Path(d, "scan.pcd"))
        >>> points.shape, points[1].tolist(), colours
        ((3, 3), [1.0, 0.0, 2.0], None)
    """
    cloud = _decode(Path(path))
    return cloud.xyz, cloud.rgb


def _decode(path: Path) -> CloudPoints:
    suffix = path.suffix.lower()
    if suffix not in POINT_CLOUD_EXT:
        raise PcprepError.at(path, f"not a point-cloud file ({', '.join(POINT_CLOUD_EXT)})")
    buf = _read_bytes(path)
    if not buf:
        raise PcprepError.at(path, f"cannot read {suffix[1:].upper()} (the file is empty)")
    decode = decode_pcd if suffix == ".pcd" else decode_ply
    try:
        points = decode(buf, path)
    except PcprepError:
        raise
    except (ValueError, IndexError, TypeError, OverflowError) as exc:  # a case the checks missed
        text = " ".join(str(exc).split())[:120]
        raise PcprepError.at(path, f"corrupt {suffix[1:].upper()} ({text})") from None
    return points


def point_cloud_has_colour(path: str | os.PathLike[str]) -> bool:
    """Whether a PCD / PLY file's header declares colour (``rgb`` / ``rgba``; ``red green
    blue``), reading only its start: to pair files without decoding them.

    Raises:
        PcprepError: the file is missing or its header is malformed.
    """
    path = Path(path)
    head = _read_bytes(path, _HEADER_BYTES)
    if not head:
        raise PcprepError.at(path, f"cannot read {path.suffix[1:].upper()} (the file is empty)")
    if path.suffix.lower() == ".pcd":
        return parse_pcd_header(head, path).has_colour()
    return parse_ply_header(head, path).has_colour()
