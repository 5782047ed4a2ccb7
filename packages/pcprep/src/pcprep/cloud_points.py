"""A decoded point-cloud file (points in file order, colours, the grid its header states) and
the step that lays it out as the organized ``(H, W, 3)`` arrays pcprep works on."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from pcprep.errors import PcprepError
from pcprep.fileio import sanitize_xyz

__all__ = ["CloudPoints", "organized", "unpack_rgb"]


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


def unpack_rgb(packed: np.ndarray) -> np.ndarray:
    """PCL's packed colour (``0x00RRGGBB`` in a uint32 or the bits of a float32) to ``(N, 3)``.

    Example:
        >>> unpack_rgb(np.array([0xFF8001], dtype=np.uint32)).tolist()
        [[255, 128, 1]]
    """
    bits = np.ascontiguousarray(packed).reshape(-1)
    bits = bits.view(np.uint32) if bits.dtype.itemsize == 4 else bits.astype(np.uint32)
    shifts = np.array([16, 8, 0], dtype=np.uint32)
    return ((bits[:, None] >> shifts) & 0xFF).astype(np.uint8)


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
            "organized grid, one point per camera pixel; export the scan organized (ordered) "
            "or as an (H, W, 3) xyz TIFF",
        )
    rows, cols = points.grid
    if min(rows, cols) < 2:
        raise PcprepError.at(path, f"point cloud too small: {rows}x{cols}")
    if points.cells is None:
        if n != rows * cols:
            raise PcprepError.at(
                path, f"{n} points disagree with its {cols}x{rows} grid (width x height)"
            )
        xyz = sanitize_xyz(points.xyz.reshape(rows, cols, 3))
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
    return sanitize_xyz(xyz.reshape(rows, cols, 3)), rgb
