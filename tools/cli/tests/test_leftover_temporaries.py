"""The temporary file of an atomic write that a kill cut short (``.detector-ab12cd34.pt``) is
removed when the next command claims the run folder: a run that never reached a checkpoint
starts again as if fresh, and a killed ``--overwrite`` brings the replaced run back. Only the
temporaries of the files the tool owns go; a user's file never does."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from threedsr_cli.errors import CLIError
from threedsr_cli.ownership import MARKER, leftover_temporaries
from threedsr_cli.runs import claim_run

CATEGORY = "puck"


def _memory_args(data: Path, out: Path) -> list[object]:
    return ["train", "--data", data, "--category", CATEGORY, "--out", out, "--size", 64,
            "--device", "cpu", "-q"]  # fmt: skip


def _state(root: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(root.iterdir())
    }


def test_a_run_killed_before_its_first_checkpoint_reruns_as_new(cli, killed, tmp_path, tiny_data):
    out = tmp_path / "run"
    args = _memory_args(tiny_data, out)
    killed(args, "detector.pt", 1)
    left = [p.name for p in out.iterdir() if p.name.startswith(".detector-")]
    assert len(left) == 1, sorted(p.name for p in out.iterdir())  # what the kill left
    res = cli(*args)  # a plain rerun, no --resume
    assert res.exit_code == 0, res.stderr
    assert sorted(p.name for p in out.iterdir()) == ["detector.pt", MARKER, "train_history.json"]
    assert json.loads((out / MARKER).read_text())["finished"] is True


def test_a_killed_overwrite_brings_the_replaced_run_back(cli, killed, tmp_path, tiny_data):
    out = tmp_path / "run"
    args = _memory_args(tiny_data, out)
    assert cli(*args).exit_code == 0
    before = _state(out)
    # rename 1 moves the old detector.pt aside; 2 is the new run's detector.pt landing
    killed([*args, "--overwrite"], "detector.pt", 2)
    assert any(p.name.startswith(".detector-") for p in out.iterdir())
    assert (out / ".overwritten").is_dir()
    res = cli(*args, "--resume")  # the replaced run is back, finished: nothing to do
    assert res.exit_code == 0, res.stderr
    assert _state(out) == before


def test_only_the_temporaries_of_owned_files_count(tmp_path):
    names = [
        ".detector-ab12cd_4.pt",  # a temporary of detector.pt
        ".train_state-zzzzzzzz.pt",
        ".run-0123abcd.json",
        ".notes-ab12cd34.txt",  # the user's: notes.txt is not a file a run writes
        ".detector-ab12.pt",  # not the temporary-name pattern
        "detector-ab12cd34.pt",  # not hidden
        ".detector-ABCDEFGH.pt",
    ]
    for name in names:
        (tmp_path / name).write_text("x")
    (tmp_path / ".metrics-abcdefgh.json").mkdir()  # a folder, not a temporary file
    found = {p.name for p in leftover_temporaries(tmp_path, ["train"])}
    assert found == {".detector-ab12cd_4.pt", ".train_state-zzzzzzzz.pt", ".run-0123abcd.json"}
    assert {p.name for p in leftover_temporaries(tmp_path, ["train-dada"])} == {
        ".run-0123abcd.json"
    }


def test_a_folder_without_a_marker_keeps_its_files(tmp_path):
    """A folder with no ``run.json`` is not the tool's: even a name like the temporary of a
    first marker stays when anything else is beside it; alone, it is what a kill left."""
    user = tmp_path / "user"
    user.mkdir()
    (user / ".run-abcdefgh.json").write_text("mine")
    (user / ".detector-abcdefgh.pt").write_text("mine too")
    (user / "notes.txt").write_text("notes")
    with pytest.raises(CLIError, match="holds no threedsr-cli run"):
        claim_run(user, "train", {}, resume=False, overwrite=False)
    assert sorted(p.name for p in user.iterdir()) == sorted(
        [".run-abcdefgh.json", ".detector-abcdefgh.pt", "notes.txt"]
    )
    cut = tmp_path / "cut"
    cut.mkdir()
    (cut / ".run-abcdefgh.json").write_text('{"kind": "tr')
    claim_run(cut, "train", {}, resume=False, overwrite=False)
    assert sorted(p.name for p in cut.iterdir()) == [MARKER]
