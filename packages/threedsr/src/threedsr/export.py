"""Export a detector's whole inference map to ONNX or TorchScript, with a JSON sidecar.

The file holds one graph (:class:`threedsr.graph.InferenceGraph`): the model-resolution input
in, the smoothed anomaly map and the image score out. pcprep's preprocessing (point cloud ->
plane removal -> normalised depth and RGB at the model size) stays outside the graph: it is NumPy
that deployments call themselves, with the parameters the sidecar lists.

The sidecar ``<file>.json`` says everything a deployment needs: setup, size, channel order, input
and output names and shapes, the preprocessing parameters, the threshold when one was chosen,
the versions, and the file's size and SHA-256 (so a truncated or swapped file is refused before
it runs).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
import vqcore

from threedsr.checkpoint import package_versions
from threedsr.errors import ThreedsrError
from threedsr.graph import InferenceGraph

__all__ = [
    "CHANNELS",
    "EXPORT_KIND",
    "FORMATS",
    "OPSET",
    "export_detector",
    "file_digest",
    "read_sidecar",
    "sidecar_path",
]

EXPORT_KIND = "threedsr.export"
EXPORT_FORMAT_VERSION = 1
FORMATS = ("onnx", "torchscript")
#: ONNX opset of the exported graphs (onnxruntime >= 1.14 runs it).
OPSET = 17
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


def _hypot(g: Any, a: Any, b: Any) -> Any:
    # torch.onnx has no aten::hypot; the surface descriptors' gradient magnitude needs it.
    return g.op("Sqrt", g.op("Add", g.op("Mul", a, a), g.op("Mul", b, b)))


def _check_onnx(path: Path) -> None:
    """The ONNX checker's verdict when the ``onnx`` package is there (the export needs only
    torch; ``threedsr[onnx]`` brings the checker)."""
    try:
        import onnx
    except ImportError:
        return
    onnx.checker.check_model(str(path))


def _write_graph(
    graph: InferenceGraph, fmt: str, example: torch.Tensor, target: Path, dynamic: bool
):
    names = graph.output_names
    with warnings.catch_warnings(), torch.no_grad():
        # Trace-time checks on Python ints (shape asserts) warn once per layer; they hold for
        # the traced size, which the sidecar pins.
        warnings.simplefilter("ignore")
        if fmt == "onnx":
            torch.onnx.register_custom_op_symbolic("aten::hypot", _hypot, OPSET)
            axes = {n: {0: "batch"} for n in ["input", *names]} if dynamic else None
            torch.onnx.export(
                graph,
                (example,),
                str(target),
                dynamo=False,
                opset_version=OPSET,
                input_names=["input"],
                output_names=names,
                dynamic_axes=axes,
            )
        else:
            traced = torch.jit.trace(graph, (example,), check_trace=False)
            torch.jit.save(traced, str(target))


def export_detector(
    detector: Any,
    out: str | os.PathLike[str],
    *,
    fmt: str = "onnx",
    size: int | None = None,
    dynamic_batch: bool = False,
    threshold: float | None = None,
) -> dict[str, Any]:
    """Write ``detector``'s inference map to ``out`` and its sidecar to ``out + ".json"``.

    Args:
        detector: a loaded :class:`threedsr.Detector` (fp32; its memory, fusion weight and
            smoothing are part of the graph).
        out: the file to write (atomically: temp file, then ``os.replace``).
        fmt: ``onnx`` or ``torchscript``.
        size: model-resolution side; None = the detector's (its preprocessing size).
        dynamic_batch: any batch size; False = batch 1 only (the fastest graph on one image).
        threshold: an image-score threshold to record; None = the detector's calibrated one.

    Returns:
        The sidecar's content.

    Raises:
        ThreedsrError: unknown format, bad size, or a part that cannot be exported (one line).
    """
    if fmt not in FORMATS:
        raise ThreedsrError(f"export: unknown format {fmt!r} (onnx or torchscript)")
    out = Path(out)
    if out.is_dir():
        raise ThreedsrError(f"{out}: is a folder; give the file to write")
    if not out.parent.is_dir():
        raise ThreedsrError(f"{out.parent}: folder not found")
    size = int(size or detector.size)
    graph = InferenceGraph(detector, size).to("cpu")
    example = torch.zeros(1, graph.in_channels, size, size)
    written: dict[str, Any] = {}

    def write(tmp: Path) -> None:
        try:
            _write_graph(graph, fmt, example, tmp, dynamic_batch)
            if fmt == "onnx":
                _check_onnx(tmp)
        except Exception as exc:  # the exporter's own message, as one line
            msg = " ".join(str(exc).split())[:200] or type(exc).__name__
            raise ThreedsrError(f"{out}: cannot export this detector to {fmt} ({msg})") from None
        written.update(digest=file_digest(tmp), nbytes=tmp.stat().st_size)

    vqcore.atomic_write(out, write)
    digest, nbytes = written["digest"], written["nbytes"]
    sidecar = _sidecar(detector, graph, fmt, out, size, dynamic_batch, threshold, digest, nbytes)
    text = json.dumps(sidecar, indent=2) + "\n"
    vqcore.atomic_write(sidecar_path(out), lambda tmp: tmp.write_text(text))
    return sidecar


def _sidecar(
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
    batch: int | str = "batch" if dynamic else 1
    outputs = {"anomaly_map": [batch, size, size], "score": [batch]}
    cells = {"codes_top": size // 8, "codes_bot": size // 4}
    for name in graph.output_names[2:]:
        side = cells["codes_top" if name.startswith("codes_top") else "codes_bot"]
        outputs[name] = [batch, side, side]
    versions = package_versions()
    if fmt == "onnx":
        versions["onnx_opset"] = str(OPSET)
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
    return {
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
        "smoothing": {"method": graph.smoothing, "size": graph.filter_size, "sigma": graph.sigma},
        "memory": memory,
        "threshold": None if threshold is None else float(threshold),
        "display": None if display is None else display.state(),
        "source": None if detector.path is None else str(detector.path),
        "versions": versions,
    }


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
    nbytes = model.stat().st_size
    if nbytes != meta.get("bytes"):
        raise ThreedsrError(
            f"{model}: truncated or modified ({nbytes} bytes, {meta.get('bytes')} at export)"
        )
    if file_digest(model) != meta.get("sha256"):
        raise ThreedsrError(f"{model}: corrupt or modified (SHA-256 differs from the export's)")
    return meta
