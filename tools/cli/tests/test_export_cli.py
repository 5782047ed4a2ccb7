"""``threedsr-cli export`` and ``predict --backend onnxruntime``: same scores as the torch
backend, the sidecar, and one-line exit-2 errors for bad exported files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CATEGORY = "puck"  # the class the conftest fixtures generate


@pytest.fixture()
def run_copy(tmp_path: Path, run_rgbd: Path) -> Path:
    """A private copy of the session run (exports are written into it)."""
    dst = tmp_path / "run"
    shutil.copytree(run_rgbd, dst, ignore=shutil.ignore_patterns("predictions"))
    return dst


def _predict(cli, run: Path, data: Path, out: Path, *extra: object):
    test = data / CATEGORY / "test"
    return cli("predict", "--run", run, test, "--out", out, "--device", "cpu", "-q", *extra)


def test_export_then_predict_with_onnxruntime_equals_torch(cli, run_copy, tiny_data, tmp_path):
    pytest.importorskip("onnxruntime")
    res = cli("export", "--run", run_copy, "--threshold", "0.5", "-q")
    assert res.exit_code == 0, res.stderr
    meta = json.loads((run_copy / "detector.onnx.json").read_text())
    assert meta["setup"] == "rgbd" and meta["channels"] == ["D", "R", "G", "B"]
    assert meta["input"]["shape"] == [1, 4, 64, 64] and meta["threshold"] == 0.5
    assert meta["method"] == "fused" and meta["memory"] == {
        "kind": "descriptors",
        "weight": 0.7,
        "heads": True,
        # The tiny class has fewer scans than memory_local_min_scans: plain distances.
        "local_scale": False,
    }
    assert _predict(cli, run_copy, tiny_data, tmp_path / "t").exit_code == 0
    res = _predict(cli, run_copy, tiny_data, tmp_path / "o", "--backend", "onnxruntime")
    assert res.exit_code == 0, res.stderr
    torch_s = json.loads((tmp_path / "t" / "scores.json").read_text())
    onnx_s = json.loads((tmp_path / "o" / "scores.json").read_text())
    assert onnx_s["backend"] == "onnxruntime" and onnx_s["threshold"] == 0.5
    assert "recorded at export" in onnx_s["threshold_source"]
    for a, b in zip(torch_s["samples"], onnx_s["samples"], strict=True):
        assert a["name"] == b["name"] and abs(a["score"] - b["score"]) < 1e-4


def test_export_torchscript_with_heads_and_dynamic_batch(cli, run_copy, tmp_path):
    out = tmp_path / "d.pt"
    res = cli(
        "export", "--run", run_copy, "--format", "torchscript", "--out", out,
        "--dynamic-batch", "--method", "3dsr",
    )  # fmt: skip
    assert res.exit_code == 0, res.stderr
    meta = json.loads((tmp_path / "d.pt.json").read_text())
    assert meta["format"] == "torchscript" and meta["memory"] is None
    assert meta["method"] == "3dsr"
    assert meta["input"]["shape"] == ["batch", 4, 64, 64] and "codes_top" in meta["outputs"]
    assert meta["preprocess"]["size"] == 64


def test_export_pt2_runs_as_the_detector_and_torchscript_says_torch_deprecates_it(
    cli, run_copy, tmp_path
):
    import threedsr
    import torch
    from threedsr.export import DYNAMO_MIN_TORCH, _torch_version

    if _torch_version() >= DYNAMO_MIN_TORCH:
        res = cli("export", "--run", run_copy, "--format", "pt2", "--dynamic-batch")
        assert res.exit_code == 0, res.stderr
        assert "note:" not in res.stdout
        meta = json.loads((run_copy / "detector.pt2.json").read_text())  # the default --out
        assert meta["format"] == "pt2" and meta["input"]["shape"][0] == "batch"
        program = torch.export.load(str(run_copy / "detector.pt2")).module()
        x = torch.rand(2, 4, 64, 64, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            got = program(x)[0]
        want = threedsr.Detector.load(run_copy, device="cpu").predict(x).maps
        torch.testing.assert_close(got, want, atol=1e-4, rtol=0)
    # torch.jit's deprecation (torch 2.15) as one note on stdout, not a "warning:" line
    res = cli("export", "--run", run_copy, "--format", "torchscript", "--out", tmp_path / "d.pt")
    assert res.exit_code == 0, res.stderr
    assert "warning" not in res.stderr.lower()
    notes = [ln for ln in res.stdout.splitlines() if ln.startswith("note:")]
    # the note wraps; it names the CLI's option, not the library's argument
    assert len(notes) <= 1 and (not notes or ("pt2" in res.stdout and "fmt=" not in res.stdout))


def test_export_and_backend_errors(bad_input, cli, run_copy, tiny_data, tmp_path):
    pytest.importorskip("onnxruntime")
    bad_input(cli("export", "--run", run_copy, "--size", "48"), "--size", "multiple of 32")
    bad_input(cli("export", "--run", tmp_path / "nope"), "run not found")
    bad_input(
        _predict(cli, run_copy, tiny_data, tmp_path / "p", "--backend", "onnxruntime"),
        "holds no detector.onnx",
        "threedsr-cli export",
    )
    # Another size than the detector's (64 px): its descriptor scales and codes would not hold.
    bad_input(cli("export", "--run", run_copy, "--size", "128", "-q"), "not the detector's 64")
    assert cli("export", "--run", run_copy, "-q").exit_code == 0
    # The same file on its own runs; truncated, it is refused before it runs.
    alone = tmp_path / "alone.onnx"
    shutil.copy(run_copy / "detector.onnx", alone)
    shutil.copy(run_copy / "detector.onnx.json", tmp_path / "alone.onnx.json")
    alone.write_bytes(alone.read_bytes()[:-100])
    bad_input(
        _predict(cli, alone, tiny_data, tmp_path / "p", "--backend", "onnxruntime"),
        "alone.onnx: truncated or modified",
    )
    bad_input(
        _predict(
            cli, run_copy, tiny_data, tmp_path / "p", "--backend", "onnxruntime",
            "--method", "3dsr",
        ),
        "--method",
        "re-export",
    )  # fmt: skip
    assert not (tmp_path / "p" / "scores.json").exists()


def test_readme_deploy_example_runs_without_torch(cli, run_copy, tiny_data, tmp_path):
    """The README's export-then-deploy snippet, verbatim, on an export of the session run: it
    imports no torch and prints the score ``predict`` gives."""
    pytest.importorskip("onnxruntime")
    readme = (Path(__file__).parents[3] / "README.md").read_text()
    snippet = readme.split("<!-- deploy-example -->\n```python\n", 1)[1].split("```", 1)[0]
    assert cli("export", "--run", run_copy, "--out", tmp_path / "bagel.onnx", "--threshold",
               "0.5", "-q").exit_code == 0  # fmt: skip
    good = tiny_data / CATEGORY / "test" / "good"
    shutil.copy(good / "xyz" / "000.tiff", tmp_path / "scan.tiff")
    shutil.copy(good / "rgb" / "000.png", tmp_path / "scan.png")
    code = snippet + "\nimport sys\nassert 'torch' not in sys.modules, 'imported torch'\n"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    res = cli("predict", "--run", run_copy, tmp_path / "scan.tiff", tmp_path / "scan.png",
              "--out", tmp_path / "p", "--device", "cpu", "-q")  # fmt: skip
    assert res.exit_code == 0, res.stderr
    score = json.loads((tmp_path / "p" / "scores.json").read_text())["samples"][0]["score"]
    printed = float(done.stdout.split()[1])
    assert abs(printed - score) < 1e-4 and done.stdout.split()[2] in ("normal", "ANOMALOUS")


def test_export_makes_the_folder_of_out_and_leaves_none_when_refused(
    bad_input, cli, run_copy, tmp_path, monkeypatch
):
    refused = tmp_path / "refused" / "sub" / "d.pt"
    bad_input(cli("export", "--run", run_copy, "--out", refused, "--format", "torchscript",
                  "--size", "128", "-q"), "not the detector's 64")  # fmt: skip
    assert not (tmp_path / "refused").exists()
    out = tmp_path / "exports" / "sub" / "d.pt"
    monkeypatch.chdir(run_copy.parent)  # --run given relative to where the command runs
    res = cli("export", "--run", run_copy.name, "--out", out, "--format", "torchscript", "-q")
    assert res.exit_code == 0, res.stderr
    assert out.is_file() and out.with_name("d.pt.json").is_file()
    # the detector's own path, not one from the folder the command ran in
    source = json.loads(out.with_name("d.pt.json").read_text())["source"]
    assert Path(source) == (run_copy / "detector.pt").absolute()
    (tmp_path / "a-file").write_text("mine")
    bad_input(cli("export", "--run", run_copy, "--out", tmp_path / "a-file" / "d.pt"), "a-file")
    assert (tmp_path / "a-file").read_text() == "mine"


def test_export_of_an_unfinished_detector_warns(cli, run_copy, tmp_path):
    # eval and predict warn about a half-trained detector; export, whose file goes to
    # deployment, said nothing
    import torch

    ckpt = torch.load(run_copy / "detector.pt", weights_only=True)
    ckpt.update(finished=False, step=1)
    torch.save(ckpt, run_copy / "detector.pt")
    out = tmp_path / "u.pt"
    res = cli("export", "--run", run_copy, "--format", "torchscript", "--out", out, "-q")
    assert res.exit_code == 0, res.stderr
    assert f"warning: {run_copy / 'detector.pt'}: the detector is unfinished" in res.stderr
    assert out.is_file()


def test_export_never_writes_into_the_dataset_the_detector_was_trained_on(
    bad_input, cli, run_copy, tiny_data
):
    # eval and predict refused an --out in the training data; export wrote its model there
    before = sorted(p.relative_to(tiny_data) for p in tiny_data.rglob("*"))
    for out in (tiny_data / CATEGORY / "d.pt", tiny_data / "new" / "d.pt"):
        res = cli("export", "--run", run_copy, "--out", out, "--format", "torchscript", "-q")
        bad_input(res, str(out.parent), "lies inside the dataset")
    assert sorted(p.relative_to(tiny_data) for p in tiny_data.rglob("*")) == before


def test_a_run_trained_again_refuses_its_stale_export(
    bad_input, cli, run_copy, tiny_data, tmp_path
):
    # train --overwrite replaces detector.pt but keeps detector.onnx (not a run file): predict
    # --backend onnxruntime --run RUN then ran the old model under the new run's name
    pytest.importorskip("onnxruntime")
    import torch

    assert cli("export", "--run", run_copy, "-q").exit_code == 0
    assert (
        _predict(cli, run_copy, tiny_data, tmp_path / "o", "--backend", "onnxruntime").exit_code
        == 0
    )
    ckpt = torch.load(run_copy / "detector.pt", weights_only=True)
    ckpt["display"] = None  # any other detector.pt, as a new training writes
    torch.save(ckpt, run_copy / "detector.pt")
    res = _predict(cli, run_copy, tiny_data, tmp_path / "n", "--backend", "onnxruntime")
    bad_input(res, str(run_copy / "detector.onnx"), "exported from an earlier", "export --run")
    assert not (tmp_path / "n").exists()


def test_threshold_auto_on_an_export_finds_the_training_data(cli, run_copy, tiny_data, tmp_path):
    # The torch backend found the good validation scans through the detector's config; an
    # export said "pass --data ROOT" although its run knew where it was trained.
    pytest.importorskip("onnxruntime")
    assert cli("export", "--run", run_copy, "-q").exit_code == 0
    meta = json.loads((run_copy / "detector.onnx.json").read_text())
    assert Path(meta["data_root"]) == tiny_data.resolve()
    runs = {}
    for backend in ("torch", "onnxruntime"):
        out = tmp_path / backend
        res = _predict(cli, run_copy, tiny_data, out, "--backend", backend, "--threshold", "auto")
        assert res.exit_code == 0, res.stderr
        runs[backend] = json.loads((out / "scores.json").read_text())
    assert "good validation samples" in runs["onnxruntime"]["threshold_source"]
    assert abs(runs["onnxruntime"]["threshold"] - runs["torch"]["threshold"]) < 1e-4
