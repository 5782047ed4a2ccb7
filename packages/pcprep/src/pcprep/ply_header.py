"""The header of a PLY file, and the grid it states: the organized-scan conventions that camera
and library writers use (PLY itself has none).

- ``obj_info num_cols W`` + ``obj_info num_rows H``: Stanford's range scans, PCL's ``PLYWriter``
  (which omits invalid points and adds ``element range_grid`` of ``W*H`` vertex-index lists),
  EpicEye.
- ``Width = W; Height = H`` in an ``obj_info`` or ``comment`` line: Photoneo PhoXi
  (``Photoneo PLY PointCloud (Width = 2064; Height = 1544; Ordered)``); ``Unordered`` clouds
  drop their invalid points and are not organized.
- ``element camera`` with ``viewportx`` / ``viewporty``: PCL's ``savePLYFile`` default, which
  writes every point of the ``viewportx x viewporty`` grid (read from the data).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import numpy as np

from pcprep.errors import PcprepError

__all__ = ["PlyElement", "PlyHeader", "parse_ply_header"]

_SCALARS = {
    **dict.fromkeys(("char", "int8"), "i1"),
    **dict.fromkeys(("uchar", "uint8"), "u1"),
    **dict.fromkeys(("short", "int16"), "i2"),
    **dict.fromkeys(("ushort", "uint16"), "u2"),
    **dict.fromkeys(("int", "int32"), "i4"),
    **dict.fromkeys(("uint", "uint32"), "u4"),
    **dict.fromkeys(("float", "float32"), "f4"),
    **dict.fromkeys(("double", "float64"), "f8"),
}
_FORMATS = {"ascii": "", "binary_little_endian": "<", "binary_big_endian": ">"}
_PHOXI = re.compile(r"Width\s*=\s*(\d+)\s*;\s*Height\s*=\s*(\d+)", re.IGNORECASE)
_MAX_HEADER = 1 << 20


@dataclass
class PlyElement:
    """One ``element``: its properties as ``(name, dtype)`` for scalars or ``(name, (count
    dtype, item dtype))`` for lists."""

    name: str
    count: int
    properties: list[tuple[str, object]] = field(default_factory=list)

    def has_lists(self) -> bool:
        return any(isinstance(t, tuple) for _, t in self.properties)

    def names(self) -> list[str]:
        return [n for n, _ in self.properties]


@dataclass
class PlyHeader:
    byte_order: str  # "" for ascii, "<" or ">"
    elements: list[PlyElement]
    info: list[str]  # obj_info and comment lines
    data_start: int

    def element(self, name: str) -> PlyElement | None:
        return next((e for e in self.elements if e.name == name), None)

    def has_colour(self) -> bool:
        vertex = self.element("vertex")
        names = set(vertex.names()) if vertex else set()
        return {"red", "green", "blue"} <= names or {
            "diffuse_red",
            "diffuse_green",
            "diffuse_blue",
        } <= names

    def stated_grid(self) -> tuple[tuple[int, int] | None, str]:
        """``((rows, cols), "")`` from the header's words, else ``(None, what is missing)``."""
        words = {}
        for line in self.info:
            parts = line.split()
            if len(parts) == 3 and parts[1] in ("num_cols", "num_rows") and parts[2].isdigit():
                words[parts[1]] = int(parts[2])
        if "num_cols" in words and "num_rows" in words and words["num_rows"] > 1:
            return (words["num_rows"], words["num_cols"]), ""
        for line in self.info:
            m = _PHOXI.search(line)
            if m and "unordered" in line.lower():
                return None, "saved Unordered"
            if m and int(m[2]) > 1:
                return (int(m[2]), int(m[1])), ""
        return None, (
            "no grid in its header: obj_info num_cols/num_rows, a range_grid, PhoXi's "
            "Width/Height or PCL's camera viewport"
        )


def parse_ply_header(buf: bytes, path: os.PathLike[str] | str) -> PlyHeader:
    """The header of a PLY file (``buf`` from its start; the header alone suffices).

    Example:
        >>> h = parse_ply_header(b"ply\\nformat ascii 1.0\\nelement vertex 2\\n"
        ...                      b"property float x\\nend_header\\n", "a.ply")
        >>> h.elements[0].name, h.elements[0].count, h.data_start
        ('vertex', 2, 66)
    """
    if not (buf.startswith(b"ply\n") or buf.startswith(b"ply\r\n")):
        raise PcprepError.at(path, "not a PLY file (it does not start with 'ply')")
    end = buf.find(b"end_header", 0, _MAX_HEADER)
    stop = buf.find(b"\n", end) if end >= 0 else -1
    if stop < 0:
        raise PcprepError.at(path, "PLY header without end_header (not a PLY file, or cut short)")
    try:
        lines = buf[:end].decode("ascii").splitlines()[1:]
    except UnicodeDecodeError:
        raise PcprepError.at(path, "PLY header is not text") from None
    order, elements, info = None, [], []
    for line in lines:
        key, *rest = line.split() or [""]
        if key in ("comment", "obj_info"):
            info.append(line.strip())
        elif key == "format":
            if not rest or rest[0] not in _FORMATS:
                raise PcprepError.at(path, f"PLY header: unknown format {' '.join(rest)!r}")
            order = _FORMATS[rest[0]]
        elif key == "element" and len(rest) == 2 and rest[1].isdigit():
            elements.append(PlyElement(rest[0], int(rest[1])))
        elif key == "property" and elements:
            elements[-1].properties.append(_property(rest, path))
        elif key:
            raise PcprepError.at(path, f"PLY header: unexpected line {line.strip()!r}")
    if order is None:
        raise PcprepError.at(path, "PLY header without a format line")
    return PlyHeader(order, elements, info, stop + 1)


def _property(words: list[str], path: os.PathLike[str] | str) -> tuple[str, object]:
    if len(words) == 2 and words[0] in _SCALARS:
        return words[1], np.dtype(_SCALARS[words[0]])
    if len(words) == 4 and words[0] == "list" and {words[1], words[2]} <= set(_SCALARS):
        return words[3], (np.dtype(_SCALARS[words[1]]), np.dtype(_SCALARS[words[2]]))
    raise PcprepError.at(path, f"PLY header: unknown property {' '.join(words)!r}")
