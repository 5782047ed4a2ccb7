"""--resume on a finished run has nothing to do: it leaves every file of the run as it is."""

from __future__ import annotations

import shutil
from pathlib import Path

from .conftest import fused_train_args


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_train_resume_of_a_finished_run_changes_nothing(
    cli, tmp_path, run_rgbd, tiny_data, dada_rgbd
):
    # It used to fit and save again: a new detector.pt (another SHA-256 than the one metrics.json
    # records), an emptied train_history.json and run.json without the final metrics.
    run = tmp_path / "run"
    shutil.copytree(run_rgbd, run)
    before = _snapshot(run)
    assert before["train_history.json"].strip() != b"[]"
    res = cli(*fused_train_args(tiny_data, dada_rgbd, run, "--resume"))
    assert res.exit_code == 0, res.stderr
    assert _snapshot(run) == before


def test_train_dada_resume_of_a_finished_run_changes_nothing(cli, tmp_path, dada_rgbd):
    run = tmp_path / "dada"
    shutil.copytree(dada_rgbd, run)
    before = _snapshot(run)
    args = ["--iterations", 2, "--batch-size", 2, "--size", 32, "--device", "cpu", "-q"]
    res = cli("train-dada", "--preset", "cpu", "--setup", "rgbd", "--out", run, *args, "--resume")
    assert res.exit_code == 0, res.stderr
    assert _snapshot(run) == before
