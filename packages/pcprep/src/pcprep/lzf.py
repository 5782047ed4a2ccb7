"""LZF decompression (liblzf's format), for PCL's ``DATA binary_compressed`` point clouds.

A numba kernel instead of a dependency: LZF is two token kinds, and PCD files are the only user.
"""

from __future__ import annotations

import numba
import numpy as np

from pcprep.jit_options import JIT

__all__ = ["lzf_decompress", "lzf_decompress_kernel"]

_CORRUPT = -1


@numba.jit(**JIT)
def lzf_decompress_kernel(src, dst):  # pragma: no cover
    """Decompress ``src`` (uint8) into ``dst`` (uint8, its expected size); the number of bytes
    written, or -1 when ``src`` is corrupt or would overflow ``dst``."""
    ip, op = 0, 0
    n_in, n_out = src.size, dst.size
    while ip < n_in:
        ctrl = np.int64(src[ip])
        ip += 1
        if ctrl < 32:  # a run of ctrl + 1 literal bytes
            run = ctrl + 1
            if ip + run > n_in or op + run > n_out:
                return _CORRUPT
            dst[op : op + run] = src[ip : ip + run]
            ip += run
            op += run
            continue
        # a back reference: length in the top 3 bits (7: one more length byte), distance 13 bits
        length = ctrl >> 5
        if ip >= n_in:
            return _CORRUPT
        if length == 7:
            length += np.int64(src[ip])
            ip += 1
            if ip >= n_in:
                return _CORRUPT
        ref = op - ((ctrl & 0x1F) << 8) - 1 - np.int64(src[ip])
        ip += 1
        length += 2
        if ref < 0 or op + length > n_out:
            return _CORRUPT
        for k in range(length):  # byte by byte: the source may overlap what is being written
            dst[op + k] = dst[ref + k]
        op += length
    return op


def lzf_decompress(data: bytes | bytearray | np.ndarray, size: int) -> np.ndarray | None:
    """``size`` decompressed bytes of ``data`` as uint8, or ``None`` when ``data`` is corrupt or
    does not decompress to exactly ``size`` bytes.

    Example:
        >>> bytes(lzf_decompress(bytes([2]) + b"abc" + bytes([0x20, 2]), 6))
        b'abcabc'
    """
    src = data if isinstance(data, np.ndarray) else np.frombuffer(data, dtype=np.uint8)
    dst = np.empty(size, dtype=np.uint8)
    written = lzf_decompress_kernel(src, dst)
    return dst if written == size else None
