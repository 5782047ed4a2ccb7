"""Array codecs of a pack (:mod:`threedsr.packed`), each lossless. Chosen by measurement on 8
cable_gland scans scaled to its 301: depth at 256 px as byte planes + xz 9.4 MiB (75 MiB raw),
native colour as R-G, G, B-G planes + xz 46 MiB (interleaved 51, PNG 56)."""

from __future__ import annotations

import lzma
from typing import Any

import numpy as np

__all__ = [
    "byte_planes",
    "colour_planes",
    "compress",
    "from_byte_planes",
    "from_colour_planes",
    "pack_bits",
    "read_lines",
    "unpack_bits",
]


def compress(data: bytes) -> bytes:
    # xz presets 6-9 differ only in dictionary size (8-64 MiB); a blob is under 8 MiB, so 9
    # would compress no better and allocate 670 MiB per thread.
    return lzma.compress(data, format=lzma.FORMAT_XZ, preset=6)


def byte_planes(a: np.ndarray) -> bytes:
    """Byte planes of a float array (all first bytes, then all second, ...): the sign/exponent
    planes of depth are nearly constant, which lzma then codes in almost nothing.

    Example:
        >>> a = np.arange(3, dtype=np.float32)
        >>> np.array_equal(from_byte_planes(byte_planes(a), a.dtype, a.shape), a)
        True
    """
    b = np.ascontiguousarray(a).view(np.uint8).reshape(-1, a.dtype.itemsize)
    return np.ascontiguousarray(b.T).tobytes()


def from_byte_planes(data: bytes, dtype: Any, shape: tuple[int, ...]) -> np.ndarray:
    size = np.dtype(dtype).itemsize
    planes = np.frombuffer(data, np.uint8).reshape(size, -1)
    return np.ascontiguousarray(planes.T).view(dtype).reshape(shape)


def colour_planes(rgb: np.ndarray) -> bytes:
    """uint8 (H, W, 3) as planes R-G, G, B-G (mod 256): colour channels of one camera correlate,
    the differences are smaller numbers."""
    p = np.moveaxis(rgb, -1, 0).astype(np.int16)
    return np.stack([p[0] - p[1], p[1], p[2] - p[1]]).astype(np.uint8).tobytes()


def from_colour_planes(data: bytes, shape: tuple[int, int]) -> np.ndarray:
    d = np.frombuffer(data, np.uint8).reshape(3, *shape).astype(np.int16)
    p = np.stack([d[0] + d[1], d[1], d[2] + d[1]]).astype(np.uint8)
    return np.ascontiguousarray(np.moveaxis(p, 0, -1))


def pack_bits(mask: np.ndarray) -> bytes:
    return np.packbits(np.asarray(mask, dtype=bool).ravel()).tobytes()


def unpack_bits(data: bytes, shape: tuple[int, ...]) -> np.ndarray:
    n = int(np.prod(shape))
    return np.unpackbits(np.frombuffer(data, np.uint8), count=n).astype(bool).reshape(shape)


def read_lines(n_in: int, n_out: int) -> np.ndarray:
    """The source rows (or columns) pcprep's bilinear resize reads for ``n_out`` outputs: the
    same index rule as its kernel (half-pixel centres, edge clamp).

    Example:
        >>> read_lines(8, 4).tolist()
        [0, 1, 2, 3, 4, 5, 6, 7]
        >>> read_lines(12, 3).tolist()
        [1, 2, 5, 6, 9, 10]
    """
    f = np.maximum((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0)
    first = np.minimum(f.astype(np.int64), n_in - 1)
    return np.unique(np.concatenate([first, np.minimum(first + 1, n_in - 1)]))
