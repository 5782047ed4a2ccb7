"""A Ctrl-C just after a train finished: while the process exits (torch's teardown takes a
moment) it no longer replaces exit 0 with a silent death by SIGINT; during the summary it says
the run is complete."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

CATEGORY = "puck"

# the Ctrl-C lands after main() has returned, while the process is exiting
_DRIVER = r"""
import os, signal, sys
from threedsr_cli.app import main
sys.argv[0] = "threedsr-cli"
try:
    main()
finally:
    os.kill(os.getpid(), signal.SIGINT)
"""


def test_a_ctrl_c_as_a_finished_train_exits_keeps_exit_0(tmp_path, tiny_data):
    out = tmp_path / "run"
    args = ["train", "--data", tiny_data, "--category", CATEGORY, "--out", out, "--size", 64,
            "--device", "cpu", "-q"]  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-c", _DRIVER, *map(str, args)],
        env=dict(os.environ, OMP_NUM_THREADS="1"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != -signal.SIGINT, proc.stderr[-2000:]
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((out / "run.json").read_text())["finished"] is True


def test_a_ctrl_c_in_the_summary_of_a_finished_train_says_so(cli, tmp_path, tiny_data, monkeypatch):
    import threedsr

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # the run is marked finished; its summary is being made

    monkeypatch.setattr(threedsr, "detector_info", interrupted)
    out = tmp_path / "run"
    res = cli("train", "--data", tiny_data, "--category", CATEGORY, "--out", out, "--size", 64,
              "--device", "cpu", "-q")  # fmt: skip
    assert res.exit_code == 130
    assert (
        res.stderr.strip() == f"error: interrupted after the run finished; {out} holds it complete"
    )
    assert json.loads((out / "run.json").read_text())["finished"] is True
