"""``bash tools/gpu_check.sh --dry-run`` (issue 13) runs on a CPU and writes every report section.

The real check needs a GPU; this keeps its script and helper (tools/bench/gpu_check.py) working
between GPU sessions by taking every code path at tiny sizes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_gpu_check_dry_run_writes_the_report(tmp_path) -> None:
    env = {**os.environ, "OUT": str(tmp_path), "OMP_NUM_THREADS": "1"}
    res = subprocess.run(
        ["bash", str(ROOT / "tools" / "gpu_check.sh"), "--dry-run"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    report = (tmp_path / "gpu-report.md").read_text()
    assert report.startswith("# GPU check (DRY RUN")
    sections = ("## CUDA tests", "## Inference at 64²", "## bf16 vs fp32 maps", "## Precision")
    for section in (*sections, "## Training"):
        assert section in report
    assert "skipped" in report  # the CUDA tests ran, and skipped without a device
    rows = [
        ln
        for ln in report.splitlines()
        if ln.startswith(("| rgbd", "| depth", "| rgb", "| 1 ", "| 2 "))
    ]
    # 3 setups x 2 batches x 2 precisions, 3 bf16 rows, 3 x 4 precision rows, 6 stage-1 (setup,
    # precision, sampler) and 3x2 stage-2 rows, then stage 2 rgbd bf16 with the host sampler and
    # with cudnn.benchmark off
    assert len(rows) == 12 + 3 + 12 + 6 + 6 + 2
    assert sum(ln.startswith("| 1 ") and "device sampler" in ln for ln in rows) == 3
    assert "| 2 | rgbd, host sampler | bf16 |" in report
    assert "| 2 | rgbd, device sampler, cudnn.benchmark off | bf16 |" in report
    assert "nan" not in report and "FAIL" not in report


def test_gpu_check_rejects_unknown_arguments(tmp_path) -> None:
    res = subprocess.run(
        ["bash", str(ROOT / "tools" / "gpu_check.sh"), "--fast"],
        env={**os.environ, "OUT": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert res.returncode == 2 and res.stderr.strip().startswith("error: unknown argument")


def test_gpu_session_curve_dry_run(tmp_path) -> None:
    # Issue 25's prepared curve part: the gpu preset fused, points sized by a warm-up's speed,
    # each point scoring the fused map and its two maps, then the 3DSR map per arithmetic.
    env = {**os.environ, "OUT": str(tmp_path), "OMP_NUM_THREADS": "1"}
    res = subprocess.run(
        ["bash", str(ROOT / "tools" / "gpu_session.sh"), "--dry-run", "curve", "depth"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    import json

    curve = json.loads((tmp_path / "curve-depth" / "curve.json").read_text())
    assert (curve["preset"], curve["method"], curve["setup"]) == ("gpu", "fused", "depth")
    assert len(curve["points"]) == 2
    assert all(set(p["by_method"]) == {"fused", "3dsr", "memory"} for p in curve["points"])
    assert set(curve["final_by_precision"]) == {"fp32", "tf32", "bf16"}
    # which network a figure is: the heads' size follows the backbone's widths
    assert curve["backbone"] == "pretrained" and curve["heads_parameters"] > 0


def test_gpu_session_rejects_unknown_parts(tmp_path) -> None:
    for args in (["fast"], ["curve", "bagel"]):
        res = subprocess.run(
            ["bash", str(ROOT / "tools" / "gpu_session.sh"), *args],
            env={**os.environ, "OUT": str(tmp_path)},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert res.returncode == 2 and res.stderr.startswith("error:"), res.stderr


def test_gpu_session_candycane_curve_names_a_missing_pack(tmp_path) -> None:
    # Issue 23's deliverable 4 runs on the packed CandyCane copy; without it, one line, exit 2.
    missing = tmp_path / "no-such.3dsrpack"
    res = subprocess.run(
        ["bash", str(ROOT / "tools" / "gpu_session.sh"), "curve", "candycane"],
        env={**os.environ, "OUT": str(tmp_path), "PACK_CANDYCANE": str(missing)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert res.returncode == 2, res.stderr
    assert (
        res.stderr.strip()
        == f"error: {missing}: no CandyCane pack (threedsr-cli pack ... --size 256 --rgb uint8)"
    )
