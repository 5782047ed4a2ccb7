"""Trainings side by side in worker processes: same weights as in-process, errors come back."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from threedsr_cli.concurrent import TrainJob, train_concurrently
from threedsr_cli.errors import is_bad_input
from threedsr_cli.ui import UI

CATEGORY = "puck"  # the session dataset of conftest.py


def _config(data: Path, backbone: Path, out: Path, setup: str):
    import threedsr

    return threedsr.DetectorConfig.preset(
        "cpu",
        setup=setup,
        data_root=str(data),
        category=CATEGORY,
        backbone=str(backbone),
        out_dir=str(out),
        iterations=3,
        image_size=64,
        batch_size=2,
        checkpoint_every=100,
        device="cpu",
        seed=11,
        resume=True,
    )


def _job(config) -> TrainJob:
    return TrainJob("stage2", f"stage 2: {config.setup}", config, config.run_dir() / "detector.pt")


def test_concurrent_stage_two_matches_in_process_training(tiny_data, dada_rgbd, dada_rgb, tmp_path):
    import threedsr

    backbones = {"rgbd": dada_rgbd / "backbone.pt", "rgb": dada_rgb / "backbone.pt"}
    jobs = [_job(_config(tiny_data, backbones[s], tmp_path / "par" / s, s)) for s in backbones]
    train_concurrently(UI(quiet=True), jobs)

    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, threads // len(jobs)))  # what each worker had
    try:
        for s, b in backbones.items():
            threedsr.train_detector(_config(tiny_data, b, tmp_path / "seq" / s, s))
    finally:
        torch.set_num_threads(threads)
    for s in backbones:
        par = threedsr.read_checkpoint(tmp_path / "par" / s / "detector.pt")
        seq = threedsr.read_checkpoint(tmp_path / "seq" / s / "detector.pt")
        assert par["finished"] and par["step"] == 3
        assert par["heads_state"].keys() == seq["heads_state"].keys()
        for key, value in seq["heads_state"].items():
            torch.testing.assert_close(par["heads_state"][key], value, msg=f"{s}: {key}")


def test_worker_error_is_raised_in_the_parent(tiny_data, dada_rgbd, tmp_path):
    corrupt = tmp_path / "backbone.pt"
    corrupt.write_bytes(b"not a checkpoint")
    jobs = [
        _job(_config(tiny_data, dada_rgbd / "backbone.pt", tmp_path / "ok", "rgbd")),
        _job(_config(tiny_data, corrupt, tmp_path / "bad", "rgbd")),
    ]
    with pytest.raises(Exception) as info:
        train_concurrently(UI(quiet=True), jobs)
    assert is_bad_input(info.value), repr(info.value)  # a library error, not "worker died"
    assert str(corrupt) in str(info.value)


def test_no_jobs_is_a_no_op() -> None:
    train_concurrently(UI(quiet=True), [])


def test_demo_runs_trainings_one_after_the_other_off_the_cpu(tiny_data, dada_rgbd, tmp_path):
    """The GPU branch of the demo (sequential, in-process), driven with CPU configs."""
    import threedsr
    from threedsr_cli.commands.demo import _run_trainings

    jobs = [_job(_config(tiny_data, dada_rgbd / "backbone.pt", tmp_path / n, "rgbd")) for n in "ab"]
    _run_trainings(UI(quiet=True), jobs, "cuda")
    a, b = (threedsr.read_checkpoint(tmp_path / n / "detector.pt") for n in "ab")
    assert a["finished"] and b["finished"] and a["step"] == b["step"] == 3
    for key, value in a["heads_state"].items():  # same config and seed: same weights
        torch.testing.assert_close(b["heads_state"][key], value, rtol=0, atol=0, msg=key)


_INTERRUPT_SCRIPT = """
import json, sys
import dataclasses
from pathlib import Path
import threedsr
from threedsr_cli.concurrent import TrainJob, train_concurrently
from threedsr_cli.errors import Interrupted
from threedsr_cli.ui import UI

jobs = [
    TrainJob("stage2", n, threedsr.DetectorConfig.from_dict(json.loads(c)), Path(o) / "detector.pt")
    for n, c, o in json.loads(sys.argv[1])
]
try:
    train_concurrently(UI(quiet=True), jobs)
except Interrupted as exc:
    print("interrupted", exc.checkpoint)
    sys.exit(130)
"""


def test_ctrl_c_saves_both_workers_and_resume_continues(tiny_data, dada_rgbd, tmp_path):
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    import threedsr

    outs = [tmp_path / n for n in "ab"]
    configs = [
        dataclasses.replace(
            _config(tiny_data, dada_rgbd / "backbone.pt", o, "rgbd"),
            iterations=100_000,
            checkpoint_every=5,
        )
        for o in outs
    ]
    arg = json.dumps(
        [[o.name, json.dumps(c.to_dict()), str(o)] for o, c in zip(outs, configs, strict=True)]
    )
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}

    def start() -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-c", _INTERRUPT_SCRIPT, arg],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,  # its own process group, as a terminal gives it
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )

    def steps() -> list[int]:
        return [threedsr.read_checkpoint(o / "detector.pt")["step"] for o in outs]

    def interrupt_once_both_saved(proc: subprocess.Popen[str], after: list[int]) -> list[int]:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if all((o / "detector.pt").exists() for o in outs) and all(
                s > a for s, a in zip(steps(), after, strict=True)
            ):
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the parent and both workers
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 130, err
        assert f"interrupted {tmp_path}" in out
        return steps()

    first = interrupt_once_both_saved(start(), [0, 0])
    assert all(0 < s < 100_000 for s in first)
    second = interrupt_once_both_saved(start(), first)  # resume=True: continues, not restarts
    assert all(s > f for s, f in zip(second, first, strict=True))
