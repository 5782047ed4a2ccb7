"""A scan's anomaly map on its own points, as a PLY for 3D viewers (``predict --point-clouds``).

Defects in depth are easiest to judge in 3D. The file holds the scan's valid points (xyz as read,
in metres), coloured as the overlays are (the scan's colour, the heat map painted over where the
map rises above what good scans score), and the map's value itself as a per-point ``anomaly``
property, which CloudCompare and MeshLab show as a scalar field.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from threedsr_cli.atomic import atomic_write_bytes

__all__ = ["map_point_cloud", "write_map_ply"]

_VERTEX = np.dtype(
    [
        ("x", "<f4"),
        ("y", "<f4"),
        ("z", "<f4"),
        ("red", "u1"),
        ("green", "u1"),
        ("blue", "u1"),
        ("anomaly", "<f4"),
    ]
)


def map_point_cloud(
    xyz: np.ndarray, rgb: np.ndarray | None, native_map: np.ndarray, low: float, high: float
) -> np.ndarray:
    """The valid points of an organized scan as a structured array (x, y, z, red, green, blue,
    anomaly), in row-major pixel order; a point is valid when any coordinate is non-zero. A scan
    without colour (``rgb`` None) is painted over mid-grey.

    Example:
        >>> xyz = np.zeros((1, 2, 3), np.float32); xyz[0, 1] = (0.1, 0.2, 0.6)
        >>> rgb = np.full((1, 2, 3), 128, np.uint8)
        >>> pts = map_point_cloud(xyz, rgb, np.array([[0.0, 0.3]]), low=0.5, high=0.9)
        >>> len(pts), pts["anomaly"].tolist(), pts["red"].tolist()
        (1, [0.30000001192092896], [128])
    """
    from threedsr_cli.overlays import blend

    h, w = native_map.shape
    if rgb is None:
        rgb = np.full((h, w, 3), 128, np.uint8)
    if xyz.shape != (h, w, 3) or rgb.shape != (h, w, 3):
        raise ValueError(
            f"map_point_cloud: xyz {xyz.shape} and rgb {rgb.shape} must be (H, W, 3) with the "
            f"map's (H, W) = ({h}, {w})"
        )
    valid = (xyz != 0).any(axis=-1)
    colour = (blend(rgb, native_map, low, high) * 255).round().astype(np.uint8)
    pts = np.empty(int(valid.sum()), _VERTEX)
    for i, axis in enumerate("xyz"):
        pts[axis] = xyz[..., i][valid]
    for i, band in enumerate(("red", "green", "blue")):
        pts[band] = colour[..., i][valid]
    pts["anomaly"] = native_map[valid]
    return pts


def write_map_ply(
    path: Path,
    xyz: np.ndarray,
    rgb: np.ndarray | None,
    native_map: np.ndarray,
    low: float,
    high: float,
    *,
    description: str = "threedsr anomaly map",
    threshold: float | None = None,
) -> Path:
    """Write :func:`map_point_cloud`'s points as a binary little-endian PLY, atomically; its
    comments give ``description`` (which method made the map), the colour scale and the
    threshold."""
    pts = map_point_cloud(xyz, rgb, native_map, low, high)
    comments = [description, f"colour scale {float(low)!r} {float(high)!r}"]
    if threshold is not None:
        comments.append(f"threshold {float(threshold)!r}")
    header = ["ply", "format binary_little_endian 1.0"]
    header += [f"comment {c}" for c in comments]
    header.append(f"element vertex {len(pts)}")
    header += [f"property {_PLY_TYPE[pts.dtype[n].str]} {n}" for n in pts.dtype.names or ()]
    header.append("end_header")
    buf = io.BytesIO()
    buf.write(("\n".join(header) + "\n").encode("ascii"))
    buf.write(pts.tobytes())
    return atomic_write_bytes(path, buf.getvalue())


_PLY_TYPE = {"<f4": "float", "|u1": "uchar"}
