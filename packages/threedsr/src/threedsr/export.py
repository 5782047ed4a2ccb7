"""Export a detector's whole inference map to ONNX, TorchScript or a ``torch.export`` program,
with a JSON sidecar.

The file holds one graph (:class:`threedsr.graph.InferenceGraph`): the model-resolution input
in, the smoothed anomaly map and the image score out. pcprep's preprocessing (point cloud ->
plane removal -> normalised depth and RGB at the model size) stays outside the graph: it is NumPy
that deployments call themselves, with the parameters the sidecar lists.

The sidecar ``<file>.json`` (:mod:`threedsr.export_sidecar`) says everything a deployment
needs: setup, size, channel order, input and output names and shapes, the preprocessing
parameters, the threshold when one was chosen, the versions, and the file's size and SHA-256
(so a truncated or swapped file is refused before it runs).

How each format is recorded (why: docs/architecture.md, "Export"):

- ``onnx``: with ``torch.onnx.export(..., dynamo=True)``, the ``torch.export``-based exporter, on
  torch >= :data:`DYNAMO_MIN_TORCH` with ``onnxscript`` (``threedsr[onnx]``); else with the
  TorchScript-based one (``dynamo=False``), which torch deprecates. Both give the same input and
  output names, dynamic batch and maps; the sidecar's ``versions`` names the exporter and opset.
- ``torchscript``: ``torch.jit.trace``, kept for the deployments that load it with
  ``torch.jit.load``. torch deprecates ``torch.jit`` (2.15 warns); the export says so once, as a
  ``FutureWarning`` in threedsr's words.
- ``pt2``: ``torch.export.export`` + ``torch.export.save`` (torch >= :data:`DYNAMO_MIN_TORCH`):
  ``torch.export.load(path).module()(x)`` runs it with torch alone, no threedsr.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import torch
import vqcore

from threedsr.config_checks import is_finite_real
from threedsr.errors import ThreedsrError, require_detector
from threedsr.export_sidecar import build_sidecar, content_digest, file_digest, sidecar_path
from threedsr.graph import InferenceGraph
from threedsr.onnx_optimize import optimize_onnx_file

__all__ = [
    "DYNAMO_MIN_TORCH",
    "DYNAMO_OPSET",
    "FORMATS",
    "OPSET",
    "export_detector",
    "onnx_exporter",
]

FORMATS = ("onnx", "torchscript", "pt2")
#: ONNX opset of the graphs of the TorchScript-based exporter (onnxruntime >= 1.14 runs it).
OPSET = 17
#: ONNX opset of the graphs of the torch.export-based exporter: its own functions' opset (a
#: lower one is converted afterwards, which may fail; onnxruntime >= 1.14 runs 18).
DYNAMO_OPSET = 18
#: The oldest torch whose ``torch.export``-based ONNX exporter, and ``torch.export`` for
#: ``pt2``, threedsr uses: the oldest checked (2.11 and 2.15 record every setup and method, and
#: their graphs equal the eager maps). Torch 2.5's exporter takes the memory's eager search
#: (``torch.onnx.is_in_onnx_export()`` stays False there, ``torch.compiler.is_exporting`` is
#: missing) and fails on its data-dependent loop; see docs/architecture.md, "Export".
DYNAMO_MIN_TORCH = (2, 11)


def _hypot(g: Any, a: Any, b: Any) -> Any:
    # torch.onnx has no aten::hypot; the surface descriptors' gradient magnitude needs it.
    return g.op("Sqrt", g.op("Add", g.op("Mul", a, a), g.op("Mul", b, b)))


def _torch_version() -> tuple[int, int]:
    major, minor = torch.__version__.split(".")[:2]
    return int(major), int(minor)


def onnx_exporter() -> str:
    """Which of torch's ONNX exporters :func:`export_detector` uses here: ``"dynamo"`` (the
    ``torch.export``-based one, ``torch.onnx.export(..., dynamo=True)``) on torch >=
    :data:`DYNAMO_MIN_TORCH` with ``onnxscript`` installed (``threedsr[onnx]``), else
    ``"torchscript"`` (``dynamo=False``, which torch deprecates with ``torch.jit``)."""
    if _torch_version() < DYNAMO_MIN_TORCH:
        return "torchscript"
    try:
        import onnxscript  # noqa: F401
    except ImportError:
        return "torchscript"
    return "dynamo"


def _check_onnx(path: Path) -> int | None:
    """The ONNX checker's verdict when the ``onnx`` package is there (the TorchScript-based
    export needs only torch; ``threedsr[onnx]`` brings the checker), and the file's opset."""
    try:
        import onnx
    except ImportError:
        return None
    onnx.checker.check_model(str(path))
    opsets = onnx.load(str(path), load_external_data=False).opset_import
    return next((int(o.version) for o in opsets if o.domain in ("", "ai.onnx")), None)


def _dynamic_example(example: torch.Tensor, dynamic: bool) -> tuple[torch.Tensor, Any]:
    """The example input and ``dynamic_shapes`` of a ``torch.export`` recording: a dynamic batch
    is recorded from 2 inputs (``torch.export`` takes a size-1 dimension for a constant)."""
    if not dynamic:
        return example, None
    return example.expand(2, *example.shape[1:]).contiguous(), ({0: torch.export.Dim("batch")},)


def _export_onnx_dynamo(
    graph: InferenceGraph, example: torch.Tensor, target: Path, dynamic: bool
) -> str:
    """Record ``graph`` with the ``torch.export``-based exporter; returns the optimizer that
    cleaned the graph up (:func:`~threedsr.onnx_optimize.optimize_onnx_file`)."""
    from onnxscript import opset18

    def hypot(a: Any, b: Any) -> Any:  # as _hypot: torch's ONNX functions have no hypot
        return opset18.Sqrt(opset18.Add(opset18.Mul(a, a), opset18.Mul(b, b)))

    example, shapes = _dynamic_example(example, dynamic)
    # The exporter logs a line per optional torchvision operator it cannot register.
    log = logging.getLogger("torch.onnx")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        torch.onnx.export(
            graph,
            (example,),
            str(target),
            dynamo=True,
            opset_version=DYNAMO_OPSET,
            input_names=["input"],
            output_names=graph.output_names,
            dynamic_shapes=shapes,
            custom_translation_table={torch.ops.aten.hypot.default: hypot},
            external_data=False,  # one file: the sidecar's size and SHA-256 cover it all
            verbose=False,
            optimize=False,  # onnxscript's optimizer took minutes on a real memory: below
        )
    finally:
        log.setLevel(level)
    return optimize_onnx_file(target)


def _write_graph(
    graph: InferenceGraph, fmt: str, example: torch.Tensor, target: Path, dynamic: bool
) -> tuple[str | None, bool, str | None, str | None]:
    """Record ``graph`` into ``target``; returns the ONNX exporter used (None: not ONNX),
    whether torch warned that what recorded it (TorchScript) is deprecated, why the
    ``torch.export``-based exporter was given up for the TorchScript-based one (None: it was
    not), and the optimizer that cleaned its graph up (None: none ran)."""
    names = graph.output_names
    exporter = onnx_exporter() if fmt == "onnx" else None
    gave_up = optimizer = None
    with warnings.catch_warnings(record=True) as caught, torch.no_grad():
        # Trace-time checks on Python ints (shape asserts) warn once per layer; they hold for
        # the traced size, which the sidecar pins. torch's deprecation of torch.jit (a warning
        # per call) becomes one FutureWarning of export_detector, in threedsr's words.
        warnings.simplefilter("always")
        if exporter == "dynamo":
            try:
                optimizer = _export_onnx_dynamo(graph, example, target, dynamic)
            except Exception as exc:
                # A graph torch.export cannot record yet (a newer torch, a detector the tests
                # do not build): the TorchScript-based exporter records what it traces.
                gave_up = _one_line(exc)
                exporter = "torchscript"
        if exporter == "torchscript":
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
        elif fmt == "pt2":
            example, shapes = _dynamic_example(example, dynamic)
            program = torch.export.export(graph, (example,), dynamic_shapes=shapes)
            torch.export.save(program, str(target))
        elif fmt == "torchscript":
            traced = torch.jit.trace(graph, (example,), check_trace=False)
            torch.jit.save(traced, str(target))
    return exporter, any(_is_jit_deprecation(w) for w in caught), gave_up, optimizer


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def _deprecation(fmt: str) -> str:
    what = "torch.jit" if fmt == "torchscript" else "the TorchScript-based ONNX exporter"
    instead = (
        "fmt='pt2' (torch.export) is its replacement"
        if fmt == "torchscript"
        else "with onnxscript installed (threedsr[onnx]) the export uses the torch.export-based one"
    )
    return (
        f"threedsr export: torch {torch.__version__} deprecates {what}, which this export used, "
        f"and a later torch may remove it; {instead}"
    )


def _is_jit_deprecation(w: warnings.WarningMessage) -> bool:
    text = str(w.message)
    return issubclass(w.category, (FutureWarning, DeprecationWarning)) and (
        "torch.jit" in text or "TorchScript" in text
    )


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
        fmt: ``onnx``, ``torchscript`` or ``pt2`` (an ``ExportedProgram``, torch >= 2.11).
        size: model-resolution side; None = the detector's (its preprocessing size).
        dynamic_batch: any batch size; False = batch 1 only (the fastest graph on one image).
        threshold: an image-score threshold to record; None = the detector's calibrated one.

    Returns:
        The sidecar's content.

    Raises:
        ThreedsrError: unknown format, bad size, pt2 on a torch too old for it, or a part that
            cannot be exported (one line).

    Warns:
        FutureWarning: once, when this torch deprecates the TorchScript the export used
            (``torchscript``, or ``onnx`` without ``onnxscript``).
        UserWarning: ``onnx``, when the ``torch.export``-based exporter failed and the
            TorchScript-based one recorded the file instead (its message in one line).
    """
    require_detector(detector, "export")
    # read_sidecar refuses a non-finite threshold: the export would be written, then unusable
    if threshold is not None and not is_finite_real(threshold):
        raise ThreedsrError(f"export: threshold must be a finite number, got {threshold!r}")
    if fmt not in FORMATS:
        raise ThreedsrError(f"export: unknown format {fmt!r} (onnx, torchscript or pt2)")
    if fmt == "pt2" and _torch_version() < DYNAMO_MIN_TORCH:
        need = ".".join(map(str, DYNAMO_MIN_TORCH))
        raise ThreedsrError(
            f"export: pt2 needs torch >= {need} (this is {torch.__version__}); use torchscript"
        )
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
            (
                written["exporter"],
                written["deprecated"],
                written["gave_up"],
                written["optimizer"],
            ) = _write_graph(graph, fmt, example, tmp, dynamic_batch)
            if fmt == "onnx":
                written["opset"] = _check_onnx(tmp)
        except Exception as exc:  # the exporter's own message, as one line
            raise ThreedsrError(
                f"{out}: cannot export this detector to {fmt} ({_one_line(exc)})"
            ) from None
        written.update(digest=file_digest(tmp), nbytes=tmp.stat().st_size)

    vqcore.atomic_write(out, write)
    if written["gave_up"]:
        warnings.warn(
            "threedsr export: torch's torch.export-based ONNX exporter failed "
            f"({written['gave_up']}); the file was recorded with the TorchScript-based one",
            UserWarning,
            stacklevel=2,
        )
    if written["deprecated"] and not written["gave_up"]:
        warnings.warn(_deprecation(fmt), FutureWarning, stacklevel=2)
    digest, nbytes = written["digest"], written["nbytes"]
    sidecar = build_sidecar(
        detector, graph, fmt, out, size, dynamic_batch, threshold, digest, nbytes
    )
    if fmt == "onnx":
        exporter = written["exporter"]
        # the file's own opset (the torch.export-based exporter may keep 18 when asked lower)
        default = DYNAMO_OPSET if exporter == "dynamo" else OPSET
        sidecar["versions"]["onnx_opset"] = str(written["opset"] or default)
        sidecar["versions"]["onnx_exporter"] = exporter
        if written["optimizer"]:
            sidecar["versions"]["onnx_optimizer"] = written["optimizer"]
    sidecar["content_sha256"] = content_digest(sidecar)
    text = json.dumps(sidecar, indent=2) + "\n"
    vqcore.atomic_write(sidecar_path(out), lambda tmp: tmp.write_text(text))
    return sidecar
