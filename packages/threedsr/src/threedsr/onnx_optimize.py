"""The graph clean-up after torch's ``torch.export``-based ONNX exporter.

The exporter writes each scalar of a slice, a reshape and a cast as nodes of their own: a
trained memory's search (some 50 products of the bank, each per part) came to 19k nodes. Its
default clean-up, onnxscript's optimizer, takes those to 5k but matches its rewrite patterns
node by node: 3 to 6 minutes on two cores for a 256-px cable_gland detector, against 36 s for
the export itself. onnxruntime's basic level (constant folding, redundant nodes removed: the
ONNX standard's operators only, the same on every execution provider) does the same clean-up
in about a second, and is what :func:`~threedsr.export.export_detector` runs when onnxruntime is
installed (``threedsr[onnx]`` brings it); without it, onnxscript's optimizer does.
Measured: docs/bench/export.md, "Session 26".
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["optimize_onnx_file"]


def optimize_onnx_file(path: Path) -> str:
    """Clean up the ONNX graph at ``path`` in place; returns which optimizer did it
    (``onnxruntime-basic`` or ``onnxscript``)."""
    try:
        import onnxruntime as ort
    except ImportError:
        import onnx
        from onnxscript import optimizer

        model = optimizer.optimize(onnx.load(str(path)))
        onnx.save(model, str(path))
        return "onnxscript"
    done = path.with_name(path.name + ".opt")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(done)
    try:
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        os.replace(done, path)
    finally:
        done.unlink(missing_ok=True)
    return "onnxruntime-basic"
