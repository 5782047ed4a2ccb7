"""Exported graphs (ONNX on onnxruntime from either of torch's exporters, TorchScript, pt2) against
the eager fp32 Detector: identical codes, maps and scores within 1e-4, for the three setups and the
three methods, at batch 1 and N; the sidecar; one-line errors for bad files."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pcprep
import pytest
import torch
from threedsr import (
    Detector,
    DisplayScale,
    InferenceGraph,
    ThreeDSR,
    ThreedsrError,
    export_detector,
    fit_memory,
    read_sidecar,
)
from threedsr.export import (
    DYNAMO_MIN_TORCH,
    DYNAMO_OPSET,
    OPSET,
    _torch_version,
    onnx_exporter,
)
from threedsr.export_sidecar import sidecar_edited, sidecar_path
from threedsr.fit import _calibrate
from threedsr_testutil import synthetic_class, tiny_backbone, tiny_config

N = 3
METHODS = ["3dsr", "memory", "fused"]


def noisy(setup: str, n: int, seed: int) -> torch.Tensor:
    """Synthetic scans with pixel noise: without it, test scans repeat the training scans'
    features exactly and the memory's calibration spread is near 0, which makes even two eager
    batch sizes differ by more than 1e-4."""
    x = synthetic_class(setup, n=n, seed=seed).x
    g = torch.Generator().manual_seed(seed + 100)
    return (x + 0.05 * torch.rand(x.shape, generator=g)).clamp(0, 1)


@pytest.fixture(scope="module", params=["rgbd", "depth", "rgb"])
def parts(request: pytest.FixtureRequest) -> tuple[object, dict, torch.Tensor]:
    """The config, the detector parts (network, the setup's memory: descriptors for rgbd/depth,
    encoder features for rgb, and both calibrations) of one setup, and N test inputs."""
    setup = request.param
    cfg = tiny_config(setup)
    torch.manual_seed(3)
    model = ThreeDSR(tiny_backbone(setup), cfg.model).eval()
    train = synthetic_class(setup, n=4, seed=1)
    train.x = noisy(setup, 4, 1)
    bb = model.backbone if cfg.memory.features == "encoder" else None
    memory = fit_memory(train.x, setup, cfg.memory, backbone=bb)
    heads_cal, memory_cal, _ = _calibrate(model, memory, train, torch.device("cpu"))
    kw = dict(
        network=model, memory=memory, heads_calibration=heads_cal, memory_calibration=memory_cal
    )
    return cfg, kw, noisy(setup, N, 5)


def detector(cfg, kw: dict, method: str, **options) -> Detector:
    return Detector(cfg.replace(method=method), **kw, **options)


def eager(cfg, kw: dict, method: str, x: torch.Tensor):
    """The eager fp32 Detector's prediction at the input's batch size, and the network's codes."""
    pred = detector(cfg, kw, method, batch_size=x.shape[0]).predict(x)
    model = kw["network"]
    bb = model.backbone
    with torch.no_grad():
        enc = bb.encode(x)
        codes = [
            enc.idx_top,
            enc.idx_bot,
            bb.vq_top(model.srm_top(enc.q_top)).indices,
            bb.vq_bot(model.srm_bot(enc.q_bot)).indices,
        ]
    return pred, [c.numpy() for c in codes]


def check(maps, scores, codes, pred, ref_codes, heads: bool) -> None:
    np.testing.assert_allclose(np.asarray(maps), pred.maps.numpy(), rtol=0, atol=1e-4)
    np.testing.assert_allclose(np.asarray(scores), pred.scores.numpy(), rtol=0, atol=1e-4)
    assert len(codes) == (4 if heads else 0)
    for got, want in zip(codes, ref_codes[: len(codes)], strict=True):
        np.testing.assert_array_equal(np.asarray(got), want)


@pytest.mark.parametrize("method", METHODS)
def test_onnx_equals_eager_batch_1_and_n(parts, method, tmp_path) -> None:
    pytest.importorskip("onnxruntime")
    from threedsr import OnnxDetector

    cfg, kw, x = parts
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        meta = export_detector(detector(cfg, kw, method), tmp_path / "d.onnx", dynamic_batch=True)
    assert meta["versions"]["onnx_exporter"] == onnx_exporter()
    if onnx_exporter() == "dynamo":  # torch's TorchScript recorded nothing: no deprecation
        assert meta["versions"]["onnx_opset"] == str(DYNAMO_OPSET)
        assert not [w for w in caught if "threedsr export" in str(w.message)]
    onnx_det = OnnxDetector(tmp_path / "d.onnx", threads=1)
    for b in (1, N):
        pred, ref_codes = eager(cfg, kw, method, x[:b])
        out = onnx_det.run(x[:b].numpy())
        check(out[0], out[1], out[2:], pred, ref_codes, method != "memory")


def test_the_torchscript_based_onnx_exporter_equals_eager(parts, monkeypatch, tmp_path) -> None:
    # What an install without onnxscript, or a torch older than DYNAMO_MIN_TORCH, exports with:
    # the same names, dynamic batch and maps; torch's deprecation said once, in our words.
    pytest.importorskip("onnxruntime")
    from threedsr import OnnxDetector

    cfg, kw, x = parts
    monkeypatch.setattr("threedsr.export.onnx_exporter", lambda: "torchscript")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        meta = export_detector(detector(cfg, kw, "fused"), tmp_path / "d.onnx", dynamic_batch=True)
    ours = [w for w in caught if "threedsr export" in str(w.message)]
    assert len(ours) <= 1 and all("TorchScript-based ONNX" in str(w.message) for w in ours)
    assert meta["versions"]["onnx_exporter"] == "torchscript"
    assert meta["versions"]["onnx_opset"] == str(OPSET)
    onnx_det = OnnxDetector(tmp_path / "d.onnx", threads=1)
    for b in (1, N):
        pred, ref_codes = eager(cfg, kw, "fused", x[:b])
        out = onnx_det.run(x[:b].numpy())
        check(out[0], out[1], out[2:], pred, ref_codes, heads=True)


def test_what_the_torch_export_exporter_fails_on_the_torchscript_one_records(
    parts, monkeypatch, tmp_path
) -> None:
    # A detector or a torch on which torch.export fails: the file is still written, by the
    # exporter that traces, and one warning says which and why (no deprecation advice on top).
    pytest.importorskip("onnxruntime")
    from threedsr import OnnxDetector

    def fail(*args, **kwargs):
        raise RuntimeError("Unsupported:\n  a data-dependent branch")

    cfg, kw, x = parts
    monkeypatch.setattr("threedsr.export.onnx_exporter", lambda: "dynamo")
    monkeypatch.setattr("threedsr.export._export_onnx_dynamo", fail)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        meta = export_detector(detector(cfg, kw, "memory"), tmp_path / "d.onnx", dynamic_batch=True)
    ours = [str(w.message) for w in caught if "threedsr export" in str(w.message)]
    assert ours == [
        "threedsr export: torch's torch.export-based ONNX exporter failed (Unsupported: a "
        "data-dependent branch); the file was recorded with the TorchScript-based one"
    ]
    assert meta["versions"]["onnx_exporter"] == "torchscript"
    assert meta["versions"]["onnx_opset"] == str(OPSET)
    pred, ref_codes = eager(cfg, kw, "memory", x)
    out = OnnxDetector(tmp_path / "d.onnx", threads=1).run(x.numpy())
    check(out[0], out[1], out[2:], pred, ref_codes, heads=False)


# What loads a pt2 export: torch alone (threedsr made unimportable), the maps saved beside it.
_LOAD_PT2 = """
import sys
sys.modules["threedsr"] = None
import numpy as np, torch
program = torch.export.load(sys.argv[1])
out = program.module()(torch.from_numpy(np.load(sys.argv[2])))
np.save(sys.argv[3], out[0].detach().numpy())
"""


def test_pt2_equals_eager_batch_1_and_n(parts, tmp_path) -> None:
    # torch.export's program of the fused graph: the network's codes and the memory's search of
    # the cells each scan has (one scan none at all), at any batch.
    if _torch_version() < DYNAMO_MIN_TORCH:
        with pytest.raises(ThreedsrError, match="pt2 needs torch >= "):
            export_detector(detector(*parts[:2], "fused"), tmp_path / "d.pt2", fmt="pt2")
        return
    cfg, kw, x = parts
    x = x.clone()
    if cfg.setup != "rgb":
        x[0, 0] = 0
        x[1, 0, :, : x.shape[3] // 2] = 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        meta = export_detector(
            detector(cfg, kw, "fused"), tmp_path / "d.pt2", fmt="pt2", dynamic_batch=True
        )
    assert not [w for w in caught if "threedsr export" in str(w.message)]
    assert meta["format"] == "pt2" and meta["input"]["shape"][0] == "batch"
    assert read_sidecar(tmp_path / "d.pt2") == meta
    program = torch.export.load(str(tmp_path / "d.pt2")).module()
    for b in (1, N):
        pred, ref_codes = eager(cfg, kw, "fused", x[:b])
        with torch.no_grad():
            out = [t.numpy() for t in program(x[:b])]
        check(out[0], out[1], out[2:], pred, ref_codes, heads=True)
    if cfg.setup == "rgbd":
        np.save(tmp_path / "x.npy", x.numpy())
        args = [tmp_path / "d.pt2", tmp_path / "x.npy", tmp_path / "m.npy"]
        subprocess.run([sys.executable, "-c", _LOAD_PT2, *map(str, args)], check=True)
        pred, _ = eager(cfg, kw, "fused", x)
        np.testing.assert_allclose(np.load(tmp_path / "m.npy"), pred.maps.numpy(), atol=1e-4)


def test_an_exported_memory_searches_the_cells_each_scan_has(parts, tmp_path) -> None:
    # The graph gathers the object's cells when it runs: a batch whose scans hold different
    # numbers of them, one none at all, maps as the eager memory.
    pytest.importorskip("onnxruntime")
    from threedsr import OnnxDetector

    cfg, kw, x = parts
    x = x.clone()
    if cfg.setup != "rgb":
        x[0, 0] = 0
        x[1, 0, :, : x.shape[3] // 2] = 0
    export_detector(detector(cfg, kw, "memory"), tmp_path / "d.onnx", dynamic_batch=True)
    onnx_det = OnnxDetector(tmp_path / "d.onnx", threads=1)
    for b in (N, 1):  # batch 1: no cell to search in the whole batch
        out = onnx_det.run(x[:b].numpy())
        pred, codes = eager(cfg, kw, "memory", x[:b])
        check(out[0], out[1], out[2:], pred, codes, heads=False)


@pytest.mark.parametrize("method", METHODS)
def test_torchscript_equals_eager_batch_1_and_n(parts, method, tmp_path) -> None:
    cfg, kw, x = parts
    det = detector(cfg, kw, method)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        meta = export_detector(det, tmp_path / "d.pt", fmt="torchscript", dynamic_batch=True)
    # torch 2.15 deprecates torch.jit: one FutureWarning of ours (none where torch does not)
    ours = [w for w in caught if "threedsr export" in str(w.message)]
    assert len(ours) <= 1 and all(w.category is FutureWarning for w in ours)
    assert all("fmt='pt2'" in str(w.message) for w in ours)
    assert meta["format"] == "torchscript" and meta["method"] == method
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, still shipped
        ts = torch.jit.load(str(tmp_path / "d.pt"))
    for b in (1, N):
        pred, ref_codes = eager(cfg, kw, method, x[:b])
        with torch.no_grad():
            out = [t.numpy() for t in ts(x[:b])]
        check(out[0], out[1], out[2:], pred, ref_codes, method != "memory")


def test_batch_1_export_loops_over_a_batch_and_sidecar_says_all(tmp_path) -> None:
    pytest.importorskip("onnxruntime")
    from threedsr import OnnxDetector

    cfg = tiny_config("depth")
    torch.manual_seed(3)
    model = ThreeDSR(tiny_backbone("depth"), cfg.model).eval()
    det = Detector(cfg, network=model)
    meta = export_detector(det, tmp_path / "d.onnx", threshold=0.25)
    assert json.loads(sidecar_path(tmp_path / "d.onnx").read_text()) == meta
    assert meta["setup"] == "depth" and meta["size"] == 64 and meta["channels"] == ["D"]
    assert meta["method"] == "3dsr" and meta["display"] is None
    assert meta["input"]["shape"] == [1, 1, 64, 64] and meta["threshold"] == 0.25
    assert meta["preprocess"]["size"] == 64 and "fg_threshold" in meta["preprocess"]
    assert meta["outputs"]["codes_top"] == [1, 8, 8] and meta["memory"] is None
    assert {"threedsr", "torch", "onnx_opset"} <= set(meta["versions"])
    # The sidecar's own digest tells an edited value (the user's file now) from a re-indent.
    assert not sidecar_edited(json.loads(json.dumps(meta, sort_keys=True)))
    assert sidecar_edited({**meta, "threshold": 0.3})
    assert not sidecar_edited({k: v for k, v in meta.items() if k != "content_sha256"})
    onnx_det = OnnxDetector(tmp_path / "d.onnx", threads=1)
    x = noisy("depth", N, 7)
    got = onnx_det.predict(x.numpy())
    ref = Detector(cfg, network=model, batch_size=1).predict(x)
    np.testing.assert_allclose(got.maps, ref.maps.numpy(), rtol=0, atol=1e-4)
    assert got.scores.shape == (N,) and onnx_det.threshold == 0.25
    with pytest.raises(ThreedsrError, match=r"expects \(B, 1, 64, 64\).*got \(2, 4, 64, 64\)"):
        onnx_det.predict(np.zeros((2, 4, 64, 64), np.float32))


@pytest.mark.parametrize("method", ["memory", "fused"])
def test_the_graph_runs_the_detectors_memory_and_says_what_it_holds(
    parts, method, tmp_path
) -> None:
    cfg, kw, _ = parts
    det = detector(cfg, kw, method)
    graph = InferenceGraph(det, det.size)
    assert graph.memory is det.memory is kw["memory"]  # the very module, not a copy
    assert (graph.network is None) is (method == "memory")
    meta = export_detector(det, tmp_path / "d.pt", fmt="torchscript")
    heads = method == "fused"
    assert meta["method"] == method and meta["memory"]["heads"] is heads
    assert meta["memory"]["weight"] == det.map.weight == (1.0 if method == "memory" else 0.7)
    assert meta["memory"]["kind"] == cfg.memory.features
    assert ("codes_top" in meta["outputs"]) is heads


def test_the_sidecar_threshold_defaults_to_the_calibrated_one(tmp_path) -> None:
    cfg = tiny_config("depth")
    torch.manual_seed(3)
    scale = DisplayScale(0.1, 0.55, 0.4, "validation")
    det = Detector(cfg, network=ThreeDSR(tiny_backbone("depth"), cfg.model), display=scale)
    meta = export_detector(det, tmp_path / "d.pt", fmt="torchscript")
    assert meta["threshold"] == 0.4 and meta["display"] == scale.state()
    assert read_sidecar(tmp_path / "d.pt") == meta
    mine = export_detector(det, tmp_path / "e.pt", fmt="torchscript", threshold=0.25)
    assert mine["threshold"] == 0.25 and mine["display"] == scale.state()


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory):
    pytest.importorskip("onnxruntime")
    cfg = tiny_config("rgbd")
    torch.manual_seed(3)
    det = Detector(cfg, network=ThreeDSR(tiny_backbone("rgbd"), cfg.model))
    path = tmp_path_factory.mktemp("exp") / "d.onnx"
    export_detector(det, path)
    return path


def _copy(src, dst) -> None:
    dst.write_bytes(src.read_bytes())
    sidecar_path(dst).write_text(sidecar_path(src).read_text())


def test_truncated_corrupt_and_mismatched_files_are_one_line_errors(exported, tmp_path) -> None:
    from threedsr import OnnxDetector

    bad = tmp_path / "bad.onnx"
    _copy(exported, bad)
    bad.write_bytes(exported.read_bytes()[:1000])
    with pytest.raises(ThreedsrError, match=r"bad\.onnx: truncated or modified"):
        OnnxDetector(bad)
    # Garbage whose sidecar was rewritten to match it: onnxruntime itself refuses it.
    bad.write_bytes(b"not an onnx model" * 10)
    meta = json.loads(sidecar_path(exported).read_text())
    from threedsr.export_sidecar import file_digest

    meta.update(bytes=bad.stat().st_size, sha256=file_digest(bad))
    sidecar_path(bad).write_text(json.dumps(meta))
    with pytest.raises(ThreedsrError, match=r"bad\.onnx: not a loadable ONNX model") as err:
        OnnxDetector(bad)
    assert "\n" not in str(err.value)
    # The right file with a sidecar that says another setup: exported for another setup.
    _copy(exported, bad)
    meta = json.loads(sidecar_path(exported).read_text())
    meta.update(setup="depth", channels=["D"], input={**meta["input"], "shape": [1, 1, 64, 64]})
    sidecar_path(bad).write_text(json.dumps(meta))
    with pytest.raises(ThreedsrError, match="exported for another setup or size"):
        OnnxDetector(bad)
    sidecar_path(bad).unlink()
    with pytest.raises(ThreedsrError, match=r"sidecar bad\.onnx\.json is missing"):
        read_sidecar(bad)
    onnx_det = OnnxDetector(exported)
    with pytest.raises(ThreedsrError, match="exported for a 'rgbd' detector at size 64"):
        onnx_det.check_matches("rgbd", 128, "run/detector.pt")


def test_export_argument_errors(tmp_path) -> None:
    cfg = tiny_config("rgb")
    det = Detector(cfg, network=ThreeDSR(tiny_backbone("rgb"), cfg.model))
    with pytest.raises(ThreedsrError, match="unknown format 'tflite'"):
        export_detector(det, tmp_path / "d.x", fmt="tflite")
    with pytest.raises(ThreedsrError, match="multiple of 32"):
        export_detector(det, tmp_path / "d.pt", fmt="torchscript", size=48)
    # The memory's descriptor scales and the network's codes hold at the detector's own size.
    with pytest.raises(ThreedsrError, match="export: size 128 is not the detector's 64"):
        export_detector(det, tmp_path / "d.pt", fmt="torchscript", size=128)
    with pytest.raises(ThreedsrError, match="folder not found"):
        export_detector(det, tmp_path / "no" / "d.pt", fmt="torchscript")
    # read_sidecar refuses these: the export would have been written and then been unusable
    for bad in (float("nan"), float("inf"), "0.5", True):
        with pytest.raises(ThreedsrError, match=r"^export: threshold must be a finite number"):
            export_detector(det, tmp_path / "t.pt", fmt="torchscript", threshold=bad)
    assert not (tmp_path / "t.pt").exists()
    assert list(tmp_path.iterdir()) == []


def test_without_onnxruntime_the_backend_says_which_extra(monkeypatch, tmp_path) -> None:
    from threedsr import OnnxDetector

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import -> ImportError
    with pytest.raises(ThreedsrError, match=r"pip install 'threedsr\[onnx\]'"):
        OnnxDetector(tmp_path / "d.onnx")


def test_a_sidecar_s_camera_reads_back_as_the_detector_s(exported, tmp_path) -> None:
    """An export of a detector trained with a camera (unorganized clouds) keeps it: json's
    lists come back as the tuples pcprep's readers take."""
    from threedsr import OnnxDetector

    cam = _copy_with(exported, tmp_path / "cam.onnx", focal_px=600.0, grid_shape=[480, 640],
                     principal_point=[321.5, 240.0])  # fmt: skip
    assert OnnxDetector(cam).read_options == {
        "focal_px": 600.0,
        "principal_point": (321.5, 240.0),
        "grid_shape": (480, 640),
    }
    lens = _copy_with(exported, tmp_path / "lens.onnx", focal_px=[600.0, 601.5],
                      distortion=["plumb_bob", [-0.1, 0.01, 0.0, 0.0, 0.0]])  # fmt: skip
    assert OnnxDetector(lens).read_options == {
        "focal_px": (600.0, 601.5),
        "distortion": pcprep.Distortion("plumb_bob", (-0.1, 0.01, 0.0, 0.0, 0.0)),
    }


def _copy_with(exported, path, **read_options):
    _copy(exported, path)
    meta = json.loads(sidecar_path(exported).read_text())
    meta["read_options"] = read_options
    sidecar_path(path).write_text(json.dumps(meta))
    return path


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("threshold", "0.5", "threshold: expected a finite number"),
        ("threshold", float("nan"), "threshold: expected a finite number"),
        ("display", {"low": "x"}, "display: expected finite low, high"),
        ("preprocess", {"size": 64, "foo": 1}, r"preprocess: not pcprep.preprocess keywords"),
        ("preprocess", {"size": 128}, "preprocess: size 128 is not the export's 64"),
        ("read_options", {"depth_unit": "furlong"}, "read_options: depth_unit must be one of"),
        ("read_options", {"grid_shape": [480, 640]}, "read_options: grid_shape needs focal_px"),
        (
            "read_options",
            {"focal_px": 600.0, "grid_shape": [480]},
            r"read_options: grid_shape must be \(H, W\)",
        ),
        (
            "read_options",
            {"focal_px": 600.0, "distortion": ["fisheye", [0.1]]},
            "read_options: distortion model must be one of",
        ),
        ("read_options", {"focal_px": [600.0]}, r"read_options: focal_px must be .* \(fx, fy\)"),
        ("setup", "xyz", "setup: expected one of"),
        ("method", "weird", "method: expected memory, 3dsr or fused"),
        ("input", {"name": "input", "shape": [1, 3, 64, 64]}, r"input: shape \[1, 3, 64, 64\]"),
    ],
)
def test_an_edited_sidecar_field_is_one_line_naming_the_sidecar(
    exported, tmp_path, field, value, message
) -> None:
    # An edited sidecar used to surface as a TypeError (exit 1), an error without the file, or a
    # NaN threshold that failed only when the predictions were written.
    from threedsr import OnnxDetector

    bad = tmp_path / "bad.onnx"
    _copy(exported, bad)
    meta = json.loads(sidecar_path(exported).read_text())
    meta[field] = value
    sidecar_path(bad).write_text(json.dumps(meta))
    with pytest.raises(ThreedsrError, match=rf"bad\.onnx\.json: {message}") as err:
        OnnxDetector(bad)
    assert "\n" not in str(err.value)
