"""A PNG encoder for the 8-bit grey and RGB images of a synthetic dataset, on the standard library.

depthsim writes its datasets' ``rgb/`` and ``gt/`` images with this instead of pillow, so that
``pip install depthsim`` brings numpy, numba and tifffile only. Every row is stored with the
PNG ``Sub`` filter (each byte minus the same channel of the pixel to its left): a rendered scene's
RGB then compresses about 10 % smaller than unfiltered (pillow's per-row filter choice saves about
10 % more). Any PNG reader decodes the result.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from depthsim._rng import DepthsimError

__all__ = ["encode_png"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_GREY, _RGB = 0, 2  # PNG colour types
_SUB = 1  # PNG filter type


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def encode_png(image: np.ndarray, *, level: int = 6) -> bytes:
    """The bytes of a PNG file holding ``image``.

    Args:
        image: ``(H, W)`` (grey) or ``(H, W, 3)`` (RGB) uint8, ``H, W >= 1``.
        level: zlib compression level, 0-9 (the same level gives the same bytes).

    Raises:
        DepthsimError: another dtype, shape or an empty image.

    Examples:
        >>> png = encode_png(np.zeros((2, 3), np.uint8))
        >>> png[:8] == b"\\x89PNG\\r\\n\\x1a\\n", png[12:16]
        (True, b'IHDR')
    """
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise DepthsimError(f"a PNG image must be uint8, got {image.dtype}")
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise DepthsimError(f"a PNG image must be (H, W) or (H, W, 3), got shape {image.shape}")
    height, width = image.shape[:2]
    if height == 0 or width == 0:
        raise DepthsimError(f"a PNG image needs at least one pixel, got shape {image.shape}")
    channels = 1 if image.ndim == 2 else 3
    rows = image.reshape(height, width * channels)
    filtered = np.empty((height, width * channels + 1), np.uint8)
    filtered[:, 0] = _SUB
    filtered[:, 1 : channels + 1] = rows[:, :channels]
    # uint8 arithmetic wraps modulo 256, as the filter is defined
    filtered[:, channels + 1 :] = rows[:, channels:] - rows[:, :-channels]
    header = struct.pack(">IIBBBBB", width, height, 8, _GREY if channels == 1 else _RGB, 0, 0, 0)
    return (
        _SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(filtered.tobytes(), level))
        + _chunk(b"IEND", b"")
    )
