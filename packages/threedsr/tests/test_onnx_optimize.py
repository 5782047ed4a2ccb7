"""The clean-up after the ``torch.export``-based ONNX exporter (threedsr.onnx_optimize): either
optimizer shrinks the graph, keeps the eager maps, leaves no temporary file, and the sidecar names
the one that ran."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from threedsr import Detector, export_detector
from threedsr.export import onnx_exporter
from threedsr_testutil import plain_memory_detector, synthetic_class

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.skipif(
    onnx_exporter() != "dynamo", reason="needs the torch.export-based exporter (onnxscript)"
)


@pytest.fixture(scope="module")
def memory_detector() -> Detector:
    return plain_memory_detector()


def nodes(path) -> int:
    return len(onnx.load(str(path)).graph.node)


@pytest.mark.parametrize("optimizer", ["onnxruntime-basic", "onnxscript"])
def test_each_optimizer_shrinks_the_graph_and_keeps_the_maps(
    memory_detector, optimizer, monkeypatch, tmp_path
) -> None:
    from threedsr import OnnxDetector

    raw = tmp_path / "raw" / "d.onnx"
    raw.parent.mkdir()
    with monkeypatch.context() as m:  # what the exporter wrote, before any clean-up
        m.setattr("threedsr.export.optimize_onnx_file", lambda path: None)
        export_detector(memory_detector, raw)
    out = tmp_path / "opt" / "d.onnx"
    out.parent.mkdir()
    with monkeypatch.context() as m:
        if optimizer == "onnxscript":  # an install without onnxruntime
            m.setitem(sys.modules, "onnxruntime", None)
        meta = export_detector(memory_detector, out)
    assert meta["versions"]["onnx_optimizer"] == optimizer
    assert sorted(p.name for p in out.parent.iterdir()) == ["d.onnx", "d.onnx.json"]
    assert nodes(out) < nodes(raw) / 2  # the scalars the exporter wrote as nodes are gone
    x = synthetic_class("rgbd", n=2, seed=5).x
    want = memory_detector.predict(x)
    got = OnnxDetector(out, threads=1).predict(x.numpy())
    np.testing.assert_allclose(np.asarray(got.maps), want.maps.numpy(), rtol=0, atol=1e-4)
    np.testing.assert_allclose(np.asarray(got.scores), want.scores.numpy(), rtol=0, atol=1e-4)
