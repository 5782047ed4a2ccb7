"""PCL's PCD point clouds (header versions 0.7 and older): ``DATA ascii``, ``binary`` and
``binary_compressed``; x y z, PCL's packed ``rgb`` / ``rgba``, every other field skipped."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from pcprep.cloud_points import CloudPoints, ascii_numbers, unpack_rgb
from pcprep.errors import PcprepError
from pcprep.lzf import lzf_decompress

__all__ = ["PcdHeader", "decode_pcd", "parse_pcd_header"]

_TYPES = {"F": "f", "U": "u", "I": "i"}
_DATA = ("ascii", "binary", "binary_compressed")


@dataclass(frozen=True)
class PcdHeader:
    fields: tuple[str, ...]
    dtypes: tuple[np.dtype, ...]
    counts: tuple[int, ...]
    width: int
    height: int
    points: int
    data: str
    data_start: int

    def has_colour(self) -> bool:
        return "rgb" in self.fields or "rgba" in self.fields


def _ints(path: os.PathLike[str] | str, key: str, values: list[str]) -> list[int]:
    try:
        out = [int(v) for v in values]
    except ValueError:
        raise PcprepError.at(
            path, f"PCD header: {key} {' '.join(values)} is not integers"
        ) from None
    if not out or min(out) < 0:
        raise PcprepError.at(path, f"PCD header: {key} needs non-negative integers")
    return out


def parse_pcd_header(buf: bytes, path: os.PathLike[str] | str) -> PcdHeader:
    """The header of a PCD file (``buf`` from its start; the header alone suffices).

    Example:
        >>> h = parse_pcd_header(b"FIELDS x y z\\nSIZE 4 4 4\\nTYPE F F F\\nWIDTH 2\\nDATA ascii\\n", "a.pcd")
        >>> h.fields, h.points, h.height, h.data
        (('x', 'y', 'z'), 2, 1, 'ascii')
    """
    keys: dict[str, list[str]] = {}
    pos = 0
    while "DATA" not in keys:
        end = buf.find(b"\n", pos)
        if end < 0:
            raise PcprepError.at(
                path, "PCD header without a DATA line (not a PCD file, or cut short)"
            )
        try:
            line = buf[pos:end].decode("ascii").strip()
        except UnicodeDecodeError:
            raise PcprepError.at(path, "PCD header is not text (not a PCD file)") from None
        pos = end + 1
        if line and not line.startswith("#"):
            key, *values = line.split()
            keys["FIELDS" if key.upper() == "COLUMNS" else key.upper()] = values
    for key in ("FIELDS", "SIZE", "TYPE", "WIDTH"):
        if key not in keys:
            raise PcprepError.at(path, f"PCD header without {key}")
    fields = tuple(keys["FIELDS"])
    sizes = _ints(path, "SIZE", keys["SIZE"])
    types = keys["TYPE"]
    counts = _ints(path, "COUNT", keys.get("COUNT", ["1"] * len(fields)))
    if not len(fields) == len(sizes) == len(types) == len(counts):
        raise PcprepError.at(
            path,
            f"PCD header: {len(fields)} FIELDS but {len(sizes)} SIZE, {len(types)} TYPE, "
            f"{len(counts)} COUNT values",
        )
    dtypes = []
    for name, t, s in zip(fields, types, sizes, strict=True):
        if t.upper() not in _TYPES or s not in (1, 2, 4, 8) or (t.upper() == "F" and s < 4):
            raise PcprepError.at(path, f"PCD header: field {name} has unknown type {t}{s}")
        dtypes.append(np.dtype(f"<{_TYPES[t.upper()]}{s}"))
    (width,) = _ints(path, "WIDTH", keys["WIDTH"][:1])
    (height,) = _ints(path, "HEIGHT", keys.get("HEIGHT", ["1"])[:1])
    (points,) = _ints(path, "POINTS", keys.get("POINTS", [str(width * height)])[:1])
    if points != width * height:
        raise PcprepError.at(
            path, f"PCD header: POINTS {points} disagrees with WIDTH x HEIGHT {width}x{height}"
        )
    data = (keys["DATA"] or [""])[0].lower()
    if data not in _DATA:
        raise PcprepError.at(path, f"PCD header: unknown DATA {data!r} (known: {', '.join(_DATA)})")
    return PcdHeader(fields, tuple(dtypes), tuple(counts), width, height, points, data, pos)


def _columns(h: PcdHeader, buf: bytes, path: os.PathLike[str] | str) -> dict[str, np.ndarray]:
    """The first value of each count-1 field of interest, by name."""
    n = h.points
    wanted = {"x", "y", "z", "rgb", "rgba"}
    offsets = np.cumsum([0] + [d.itemsize * c for d, c in zip(h.dtypes, h.counts, strict=True)])
    step = int(offsets[-1])
    out: dict[str, np.ndarray] = {}
    if h.data == "binary":
        need = h.data_start + n * step
        if len(buf) < need:
            raise PcprepError.at(
                path,
                f"truncated PCD: binary data holds {len(buf) - h.data_start} bytes, its "
                f"{n} points need {n * step}",
            )
        layout = np.dtype(
            {
                "names": [f"f{i}" for i in range(len(h.fields))],
                "formats": [
                    d if c == 1 else (d, (c,)) for d, c in zip(h.dtypes, h.counts, strict=True)
                ],
                "offsets": [int(o) for o in offsets[:-1]],
                "itemsize": step,
            }
        )
        table = np.frombuffer(buf, layout, n, h.data_start)
        for i, name in enumerate(h.fields):
            if name in wanted and name not in out:
                column = table[f"f{i}"]
                out[name] = column if h.counts[i] == 1 else column[:, 0]
    elif h.data == "binary_compressed":
        sizes = np.frombuffer(buf[h.data_start : h.data_start + 8], "<u4")
        if sizes.size < 2 or len(buf) < h.data_start + 8 + int(sizes[0]):
            raise PcprepError.at(path, "truncated PCD: binary_compressed data is cut short")
        if int(sizes[1]) != n * step:
            raise PcprepError.at(
                path,
                f"PCD binary_compressed data unpacks to {int(sizes[1])} bytes, its {n} "
                f"points need {n * step}",
            )
        start = h.data_start + 8
        planes = lzf_decompress(np.frombuffer(buf, np.uint8, int(sizes[0]), start), n * step)
        if planes is None:
            raise PcprepError.at(path, "corrupt PCD: binary_compressed data does not decompress")
        for i, name in enumerate(h.fields):  # field by field: all x, then all y, ...
            if name in wanted and name not in out:
                plane = planes[n * offsets[i] : n * offsets[i + 1]].view(h.dtypes[i])
                out[name] = plane.reshape(n, h.counts[i])[:, 0]
    else:
        out = _ascii_columns(h, buf, path, wanted)
    return out


def _ascii_columns(
    h: PcdHeader, buf: bytes, path: os.PathLike[str] | str, wanted: set[str]
) -> dict[str, np.ndarray]:
    width = sum(h.counts)
    values = ascii_numbers(buf[h.data_start :], path, "PCD")
    if values.size != h.points * width:
        cut = "truncated PCD: " if values.size < h.points * width else "PCD "
        raise PcprepError.at(
            path,
            f"{cut}ASCII data holds {values.size} values, its {h.points} points of "
            f"{width} values need {h.points * width}",
        )
    table = values.reshape(h.points, width)
    out: dict[str, np.ndarray] = {}
    columns = np.cumsum((0, *h.counts))
    for i, name in enumerate(h.fields):
        if name not in wanted or name in out:
            continue
        column = table[:, columns[i]]
        whole = bool(np.all(column == np.floor(column))) and bool((column >= 1).any())
        if name in ("rgb", "rgba") and (h.dtypes[i].kind != "f" or whole):
            # PCL >= 1.12 writes a float rgb field as its packed integer; older writers wrote
            # the float, whose bits (0x00RRGGBB: a denormal below 1) are the colour
            out[name] = (column.astype(np.int64) & 0xFFFFFFFF).astype(np.uint32)
        else:
            out[name] = column.astype(h.dtypes[i])
    return out


def decode_pcd(buf: bytes, path: os.PathLike[str] | str) -> CloudPoints:
    """The points of a PCD file; organized when its HEIGHT is above 1 (PCL's convention)."""
    h = parse_pcd_header(buf, path)
    for axis in "xyz":
        if axis not in h.fields:
            raise PcprepError.at(
                path, f"PCD without an {axis} field (fields: {' '.join(h.fields)})"
            )
        if h.dtypes[h.fields.index(axis)].kind != "f":
            raise PcprepError.at(path, f"PCD field {axis} is not float (F4 or F8)")
    colour = next((c for c in ("rgb", "rgba") if c in h.fields), None)
    if colour is not None and h.dtypes[h.fields.index(colour)].itemsize != 4:
        raise PcprepError.at(path, f"PCD field {colour} is not PCL's packed 4-byte colour")
    cols = _columns(h, buf, path)
    xyz = np.empty((h.points, 3), dtype=np.float32)
    for i, axis in enumerate("xyz"):
        xyz[:, i] = cols[axis]
    rgb = None if colour is None else unpack_rgb(cols[colour])
    grid = (h.height, h.width) if h.height > 1 else None
    return CloudPoints(xyz, rgb, grid, f"HEIGHT 1, WIDTH {h.width}")
