"""PLY point clouds: ``ascii``, ``binary_little_endian`` and ``binary_big_endian``; the vertex
x y z and red green blue (uchar, or float in 0..1), every other element walked past (list
properties included), and the grid the header states (`pcprep.ply_header`)."""

from __future__ import annotations

import os

import numba
import numpy as np

from pcprep.cloud_points import CloudPoints, ascii_numbers
from pcprep.errors import PcprepError
from pcprep.jit_options import JIT
from pcprep.ply_header import PlyElement, PlyHeader, parse_ply_header

__all__ = ["decode_ply", "walk_ascii_rows", "walk_binary_rows"]

_TRUNCATED = -1


@numba.jit(**JIT)
def _read_int(buf, pos, size, big, signed):  # pragma: no cover
    value = 0
    for k in range(size):
        byte = np.int64(buf[pos + (k if big else size - 1 - k)])
        value = (value << 8) | byte
    if signed and value >= (1 << (8 * size - 1)):
        value -= 1 << (8 * size)
    return value


@numba.jit(**JIT)
def walk_binary_rows(
    buf, pos, rows, is_list, sizes, item_sizes, big, want, cells
):  # pragma: no cover
    """Byte offset after ``rows`` binary rows from ``pos`` (-1: the data ends first). A scalar
    property ``p`` takes ``sizes[p]`` bytes; a list a ``sizes[p]``-byte count then that many
    ``item_sizes[p]``-byte items. For list property ``want`` the first item of each row goes to
    ``cells`` (-1 for an empty list or a negative item)."""
    n = buf.size
    for r in range(rows):
        for p in range(is_list.size):
            if not is_list[p]:
                pos += sizes[p]
                continue
            if pos + sizes[p] > n:
                return _TRUNCATED
            k = _read_int(buf, pos, sizes[p], big, False)
            pos += sizes[p]
            if p == want:
                first = -1
                if k > 0 and pos + item_sizes[p] <= n:
                    first = _read_int(buf, pos, item_sizes[p], big, True)
                cells[r] = max(first, -1)
            pos += k * item_sizes[p]
        if pos > n:
            return _TRUNCATED
    return pos


@numba.jit(**JIT)
def walk_ascii_rows(values, pos, rows, is_list, want, cells):  # pragma: no cover
    """`walk_binary_rows` over ASCII values: a scalar is one value, a list its count then items."""
    n = values.size
    for r in range(rows):
        for p in range(is_list.size):
            if not is_list[p]:
                pos += 1
                continue
            if pos >= n:
                return _TRUNCATED
            k = np.int64(values[pos])
            pos += 1
            if p == want:
                cells[r] = np.int64(values[pos]) if k > 0 and pos < n else -1
                cells[r] = max(cells[r], -1)
            pos += k
        if pos > n:
            return _TRUNCATED
    return pos


def _scalar_dtype(e: PlyElement, order: str) -> np.dtype:
    return np.dtype([(f"p{i}", order + t.str[1:]) for i, (_, t) in enumerate(e.properties)])


def _elements(h: PlyHeader, buf: bytes, path) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Rows of the scalar elements ``vertex`` and ``camera`` (a structured array or ``(N, P)``
    float64 for ASCII), and the range grid's cells; every element walked in file order."""
    rows: dict[str, np.ndarray] = {}
    cells = None
    ascii_ = h.byte_order == ""
    if ascii_:
        data = ascii_numbers(buf[h.data_start :], path, "PLY")
    else:
        data = np.frombuffer(buf, np.uint8)
    pos = 0 if ascii_ else h.data_start
    for e in h.elements:
        if not e.has_lists():
            width = len(e.properties) if ascii_ else _scalar_dtype(e, h.byte_order).itemsize
            end = pos + e.count * width
            if end > data.size:
                raise _cut_short(path, e)
            if e.name in ("vertex", "camera"):
                rows[e.name] = (
                    data[pos:end].reshape(e.count, width)
                    if ascii_
                    else np.frombuffer(buf, _scalar_dtype(e, h.byte_order), e.count, pos)
                )
            pos = end
            continue
        if e.name == "vertex":
            raise PcprepError.at(path, "PLY vertex element with list properties is not supported")
        is_list = np.array([isinstance(t, tuple) for _, t in e.properties])
        want = (
            e.names().index("vertex_indices")
            if e.name == "range_grid" and "vertex_indices" in e.names()
            else -1
        )
        found = np.full(e.count if want >= 0 else 0, -1, dtype=np.int64)
        if ascii_:
            pos = walk_ascii_rows(data, pos, e.count, is_list, want, found)
        else:
            kinds = [t if isinstance(t, tuple) else (t, t) for _, t in e.properties]
            sizes = np.array([c.itemsize for c, _ in kinds], dtype=np.int64)
            items = np.array([i.itemsize for _, i in kinds], dtype=np.int64)
            pos = walk_binary_rows(
                data, pos, e.count, is_list, sizes, items, h.byte_order == ">", want, found
            )
        if pos < 0:
            raise _cut_short(path, e)
        if want >= 0:
            cells = found
    left = data[pos:] if ascii_ else buf[pos:].strip()
    if len(left):
        unit = "values" if ascii_ else "bytes"
        raise PcprepError.at(
            path,
            f"PLY data holds {len(left)} {unit} after its last element: the element counts "
            "in its header disagree with the data",
        )
    return rows, cells


def _cut_short(path, e: PlyElement) -> PcprepError:
    return PcprepError.at(
        path, f"truncated PLY: the data ends inside element {e.name} ({e.count} rows)"
    )


def _column(h: PlyHeader, rows: dict[str, np.ndarray], element: str, name: str) -> np.ndarray:
    e = h.element(element)
    i = e.names().index(name)
    table = rows[element]
    return table[:, i] if table.dtype.names is None else table[f"p{i}"]


def _colour(h: PlyHeader, rows: dict[str, np.ndarray], path) -> np.ndarray | None:
    if not h.has_colour():
        return None
    names = h.element("vertex").names()
    prefix = "" if "red" in names else "diffuse_"
    channels = [_column(h, rows, "vertex", prefix + c) for c in ("red", "green", "blue")]
    kind = dict(h.element("vertex").properties)[prefix + "red"]
    if kind == np.uint8 and h.byte_order:  # the common case: bytes as they are
        return np.stack(channels, axis=-1)
    rgb = np.stack(channels, axis=-1).astype(np.float64)
    if kind.kind == "f":
        if rgb.size and np.nanmax(rgb) <= 1.0:  # some tools write 0..1, others 0..255
            rgb = rgb * 255.0
    elif rgb.size and (rgb.max() > 255 or rgb.min() < 0):
        raise PcprepError.at(path, f"PLY colour {prefix}red holds values outside 0..255")
    return np.clip(np.nan_to_num(np.rint(rgb)), 0, 255).astype(np.uint8)


def decode_ply(buf: bytes, path: os.PathLike[str] | str) -> CloudPoints:
    """The vertices of a PLY file and the grid its header states."""
    h = parse_ply_header(buf, path)
    vertex = h.element("vertex")
    if vertex is None:
        raise PcprepError.at(path, "PLY without an element vertex")
    for axis in "xyz":
        if axis not in vertex.names():
            raise PcprepError.at(path, f"PLY vertex without property {axis}")
    rows, cells = _elements(h, buf, path)
    xyz = np.empty((vertex.count, 3), dtype=np.float32)
    for i, axis in enumerate("xyz"):
        xyz[:, i] = _column(h, rows, "vertex", axis)
    rgb = _colour(h, rows, path)
    grid, why = h.stated_grid()
    camera = h.element("camera")
    if cells is not None:
        if grid is None or grid[0] * grid[1] != len(cells):
            raise PcprepError.at(
                path,
                f"PLY range_grid of {len(cells)} cells without obj_info num_cols/num_rows "
                "of that many",
            )
    elif grid is None and camera is not None and {"viewportx", "viewporty"} <= set(camera.names()):
        if camera.count:
            cols = int(_column(h, rows, "camera", "viewportx")[0])
            height = int(_column(h, rows, "camera", "viewporty")[0])
            if height > 1:
                grid = (height, cols)
    return CloudPoints(xyz, rgb, grid, f"{vertex.count} vertices, {why}", cells)
