"""A class's preprocessed splits in one compact file (``.3dsrpack``) that train and eval read in
place of the dataset folder: for machines that take few megabytes of input.

Depth, masks and the plane are stored bit-exactly. RGB is ``exact`` (the native uint8 pixels
pcprep's bilinear resize reads, resized again on reading: the same float32 as the folder gives)
or ``uint8`` (the resized colour rounded to 8 bits: smaller, not identical). Layout:
``MAGIC | version u32 | header length u64 | header JSON | blobs | SHA-256 of all before``.
:mod:`threedsr.packed_write` writes them.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pcprep

from threedsr.errors import ThreedsrError
from threedsr.packed_codecs import from_byte_planes, from_colour_planes, read_lines, unpack_bits

__all__ = ["PACK_SUFFIX", "RGB_CODECS", "Pack", "PackedSample", "is_pack"]

PACK_SUFFIX = ".3dsrpack"
RGB_CODECS = ("exact", "uint8")
MAGIC = b"3DSRPACK"
VERSION = 1
#: what `threedsr-cli pack` sets by option (the other preprocessing follows the layout)
_PACK_OPTIONS = ("size", "depth_unit", "focal_px", "principal_point", "grid_shape", "distortion")
HEAD = struct.Struct("<8sIQ")
_DIGEST = 32


def is_pack(path: str | os.PathLike[str] | None) -> bool:
    """Whether ``path`` is a file that starts like a pack (its content is checked on opening).

    Example:
        >>> is_pack("/nonexistent.3dsrpack"), is_pack(None)
        (False, False)
    """
    if path is None or not Path(path).is_file():
        return False
    try:
        with open(path, "rb") as fh:
            return fh.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def _pack_flag(key: str, value: Any) -> str:
    """The `threedsr-cli pack` option that sets ``key`` to ``value`` (json's lists for pairs).

    Example:
        >>> _pack_flag("grid_shape", [480, 640]), _pack_flag("principal_point", [320.5, 240])
        ('--grid 640x480', '--principal-point 320.5,240')
        >>> _pack_flag("focal_px", [600.0, 601.5]), _pack_flag("distortion", ["division", [-0.2]])
        ('--focal-px 600.0,601.5', '--camera <its calibration file>')
    """
    if key == "grid_shape":
        return f"--grid {value[1]}x{value[0]}"
    if key in ("principal_point", "focal_px") and isinstance(value, list | tuple):
        return f"--{key.replace('_', '-')} {value[0]},{value[1]}"
    if key == "distortion":
        return "--camera <its calibration file>"
    return f"--{key.replace('_', '-')} {value}"


@dataclass(frozen=True)
class PackedSample:
    """What eval and reports need of a packed sample (the fields of a pcprep ``SampleRef`` they
    read), its native-resolution mask, and where its arrays lie in the file."""

    path: Path  # the geometry file, relative to the dataset root it was packed from
    split: str
    defect_type: str
    label: int
    native_shape: tuple[int, int]
    plane: tuple[float, ...]
    blobs: Mapping[str, tuple[int, int]]
    gt_path: None = None  # masks travel inside the pack (see `native_gt`)

    @property
    def has_native_gt(self) -> bool:
        return "native_gt" in self.blobs


class Pack:
    """An opened, checksum-verified pack (the whole file is held in memory).

    Raises:
        ThreedsrError: not a pack, another format version, truncated or corrupt (names the file).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            raw = self.path.read_bytes()
        except OSError as exc:
            raise ThreedsrError(f"{path}: cannot read the pack ({exc.strerror or exc})") from None
        if raw[: len(MAGIC)] != MAGIC:
            raise ThreedsrError(f"{path}: not a threedsr pack (threedsr-cli pack writes them)")
        if len(raw) < HEAD.size + _DIGEST:
            raise ThreedsrError(f"{path}: pack is truncated or corrupt ({len(raw)} bytes)")
        _, version, head_len = HEAD.unpack_from(raw)
        if version != VERSION:
            raise ThreedsrError(f"{path}: pack format {version}; this threedsr reads {VERSION}")
        if hashlib.sha256(raw[:-_DIGEST]).digest() != raw[-_DIGEST:]:
            raise ThreedsrError(f"{path}: pack is truncated or corrupt (checksum mismatch)")
        self._blob = memoryview(raw)[HEAD.size + head_len : -_DIGEST]
        header = json.loads(raw[HEAD.size : HEAD.size + head_len].decode("utf-8"))
        self.category: str = header["category"]
        self.layout: str = header["layout"]
        self.params: dict[str, Any] = header["params"]
        # absent from packs made before own scans had a unit: pcprep's defaults
        self.read_options: dict[str, Any] = dict(header.get("read_options") or {})
        self.rgb: str = header["rgb"]
        self.samples: dict[str, list[PackedSample]] = {
            split: [
                PackedSample(
                    Path(s["path"]),
                    split,
                    s["defect_type"],
                    int(s["label"]),
                    (int(s["native_shape"][0]), int(s["native_shape"][1])),
                    tuple(float(v) for v in s["plane"]),
                    {k: (int(o), int(n)) for k, (o, n) in s["blobs"].items()},
                )
                for s in entries
            ]
            for split, entries in header["splits"].items()
        }

    @property
    def size(self) -> int:
        return int(self.params["size"])

    def _data(self, sample: PackedSample, key: str) -> bytes:
        offset, n = sample.blobs[key]
        return lzma.decompress(self._blob[offset : offset + n])

    def check(
        self,
        category: str | None,
        params: Mapping[str, Any],
        read_options: Mapping[str, Any] | None = None,
    ) -> None:
        """Refuse another class, or other preprocessing or reading (own scans' depth unit, ...)
        than the pack was made with (one line)."""
        if category is not None and category != self.category:
            raise ThreedsrError(f"{self.path}: holds class {self.category!r}, not {category!r}")
        want = json.loads(json.dumps({**params, **(read_options or {})}))
        have = {**self.params, **self.read_options}
        if want != have:
            diff = sorted(k for k in {*want, *have} if want.get(k) != have.get(k))
            said = ", ".join(f"{k} {have.get(k)!r} (asked {want.get(k)!r})" for k in diff)
            flags = [_pack_flag(k, want[k]) for k in diff if k in _PACK_OPTIONS and k in want]
            hint = f" (threedsr-cli pack {' '.join(flags)} ...)" if flags else ""
            raise ThreedsrError(
                f"{self.path}: packed with other preprocessing: {said}; pack again with those "
                f"settings{hint}"
            )

    def native_gt(self, sample: PackedSample) -> np.ndarray:
        """The native-resolution mask eval's native metrics use (all False when none)."""
        if not sample.has_native_gt:
            return np.zeros(sample.native_shape, dtype=bool)
        return unpack_bits(self._data(sample, "native_gt"), sample.native_shape)

    def prepared(
        self, split: str, progress: Callable[[int, int], None] | None = None
    ) -> list[pcprep.Prepared]:
        """The split's pcprep ``Prepared`` records, equal to preprocessing the folder (RGB: as
        the ``rgb`` codec says). An absent split is an empty list."""
        return self.decode(self.samples.get(split, []), progress)

    def decode(
        self, samples: list[PackedSample], progress: Callable[[int, int], None] | None = None
    ) -> list[pcprep.Prepared]:
        """``Prepared`` records of some of the pack's samples, in order."""
        out = []
        if progress is not None:
            progress(0, len(samples))
        for i, s in enumerate(samples):
            out.append(self._decode(s))
            if progress is not None:
                progress(i + 1, len(samples))
        return out

    def _decode(self, s: PackedSample) -> pcprep.Prepared:
        return decode_sample(lambda key: self._data(s, key), s, self.size, self.rgb)


def decode_sample(
    data: Callable[[str], bytes], s: PackedSample, side: int, rgb_codec: str
) -> pcprep.Prepared:
    """One sample's ``Prepared`` record from its blobs (``data(key)``: one, decompressed):
    what :class:`Pack` reads and what :func:`~threedsr.packed_write.write_pack` checks."""
    shape = (side, side)
    if "rgb" not in s.blobs:  # a scan without colour (pcprep's placeholder)
        rgb = np.zeros((side, side, 3), np.float32)
    elif rgb_codec == "exact":
        h, w = s.native_shape
        rows, cols = read_lines(h, side), read_lines(w, side)
        canvas = np.zeros((h, w, 3), np.uint8)
        canvas[np.ix_(rows, cols)] = from_colour_planes(data("rgb"), (len(rows), len(cols)))
        rgb = pcprep.resize_rgb(canvas, side)
    else:
        rgb = from_colour_planes(data("rgb"), shape).astype(np.float32) / np.float32(255)
    gt = unpack_bits(data("gt"), shape).astype(np.float32) if "gt" in s.blobs else None
    return pcprep.Prepared(
        depth=from_byte_planes(data("depth"), np.float32, shape),
        rgb=rgb,
        valid=unpack_bits(data("valid"), shape),
        foreground=unpack_bits(data("foreground"), shape),
        gt=gt,
        native_shape=s.native_shape,
        path=s.path,
        label=s.label,
        defect_type=s.defect_type,
        plane=np.asarray(s.plane, dtype=np.float64),
        colour="rgb" in s.blobs,
    )
