"""The JSON sidecar ``<file>.json`` of an exported detector: what a deployment needs to run the
file (setup, size, channel order, input and output shapes, preprocessing, smoothing, threshold,
versions), and the file's size and SHA-256, so that a truncated or swapped file is refused
before it runs."""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from pathlib import Path
from typing import Any

import pcprep

from threedsr.checkpoint import package_versions
from threedsr.config_checks import is_finite_real
from threedsr.errors import ThreedsrError
from threedsr.graph import InferenceGraph
from threedsr.preprocess_config import PreprocessConfig

__all__ = [
    "CHANNELS",
    "EXPORT_FORMAT_VERSION",
    "EXPORT_KIND",
    "build_sidecar",
    "content_digest",
    "file_digest",
    "read_sidecar",
    "sidecar_edited",
    "sidecar_path",
]

EXPORT_KIND = "threedsr.export"
EXPORT_FORMAT_VERSION = 1
#: Input channel order per setup (the backbone's).
CHANNELS = {"rgbd": ["D", "R", "G", "B"], "depth": ["D"], "rgb": ["R", "G", "B"]}


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """``model.onnx`` -> ``model.onnx.json``."""
    p = Path(path)
    return p.with_name(p.name + ".json")


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes, hex."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def build_sidecar(
    detector: Any,
    graph: InferenceGraph,
    fmt: str,
    out: Path,
    size: int,
    dynamic: bool,
    threshold: float | None,
    digest: str,
    nbytes: int,
) -> dict[str, Any]:
    """The sidecar of ``out``, a ``fmt`` export of ``detector``'s ``graph`` (see the module)."""
    batch: int | str = "batch" if dynamic else 1
    outputs = {"anomaly_map": [batch, size, size], "score": [batch]}
    cells = {"codes_top": size // 8, "codes_bot": size // 4}
    for name in graph.output_names[2:]:
        side = cells["codes_top" if name.startswith("codes_top") else "codes_bot"]
        outputs[name] = [batch, side, side]
    versions = package_versions()
    memory = None
    if graph.memory is not None:
        memory = {
            "kind": graph.memory.features.kind,
            "weight": graph.weight,
            "heads": graph.runs_heads,
            "local_scale": graph.memory.local_scale is not None,
        }
    display = getattr(detector, "display", None)
    if threshold is None and display is not None:
        threshold = display.threshold  # the calibrated one: every export carries a threshold
    preprocess = {**detector.preprocess, "size": size}
    meta = {
        "kind": EXPORT_KIND,
        "format_version": EXPORT_FORMAT_VERSION,
        "method": graph.method,
        "format": fmt,
        "file": out.name,
        "bytes": nbytes,
        "sha256": digest,
        "setup": graph.setup,
        "category": detector.category,
        "size": size,
        "dynamic_batch": dynamic,
        "channels": CHANNELS[graph.setup],
        "input": {
            "name": "input",
            "shape": [batch, graph.in_channels, size, size],
            "dtype": "float32",
            "layout": "NCHW",
        },
        "outputs": outputs,
        "preprocess": preprocess,
        "read_options": dict(getattr(detector, "read_options", {})),
        "smoothing": {"method": graph.smoothing, "size": graph.filter_size, "sigma": graph.sigma},
        "memory": memory,
        "threshold": None if threshold is None else float(threshold),
        "display": None if display is None else display.state(),
        # Absolute: a path from the folder the command happened to run in means nothing later.
        "source": None if detector.path is None else os.path.abspath(detector.path),
        # What the run folder's detector.pt was when exported: a retrained run keeps its old
        # detector.onnx (exports are not the run's files), which must not pass for the new one.
        "source_sha256": (
            file_digest(Path(detector.path))
            if detector.path is not None and Path(detector.path).is_file()
            else None
        ),
        # Where --threshold auto finds good validation scans for this export (absolute, as
        # train records it), as the torch backend finds them in the detector's config.
        "data_root": getattr(getattr(detector, "config", None), "data_root", None),
        "versions": versions,
    }
    return meta


def content_digest(meta: dict[str, Any]) -> str:
    """SHA-256 of a sidecar's fields, ``content_sha256`` aside (key order and spacing do not
    count: only an edited value does)."""
    fields = {k: v for k, v in meta.items() if k != "content_sha256"}
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()


def sidecar_edited(meta: dict[str, Any]) -> bool:
    """True when a field changed since the export recorded ``content_sha256`` (a threshold set
    by hand): the file is the user's then, which ``export --overwrite`` must not replace.
    Sidecars written before the field cannot tell, and count as unedited."""
    recorded = meta.get("content_sha256")
    return recorded is not None and recorded != content_digest(meta)


def read_sidecar(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The validated sidecar of an exported file (``path`` is the model file).

    Raises:
        ThreedsrError: missing or unreadable sidecar, wrong kind, or a model file whose size or
            SHA-256 differs from the one recorded at export (truncated, corrupt or replaced).
    """
    model = Path(path)
    side = sidecar_path(model)
    if not model.is_file():
        raise ThreedsrError(f"{model}: no such exported model")
    if not side.is_file():
        raise ThreedsrError(f"{model}: its sidecar {side.name} is missing (re-export the detector)")
    try:
        meta = json.loads(side.read_text())
    except (OSError, ValueError) as exc:
        raise ThreedsrError(
            f"{side}: unreadable sidecar ({' '.join(str(exc).split())[:120]})"
        ) from None
    if not isinstance(meta, dict) or meta.get("kind") != EXPORT_KIND:
        raise ThreedsrError(f"{side}: not a threedsr export sidecar")
    if meta.get("format_version") != EXPORT_FORMAT_VERSION:
        raise ThreedsrError(
            f"{side}: unsupported export format version {meta.get('format_version')!r}"
        )
    _check_fields(meta, side)
    nbytes = model.stat().st_size
    if nbytes != meta.get("bytes"):
        raise ThreedsrError(
            f"{model}: truncated or modified ({nbytes} bytes, {meta.get('bytes')} at export)"
        )
    if file_digest(model) != meta.get("sha256"):
        raise ThreedsrError(f"{model}: corrupt or modified (SHA-256 differs from the export's)")
    return meta


def _check_fields(meta: dict[str, Any], side: Path) -> None:
    """The fields a backend runs by are what an export writes.

    A sidecar is the one file of an export people are told to read and may edit (its
    threshold); a field edited into another type would otherwise surface as a Python error
    far from the file (a TypeError, or a NaN threshold failing only when the results are
    written), so each is checked here and named with the file."""

    def bad(field: str, why: str) -> ThreedsrError:
        return ThreedsrError(f"{side}: {field}: {why} (edited? re-export the detector)")

    setup = meta.get("setup")
    if setup not in CHANNELS:
        raise bad("setup", f"expected one of {sorted(CHANNELS)}, got {setup!r}")
    if meta.get("channels") != CHANNELS[setup]:
        raise bad(
            "channels", f"a {setup} export has {CHANNELS[setup]}, got {meta.get('channels')!r}"
        )
    if meta.get("method") not in ("memory", "3dsr", "fused"):
        raise bad("method", f"expected memory, 3dsr or fused, got {meta.get('method')!r}")
    size = meta.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise bad("size", f"expected a positive integer, got {size!r}")
    shape = meta.get("input", {}).get("shape") if isinstance(meta.get("input"), dict) else None
    want = [len(CHANNELS[setup]), size, size]
    if not isinstance(shape, list) or len(shape) != 4 or shape[1:] != want:
        raise bad("input", f"shape {shape!r} is not (batch, {want[0]}, {size}, {size})")
    pre = meta.get("preprocess")
    known = set(inspect.signature(pcprep.preprocess).parameters) - {"sample"}
    if not isinstance(pre, dict) or not set(pre) <= known:
        extra = sorted(set(pre) - known) if isinstance(pre, dict) else pre
        raise bad("preprocess", f"not pcprep.preprocess keywords ({extra!r})")
    if pre.get("size") != size:
        raise bad("preprocess", f"size {pre.get('size')!r} is not the export's {size}")
    opts = meta.get("read_options") or {}
    try:
        if not isinstance(opts, dict):
            raise TypeError
        PreprocessConfig(**opts)
    except (TypeError, ThreedsrError) as exc:
        why = (
            str(exc)
            if isinstance(exc, ThreedsrError)
            else "expected PreprocessConfig.read_options() keywords"
        )
        raise bad("read_options", why) from None
    if meta.get("threshold") is not None and not is_finite_real(meta["threshold"]):
        raise bad("threshold", f"expected a finite number, got {meta['threshold']!r}")
    display = meta.get("display")
    if display is not None:
        fields = ("low", "high", "threshold")
        if (
            not isinstance(display, dict)
            or set(display) != {*fields, "source"}
            or not all(is_finite_real(display[k]) for k in fields)
        ):
            raise bad(
                "display", f"expected finite low, high, threshold and a source, got {display!r}"
            )
    if not isinstance(meta.get("data_root"), str | None):
        raise bad("data_root", f"expected a folder or null, got {meta.get('data_root')!r}")
    if not isinstance(meta.get("dynamic_batch"), bool):
        raise bad("dynamic_batch", f"expected true or false, got {meta.get('dynamic_batch')!r}")
