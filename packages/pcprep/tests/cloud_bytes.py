"""Tiny PCD / PLY files written byte by byte from literal headers and numpy, for the reader tests
to need no other library."""

from __future__ import annotations

import numpy as np


def lzf_literals(data: bytes) -> bytes:
    """Valid LZF of ``data`` with literal runs only (no back references)."""
    out = bytearray()
    for start in range(0, len(data), 32):
        chunk = data[start : start + 32]
        out += bytes([len(chunk) - 1]) + chunk
    return bytes(out)


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    c = rgb.reshape(-1, 3).astype(np.uint32)
    return (c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]


def pcd_bytes(
    xyz: np.ndarray,
    rgb: np.ndarray | None = None,
    data: str = "binary",
    *,
    rgb_type: str = "F",
    xyz_type: str = "F4",
    normals: bool = True,
) -> bytes:
    """An organized PCD (HEIGHT = rows) with x y z, a COUNT 3 ``normal`` field to skip, a padding
    field and PCL's packed rgb."""
    h, w = xyz.shape[:2]
    n = h * w
    fdt = np.dtype("<f" + xyz_type[1])
    cols = [("x", fdt, 1), ("y", fdt, 1), ("z", fdt, 1)]
    if normals:
        cols.append(("normal", np.dtype("<f4"), 3))
        cols.append(("_", np.dtype("<u1"), 4))
    if rgb is not None:
        cols.append(("rgb", np.dtype("<f4" if rgb_type == "F" else "<u4"), 1))
    values = {
        "x": xyz[..., 0].reshape(n),
        "y": xyz[..., 1].reshape(n),
        "z": xyz[..., 2].reshape(n),
        "normal": np.arange(n * 3, dtype=np.float32).reshape(n, 3),
        "_": np.full((n, 4), 7, np.uint8),
    }
    if rgb is not None:
        packed = pack_rgb(rgb)
        values["rgb"] = packed.view(np.float32) if rgb_type == "F" else packed
    header = (
        "# .PCD v0.7 - Point Cloud Data file format\nVERSION 0.7\n"
        f"FIELDS {' '.join(c[0] for c in cols)}\n"
        f"SIZE {' '.join(str(c[1].itemsize) for c in cols)}\n"
        f"TYPE {' '.join(('F' if c[1].kind == 'f' else 'U') for c in cols)}\n"
        f"COUNT {' '.join(str(c[2]) for c in cols)}\n"
        f"WIDTH {w}\nHEIGHT {h}\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {n}\nDATA {data}\n"
    ).encode()
    if data == "ascii":
        lines = []
        for i in range(n):
            row = []
            for name, dt, count in cols:
                v = np.asarray(values[name][i]).reshape(count)
                if name == "rgb":
                    row.append(str(int(pack_rgb(rgb)[i])))
                else:
                    row += [repr(float(x)) if dt.kind == "f" else str(int(x)) for x in v]
            lines.append(" ".join(row))
        return header + ("\n".join(lines) + "\n").encode()
    if data == "binary":
        dtype = np.dtype([(f"c{i}", c[1], (c[2],)) for i, c in enumerate(cols)])
        table = np.zeros(n, dtype)
        for i, (name, _, count) in enumerate(cols):
            table[f"c{i}"] = np.asarray(values[name]).reshape(n, count)
        return header + table.tobytes()
    planes = b"".join(np.ascontiguousarray(values[c[0]], dtype=c[1]).tobytes() for c in cols)
    packed = lzf_literals(planes)
    return header + np.array([len(packed), len(planes)], "<u4").tobytes() + packed


def ply_bytes(
    xyz: np.ndarray,
    rgb: np.ndarray | None = None,
    fmt: str = "binary_little_endian",
    *,
    grid: str = "num_cols",
    faces: bool = True,
    float_colour: bool = False,
) -> bytes:
    """An organized PLY: the grid stated as ``obj_info num_cols/num_rows``, Photoneo's
    ``Width = ; Height =`` (``"phoxi"``) or none; a face element with list properties after
    the vertices (to be walked past)."""
    h, w = xyz.shape[:2]
    n = h * w
    order = {"binary_little_endian": "<", "binary_big_endian": ">", "ascii": "<"}[fmt]
    props = [("x", "f4"), ("y", "f4"), ("z", "f4"), ("nx", "f8")]
    if rgb is not None:
        ctype = "f4" if float_colour else "u1"
        props += [("red", ctype), ("green", ctype), ("blue", ctype)]
    names = {"f4": "float", "f8": "double", "u1": "uchar"}
    info = {
        "num_cols": f"obj_info num_cols {w}\nobj_info num_rows {h}\n",
        "phoxi": f"obj_info Photoneo PLY PointCloud (Width = {w}; Height = {h}; Ordered)\n",
        "none": "",
    }[grid]
    header = f"ply\nformat {fmt} 1.0\ncomment written by the tests\n{info}element vertex {n}\n"
    header += "".join(f"property {names[t]} {p}\n" for p, t in props)
    face_rows = [[0, 1, 2], [], [3, 2, 1, 0]] if faces else []
    if faces:
        header += f"element face {len(face_rows)}\nproperty list uchar int vertex_indices\n"
        header += "property uchar flags\n"
    header += "end_header\n"
    table = np.zeros(n, np.dtype([(p, order + t) for p, t in props]))
    for i, a in enumerate("xyz"):
        table[a] = xyz[..., i].reshape(n)
    table["nx"] = 0.5
    if rgb is not None:
        for i, c in enumerate(("red", "green", "blue")):
            col = rgb[..., i].reshape(n)
            table[c] = col / 255.0 if float_colour else col
    if fmt == "ascii":
        body = "\n".join(
            " ".join(
                repr(float(v)) if isinstance(v, float | np.floating) else str(v)
                for v in row.tolist()
            )
            for row in table
        )
        body += "\n" + "".join(
            f"{len(f)} {' '.join(map(str, f))} 9\n".replace("  ", " ") for f in face_rows
        )
        return (header + body + "\n").encode()
    body = table.tobytes()
    for f in face_rows:
        body += bytes([len(f)]) + np.array(f, order + "i4").tobytes() + bytes([9])
    return header.encode() + body
