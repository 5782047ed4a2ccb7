"""Writing a pack (:mod:`threedsr.packed`): every split preprocessed, each sample encoded and
decoded again before one atomic write."""

from __future__ import annotations

import hashlib
import json
import lzma
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pcprep
import vqcore

from threedsr.errors import ThreedsrError
from threedsr.packed import HEAD, MAGIC, RGB_CODECS, VERSION, Pack, PackedSample, decode_sample
from threedsr.packed_codecs import byte_planes, colour_planes, compress, pack_bits, read_lines

__all__ = ["write_pack"]

SPLITS = ("train", "validation", "test")


def _encode(
    ref: pcprep.SampleRef, split: str, root: Path, params: Mapping[str, Any], rgb_codec: str
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """One sample's header entry and compressed arrays, checked to decode to its preprocessing
    (bit for bit; ``uint8`` RGB within its rounding)."""
    sample = ref.load()
    prep = pcprep.preprocess(sample, **params)
    side = prep.depth.shape[0]
    raw = {
        "depth": byte_planes(prep.depth.astype(np.float32, copy=False)),
        "valid": pack_bits(prep.valid),
        "foreground": pack_bits(prep.foreground),
    }
    # A scan without colour has no "rgb" blob: that is how the pack says so.
    if sample.rgb is not None and rgb_codec == "exact":
        h, w = sample.shape
        raw["rgb"] = colour_planes(sample.rgb[np.ix_(read_lines(h, side), read_lines(w, side))])
    elif sample.rgb is not None:
        raw["rgb"] = colour_planes(np.rint(prep.rgb * 255).astype(np.uint8))
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
    got = decode_sample(lambda key: lzma.decompress(blobs[key]), packed, side, rgb_codec)
    tol = 0.0 if rgb_codec == "exact" else 0.5 / 255 + 1e-6
    same = all(
        np.array_equal(getattr(got, k), getattr(prep, k))
        for k in ("depth", "valid", "foreground", "gt", "plane", "colour")
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
    read_options: Mapping[str, Any] | None = None,
) -> Pack:
    """Preprocess every split of ``<data_root>/<category>`` with ``params`` (pcprep keywords,
    ``size`` included), read with ``read_options`` (pcprep reader keywords: own scans'
    ``depth_unit``, ...), and write them to ``out`` atomically; every sample is decoded again and
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
            refs = pcprep.index_dataset(root, category, split, **(read_options or {}))
            jobs += [(r, split) for r in refs]
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
        "read_options": json.loads(json.dumps(dict(read_options or {}))),
        "rgb": rgb,
        "pcprep": pcprep.__version__,
        "splits": splits,
    }
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    body = b"".join([HEAD.pack(MAGIC, VERSION, len(head)), head, *chunks])
    digest = hashlib.sha256(body).digest()
    return Pack(vqcore.atomic_write(out, lambda tmp: tmp.write_bytes(body + digest)))
