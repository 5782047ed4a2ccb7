"""kill -9 during a training checkpoint, an eval, predict and export write (issues 14, 24), and
two trainings racing for one run folder.

The CLI runs in a subprocess whose ``os.replace`` is wrapped (test-only, conftest's ``killed``): at
the N-th rename onto a file matching a name pattern the process sends itself SIGKILL, so it dies with
the new file complete in its temporary name and the rename not done, the worst moment. Afterwards
the folder must hold the old state or the new one (after ``recover_outputs``, which the next
eval / predict runs), never a mix; a prediction folder is complete or marked incomplete.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import held_command

CATEGORY = "puck"


def snapshot(root: Path) -> dict[str, Any]:
    """Every entry under ``root``: file content hash + mode, or folder."""
    import hashlib

    state: dict[str, Any] = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_dir():
            state[rel] = ("dir",)
        else:
            state[rel] = ("file", hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mode)
    return state


def _record(folder: Path, *names: str) -> None:
    """The tool's record of ``names`` (see outputs.commit_outputs)."""
    import hashlib

    files = {n: hashlib.sha256((folder / n).read_bytes()).hexdigest() for n in names}
    (folder / ".threedsr-written.json").write_text(json.dumps({"files": files}))


def _visible(state: dict[str, Any]) -> dict[str, Any]:
    """The state without this tool's hidden temporaries (``.name-XXXX.tmp`` files)."""
    return {k: v for k, v in state.items() if not Path(k).name.startswith(".")}


def test_kill_during_training_checkpoint_keeps_a_resumable_run(
    cli, killed, tmp_path, tiny_data, dada_rgbd, monkeypatch
):
    import threedsr

    real = threedsr.train_detector

    def interrupted(config, callbacks=None, **kwargs):
        def stop(event):
            raise KeyboardInterrupt

        return real(config, [callbacks, stop], **kwargs)

    out = tmp_path / "run"
    args = ["train", "--method", "fused", "--data", tiny_data, "--category", CATEGORY, "--dada", dada_rgbd,
            "--out", out, "--iterations", 12, "--batch-size", 2, "--size", 64,
            "--device", "cpu", "-q"]  # fmt: skip
    monkeypatch.setattr(threedsr, "train_detector", interrupted)
    assert cli(*args).exit_code == 130  # an unfinished run at step 10
    monkeypatch.setattr(threedsr, "train_detector", real)
    history = out / "train_history.json"
    assert [e["step"] for e in json.loads(history.read_text())] == [10]  # kept for the resume
    old = snapshot(out)
    for pattern in ("train_state.pt", "detector.pt"):
        killed([*args, "--resume"], pattern, 1)
        now = _visible(snapshot(out))
        # every visible file is the old one or a complete new one, never a partial one
        for name, entry in now.items():
            if entry != old.get(name):
                assert name in ("train_state.pt", "train_history.json"), name
                if name == "train_state.pt":
                    assert threedsr.read_checkpoint(out / name, kind="threedsr.train_state")
                else:  # written before the checkpoint: its entries reach the new step
                    assert [e["step"] for e in json.loads(history.read_text())] == [10, 12]
        assert threedsr.read_checkpoint(out / "detector.pt")["step"] == 10
    res = cli(*args, "--resume")  # and the run continues
    assert res.exit_code == 0, res.stderr
    ck = threedsr.read_checkpoint(out / "detector.pt")
    assert ck["step"] == 12 and ck["finished"]
    assert [e["step"] for e in json.loads(history.read_text())] == [10, 12]


@pytest.mark.parametrize(("nth", "expect"), [(1, "old"), (2, "new")])
def test_kill_during_eval_write(cli, killed, tmp_path, tiny_data, run_rgbd, nth, expect):
    from threedsr_cli.outputs import recover_outputs

    run = tmp_path / "run"
    shutil.copytree(run_rgbd, run)
    detector = str((run / "detector.pt").resolve())
    old_metrics = {CATEGORY: {"detector": detector, "image_auroc": 0.123}}
    (run / "metrics.json").write_text(json.dumps(old_metrics))
    (run / "metrics.md").write_text("old table\n")
    _record(run, "metrics.json", "metrics.md")  # as an earlier eval left them
    before = snapshot(run)
    # metrics.json is renamed twice: into the staging folder (1), then into place (2)
    killed(["eval", "--run", run, "--data", tiny_data, "--device", "cpu", "-q"],
            "metrics.json", nth)  # fmt: skip
    recover_outputs(run)  # what the next eval / predict on the folder does first
    after = snapshot(run)
    if expect == "old":
        assert after == before
    else:
        changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
        assert changed == {"metrics.json", "metrics.md", ".threedsr-written.json"}
        new = json.loads((run / "metrics.json").read_text())[CATEGORY]
        assert new["image_auroc"] != 0.123 and new["detector"] == "detector.pt"
        assert "old table" not in (run / "metrics.md").read_text()


@pytest.mark.parametrize(
    ("pattern", "nth", "expect"),
    [("*_overlay.png", 1, "old"), ("scores.json", 2, "new"), ("*_map.png", 1, "incomplete")],
)
def test_kill_during_predict_write(
    cli, killed, tmp_path, tiny_data, run_rgbd, pattern, nth, expect
):
    from threedsr_cli.outputs import recover_outputs
    from threedsr_cli.ownership import STAGING_PREFIX

    out = tmp_path / "p"
    if expect != "incomplete":  # an earlier prediction, replaced with --overwrite
        out.mkdir()
        (out / "old_overlay.png").write_bytes(b"old")
        (out / "old_map.png").write_bytes(b"old map")
        samples = [{"name": "old", "overlay": "old_overlay.png", "map": "old_map.png"}]
        (out / "scores.json").write_text(json.dumps({"run": "old", "samples": samples}))
    before = snapshot(out) if out.exists() else {}
    test = tiny_data / CATEGORY / "test" / "dent"
    killed(["predict", "--run", run_rgbd, test, "--out", out, "--overwrite", "--device", "cpu",
             "-q"], pattern, nth)  # fmt: skip
    if expect == "incomplete":
        # a new folder: no scores.json, and the staging folder marks it incomplete
        names = [p.name for p in out.iterdir()]
        assert not (out / "scores.json").exists()
        assert len(names) == 1 and names[0].startswith(STAGING_PREFIX), names
        recover_outputs(out)
        assert list(out.iterdir()) == []
        return
    recover_outputs(out)
    after = snapshot(out)
    if expect == "old":
        assert after == before
    else:
        assert sorted(after) == ["dent_000_map.png", "dent_000_overlay.png", "scores.json"]
        assert json.loads((out / "scores.json").read_text())["run"] == str(run_rgbd)


@pytest.mark.parametrize(
    ("pattern", "nth", "expect"), [("d.pt", 1, "old"), ("d.pt.json", 2, "new")]
)
def test_kill_during_export_write(cli, killed, tmp_path, run_rgbd, pattern, nth, expect):
    """An export replacing an earlier one (--overwrite), killed as its model file lands in the
    staging folder (1) or as the sidecar is renamed into place (2, the model already is): the
    target holds the old pair, or a journal the next command completes to the new pair; never a
    partial file."""
    from threedsr.export_sidecar import read_sidecar
    from threedsr_cli.outputs import recover_outputs

    out = tmp_path / "x"
    out.mkdir()
    args = ["export", "--run", run_rgbd, "--format", "torchscript", "--out", out / "d.pt", "-q"]
    assert cli(*args, "--threshold", "0.25").exit_code == 0
    before = snapshot(out)
    killed([*args, "--overwrite", "--threshold", "0.75"], pattern, nth)
    now = {k: v for k, v in snapshot(out).items() if not any(x[0] == "." for x in Path(k).parts)}
    assert sorted(now) == ["d.pt", "d.pt.json"]  # no partial file beside them
    if expect == "old":
        assert now == before
        assert read_sidecar(out / "d.pt")["threshold"] == 0.25
    recover_outputs(out)  # what the next eval / predict / export on the folder does first
    assert read_sidecar(out / "d.pt")["threshold"] == (0.25 if expect == "old" else 0.75)
    assert sorted(p.name for p in out.iterdir()) == ["d.pt", "d.pt.json"]


def test_two_trains_into_one_folder(tmp_path, tiny_data, dada_rgbd):
    """The second train into a folder another train is writing stops at once (exit 2, one line
    naming the folder and the other process); the folder holds the first run's detector. The
    first one waits inside its training (test-only driver) until the second has finished."""
    import threedsr

    out = tmp_path / "run"
    base = ["train", "--method", "fused", "--data", tiny_data, "--category", CATEGORY,
            "--dada", dada_rgbd, "--out", out, "--batch-size", 2, "--size", 64,
            "--device", "cpu", "-q"]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    # the first one holds the folder, inside its training
    with held_command("threedsr:train_detector", [*base, "--iterations", "6"], tmp_path) as first:
        second = subprocess.run(
            [sys.executable, "-m", "threedsr_cli", *map(str, base), "--iterations", "3",
             "--overwrite"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert second.returncode == 2, second.stderr
    lines = [ln for ln in second.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {out}: "), second.stderr
    assert f"another threedsr-cli train (pid {first.pid})" in lines[0], lines[0]
    marker = json.loads((out / "run.json").read_text())
    assert marker["finished"] and marker["settings"]["iterations"] == 6
    ck = threedsr.read_checkpoint(out / "detector.pt")
    assert ck["step"] == 6 and ck["finished"]
