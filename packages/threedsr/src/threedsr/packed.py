"""A class's preprocessed splits in one compact file (``.3dsrpack``) that train and eval read in
place of the dataset folder: for machines that take few megabytes of input.

Depth, masks and the plane are stored bit-exactly. RGB is ``exact`` (the native uint8 pixels
pcprep's bilinear resize reads, resized again on reading: the same float32 as the folder gives)
or ``uint8`` (the resized colour rounded to 8 bits: smaller, not identical). Layout:
``MAGIC | version u32 | header length u64 | header JSON | blobs | SHA-256 of all before``.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import struct
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pcprep
import vqcore

from threedsr.errors import ThreedsrError
from threedsr.packed_codecs import (
    byte_planes,
    colour_planes,
    compress,
    from_byte_planes,
    from_colour_planes,
    pack_bits,
    read_lines,
    unpack_bits,
)

__all__ = ["PACK_SUFFIX", "RGB_CODECS", "Pack", "PackedSample", "is_pack", "write_pack"]

PACK_SUFFIX = ".3dsrpack"
RGB_CODECS = ("exact", "uint8")
MAGIC = b"3DSRPACK"
VERSION = 1
SPLITS = ("train", "validation", "test")
_HEAD = struct.Struct("<8sIQ")
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
        if len(raw) < _HEAD.size + _DIGEST:
            raise ThreedsrError(f"{path}: pack is truncated or corrupt ({len(raw)} bytes)")
        _, version, head_len = _HEAD.unpack_from(raw)
        if version != VERSION:
            raise ThreedsrError(f"{path}: pack format {version}; this threedsr reads {VERSION}")
        if hashlib.sha256(raw[:-_DIGEST]).digest() != raw[-_DIGEST:]:
            raise ThreedsrError(f"{path}: pack is truncated or corrupt (checksum mismatch)")
        self._blob = memoryview(raw)[_HEAD.size + head_len : -_DIGEST]
        header = json.loads(raw[_HEAD.size : _HEAD.size + head_len].decode("utf-8"))
        self.category: str = header["category"]
        self.layout: str = header["layout"]
        self.params: dict[str, Any] = header["params"]
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

    def check(self, category: str | None, params: Mapping[str, Any]) -> None:
        """Refuse another class or other preprocessing than the pack was made with (one line)."""
        if category is not None and category != self.category:
            raise ThreedsrError(f"{self.path}: holds class {self.category!r}, not {category!r}")
        want = json.loads(json.dumps(dict(params)))
        if want != self.params:
            diff = sorted(k for k in {*want, *self.params} if want.get(k) != self.params.get(k))
            said = ", ".join(f"{k} {self.params.get(k)!r} (asked {want.get(k)!r})" for k in diff)
            raise ThreedsrError(
                f"{self.path}: packed with other preprocessing: {said}; pack again with those "
                "settings (threedsr-cli pack --size ...)"
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
        return _decode(lambda key: self._data(s, key), s, self.size, self.rgb)


def _decode(
    data: Callable[[str], bytes], s: PackedSample, side: int, rgb_codec: str
) -> pcprep.Prepared:
    shape = (side, side)
    if rgb_codec == "exact":
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
    )


def _encode(
    ref: pcprep.SampleRef, split: str, root: Path, params: Mapping[str, Any], rgb_codec: str
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """One sample's header entry and compressed arrays, checked to decode to its preprocessing
    (bit for bit; ``uint8`` RGB within its rounding)."""
    sample = ref.load()
    prep = pcprep.preprocess(sample, **params)
    side = prep.depth.shape[0]
    if rgb_codec == "exact":
        h, w = sample.shape
        rgb = colour_planes(sample.rgb[np.ix_(read_lines(h, side), read_lines(w, side))])
    else:
        rgb = colour_planes(np.rint(prep.rgb * 255).astype(np.uint8))
    raw = {
        "depth": byte_planes(prep.depth.astype(np.float32, copy=False)),
        "rgb": rgb,
        "valid": pack_bits(prep.valid),
        "foreground": pack_bits(prep.foreground),
    }
    if prep.gt is not None:
        if not np.isin(prep.gt, (0.0, 1.0)).all():
            raise ThreedsrError(f"{ref.path}: resized mask is not binary; cannot pack it")
        raw["gt"] = pack_bits(prep.gt)
    if ref.gt_path is not None and split == "test":
        gt = np.asarray(pcprep.read_mask(ref.gt_path)) > 0
        if gt.shape != sample.shape:
            raise ThreedsrError(f"{ref.gt_path}: mask is {gt.shape}, the scan is {sample.shape}")
        raw["native_gt"] = pack_bits(gt)
    blobs = {k: compress(v) for k, v in raw.items()}
    entry = {
        "path": ref.path.relative_to(root).as_posix(),
        "defect_type": ref.defect_type,
        "label": int(ref.label),
        "native_shape": list(sample.shape),
        "plane": [float(v) for v in prep.plane],
    }
    shape = (int(sample.shape[0]), int(sample.shape[1]))
    packed = PackedSample(
        Path(entry["path"]), split, ref.defect_type, int(ref.label), shape,
        tuple(entry["plane"]), dict.fromkeys(blobs, (0, 0)),
    )  # fmt: skip
    got = _decode(lambda key: lzma.decompress(blobs[key]), packed, side, rgb_codec)
    tol = 0.0 if rgb_codec == "exact" else 0.5 / 255 + 1e-6
    same = all(
        np.array_equal(getattr(got, k), getattr(prep, k))
        for k in ("depth", "valid", "foreground", "gt", "plane")
    )
    if not same or float(np.abs(got.rgb - prep.rgb).max()) > tol:
        raise ThreedsrError(f"{ref.path}: does not read back from the pack as preprocessed")
    return entry, blobs


def write_pack(
    out: str | os.PathLike[str],
    data_root: str | os.PathLike[str],
    category: str,
    params: Mapping[str, Any],
    *,
    rgb: str = "exact",
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Pack:
    """Preprocess every split of ``<data_root>/<category>`` with ``params`` (pcprep keywords,
    ``size`` included) and write them to ``out`` atomically; every sample is decoded again and
    compared with its preprocessing before anything is written.

    Raises:
        ThreedsrError: an unknown codec, no sample, or a sample that does not read back.
        PcprepError: a sample that cannot be read (names the file).
    """
    if rgb not in RGB_CODECS:
        raise ThreedsrError(f"rgb codec must be one of {RGB_CODECS}, got {rgb!r}")
    root = Path(data_root)
    jobs: list[tuple[pcprep.SampleRef, str]] = []
    for split in SPLITS:
        try:
            jobs += [(r, split) for r in pcprep.index_dataset(root, category, split)]
        except pcprep.PcprepError:
            if split != "validation":  # the one split a dataset may lack
                raise
    if not jobs:
        raise ThreedsrError(f"{root}: no samples for category {category!r}")
    n_workers = max(1, workers if workers is not None else min(4, os.cpu_count() or 1))
    if progress is not None:
        progress(0, len(jobs))
    splits: dict[str, list[dict[str, Any]]] = {}
    chunks: list[bytes] = []
    offset = 0
    with ThreadPoolExecutor(n_workers) as pool:
        # in order: the file's layout does not depend on the thread count
        work = pool.map(lambda j: _encode(j[0], j[1], root, params, rgb), jobs)
        for i, ((entry, blobs), (_, split)) in enumerate(zip(work, jobs, strict=True)):
            entry["blobs"] = {}
            for key, data in blobs.items():
                entry["blobs"][key] = [offset, len(data)]
                chunks.append(data)
                offset += len(data)
            splits.setdefault(split, []).append(entry)
            if progress is not None:
                progress(i + 1, len(jobs))
    header = {
        "category": category,
        "layout": pcprep.detect_layout(root),
        "params": json.loads(json.dumps(dict(params))),
        "rgb": rgb,
        "pcprep": pcprep.__version__,
        "splits": splits,
    }
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    body = b"".join([_HEAD.pack(MAGIC, VERSION, len(head)), head, *chunks])
    digest = hashlib.sha256(body).digest()
    return Pack(vqcore.atomic_write(out, lambda tmp: tmp.write_bytes(body + digest)))
