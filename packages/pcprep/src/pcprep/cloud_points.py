"""A decoded point-cloud file (points in file order, colours, the grid its header states) and
the step that lays it out as the organized ``(H, W, 3)`` arrays pcprep works on."""

from __future__ import annotations

import dataclasses
import os
import warnings
from dataclasses import dataclass

import numpy as np

from pcprep.camera import Distortion, distort
from pcprep.errors import PcprepError
from pcprep.organize import count_landing, organize_points, pinhole

__all__ = ["CloudPoints", "ascii_numbers", "organized", "projected", "unpack_rgb"]

#: `projected` refuses a cloud of which more of the valid points fall off the grid or behind the
#: camera: the sign of points outside the camera's frame or of another camera's intrinsics. A
#: camera's own cloud lies inside its view; a principal point a few pixels off loses border rows.
MAX_LOST_FRACTION = 0.05
#: A cloud of exactly H x W points that the pinhole puts within this many pixels (median) of
#: their row-major places is an ordered export whose header states no grid (an "ordered" PLY):
#: it is laid out as written, exactly, not projected (a lens's distortion, which a pinhole
#: lacks, moves points by a pixel or two, and a projection would shuffle them).
ORDERED_SHIFT_PX = 2.0


@dataclass(frozen=True)
class CloudPoints:
    """What a PCD / PLY decoder found.

    Attributes:
        xyz: ``(N, 3)`` float coordinates in file order.
        rgb: ``(N, 3)`` uint8 colours, or ``None``.
        grid: ``(rows, cols)`` the header states, or ``None`` (unorganized).
        why_unorganized: what the header lacks (for the error when ``grid`` is ``None``).
        cells: for grids that omit invalid points (PLY ``range_grid``): the vertex index of each
            of the ``rows * cols`` cells, -1 for an empty one; ``None``: one point per cell.
    """

    xyz: np.ndarray
    rgb: np.ndarray | None
    grid: tuple[int, int] | None
    why_unorganized: str = ""
    cells: np.ndarray | None = None


def ascii_numbers(data: bytes, path: str | os.PathLike[str], what: str) -> np.ndarray:
    """Every whitespace-separated number of ``data`` as float64 (``nan``, ``inf`` included).

    numpy's C text parser: half the time of splitting into a string array and converting it.

    Example:
        >>> ascii_numbers(b"1 -2.5\\nnan 4\\n", "a.pcd", "PCD").tolist()
        [1.0, -2.5, nan, 4.0]
    """
    try:
        text = data.decode("ascii")
        if not text.strip():
            return np.empty(0, dtype=np.float64)  # numpy parses bare whitespace as [-1.0]
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # numpy < 2 warns where it stops at a non-number
            return np.fromstring(text, dtype=np.float64, sep=" ")
    except (ValueError, UnicodeDecodeError, DeprecationWarning):
        raise PcprepError.at(path, f"{what} ASCII data holds a non-number") from None


def unpack_rgb(packed: np.ndarray) -> np.ndarray:
    """PCL's packed colour (``0x00RRGGBB`` in a uint32 or the bits of a float32) to ``(N, 3)``.

    Example:
        >>> unpack_rgb(np.array([0xFF8001], dtype=np.uint32)).tolist()
        [[255, 128, 1]]
    """
    flat = np.asarray(packed).reshape(-1)
    bits = flat.view(np.uint32) if flat.dtype.itemsize == 4 else flat.astype(np.uint32)
    # the bytes of a little-endian 0xAARRGGBB are B G R A: R G B is bytes 2, 1, 0
    quads = np.ascontiguousarray(bits, dtype="<u4").view(np.uint8).reshape(-1, 4)
    return np.ascontiguousarray(quads[:, 2::-1])


def organized(
    points: CloudPoints, path: str | os.PathLike[str]
) -> tuple[np.ndarray, np.ndarray | None]:
    """``(H, W, 3)`` float32 xyz (non-finite points set to the invalid zeros) and ``(H, W, 3)``
    uint8 colour or ``None``.

    Raises:
        PcprepError: an unorganized cloud, or a point count that disagrees with the grid.
    """
    n = len(points.xyz)
    if points.grid is None:
        raise PcprepError.at(
            path,
            f"unorganized point cloud ({points.why_unorganized}): the detector needs an "
            "organized grid, one point per camera pixel; export the scan organized (ordered), "
            "or project it onto the camera's pixels with its calibration, or its resolution and "
            "focal length (threedsr-cli train, pack or predict --camera FILE, or train or pack "
            "--grid WxH --focal-px F; pcprep read_camera, or grid_shape=(H, W), focal_px=F)",
        )
    rows, cols = points.grid
    if min(rows, cols) < 2:
        raise PcprepError.at(path, f"point cloud too small: {rows}x{cols}")
    if points.cells is None:
        if n != rows * cols:
            raise PcprepError.at(
                path, f"{n} points disagree with its {cols}x{rows} grid (width x height)"
            )
        xyz = _zero_invalid(np.array(points.xyz, dtype=np.float32).reshape(rows, cols, 3))
        rgb = None if points.rgb is None else points.rgb.reshape(rows, cols, 3)
        return xyz, rgb
    cells = points.cells
    if cells.size and int(cells.max()) >= n:
        raise PcprepError.at(path, f"range_grid names vertex {int(cells.max())} of only {n}")
    taken = cells >= 0
    xyz = np.zeros((rows * cols, 3), dtype=np.float32)
    xyz[taken] = points.xyz[cells[taken]]
    rgb = None
    if points.rgb is not None:
        rgb = np.zeros((rows * cols, 3), dtype=np.uint8)
        rgb[taken] = points.rgb[cells[taken]]
        rgb = rgb.reshape(rows, cols, 3)
    return _zero_invalid(xyz.reshape(rows, cols, 3)), rgb


def projected(
    points: CloudPoints,
    path: str | os.PathLike[str],
    grid_shape: object,
    focal_px: object,
    principal_point: object = None,
    distortion: Distortion | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """An unorganized cloud's points projected onto the camera's ``grid_shape`` ``(H, W)``
    pixels through its lens (`pcprep.organize_points`), as `organized` gives an organized
    cloud's; a cloud that is in the grid's row-major order already (`ORDERED_SHIFT_PX`) is laid
    out as written.

    Raises:
        PcprepError: no focal length, a bad grid or camera, no valid point, or more than
            `MAX_LOST_FRACTION` of the valid points off the grid or behind the camera.
    """
    if focal_px is None:
        raise PcprepError.at(
            path,
            "unorganized point cloud: projecting it onto a grid needs the camera's focal "
            "length (threedsr-cli train or pack --camera or --focal-px; pcprep focal_px)",
        )
    try:
        distortion = Distortion.of(distortion)
        if points.cells is None and _in_grid_order(
            points.xyz, grid_shape, focal_px, principal_point, distortion
        ):
            h, w = pinhole(grid_shape, focal_px)[:2]
            return organized(dataclasses.replace(points, grid=(h, w)), path)
        xyz, rgb = organize_points(
            points.xyz,
            points.rgb,
            shape=grid_shape,  # type: ignore[arg-type]
            focal_px=focal_px,  # type: ignore[arg-type]
            principal_point=principal_point,  # type: ignore[arg-type]
            distortion=distortion,
        )
        n_valid, landed = count_landing(
            points.xyz,
            xyz.shape[:2],
            focal_px,  # type: ignore[arg-type]
            principal_point,  # type: ignore[arg-type]
            distortion,
        )
    except ValueError as exc:
        raise PcprepError.at(path, str(exc)) from None
    h, w = xyz.shape[:2]
    if min(h, w) < 2:
        raise PcprepError.at(path, f"grid too small: {w}x{h}")
    if n_valid == 0:
        raise PcprepError.at(path, "point cloud has no valid point")
    lost = n_valid - landed
    if lost > MAX_LOST_FRACTION * n_valid:
        raise PcprepError.at(
            path,
            f"{lost} of its {n_valid} points ({100.0 * lost / n_valid:.0f}%) fall off the "
            f"{w}x{h} grid or behind the camera: the points must be in the camera's frame (z "
            "forward) and the grid, focal length, principal point and lens the camera's "
            "(threedsr-cli train or pack --camera, or --grid, --focal-px, --principal-point)",
        )
    return _zero_invalid(xyz), rgb


def _in_grid_order(
    xyz: np.ndarray,
    grid_shape: object,
    focal_px: object,
    principal_point: object,
    distortion: Distortion | None = None,
) -> bool:
    """Whether ``H * W`` points lie in the grid's row-major order: the camera (pinhole and lens)
    puts (a sample of up to 20,000 of) the valid ones within `ORDERED_SHIFT_PX` of their places,
    in median."""
    h, w, fx, fy, cx, cy = pinhole(grid_shape, focal_px, principal_point)
    if len(xyz) != h * w:
        return False
    at = np.arange(0, h * w, max(1, (h * w) // 20_000))
    pts = np.asarray(xyz[at], dtype=np.float64)
    ok = np.isfinite(pts).all(axis=1) & (pts[:, 2] > 0)
    if ok.sum() < min(10, h * w):
        return False
    at, pts = at[ok], pts[ok]
    xd, yd = distort(pts[:, 0] / pts[:, 2], pts[:, 1] / pts[:, 2], distortion)
    u = fx * xd + cx
    v = fy * yd + cy
    return float(np.median(np.hypot(u - at % w, v - at // w))) <= ORDERED_SHIFT_PX


def _zero_invalid(xyz: np.ndarray) -> np.ndarray:
    """`pcprep.fileio.sanitize_xyz` in place: a point with a NaN or infinite coordinate has a
    non-finite sum (three additions and one test per point instead of a test per coordinate
    and a reduction: 2.5 -> 0.2 ms on 400x400; coordinates beyond 1e38 count as invalid)."""
    total = xyz[..., 0] + xyz[..., 1]
    total += xyz[..., 2]
    bad = ~np.isfinite(total)
    if bad.any():
        xyz[bad] = 0.0
    return xyz
