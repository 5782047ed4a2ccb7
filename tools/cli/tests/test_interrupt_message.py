"""What a Ctrl-C during ``train`` says is what the folder holds: a run interrupted before
anything was saved (a memory fit, the only kind it has; a network before its first checkpoint)
is undone, so the message says to rerun the same command, not ``--resume``."""

from __future__ import annotations

import pytest

CATEGORY = "puck"
RERUN = (
    "error: interrupted before anything was saved; the folder is as it was before: rerun the "
    "same command to start again"
)


def _stop(*args, **kwargs):
    raise KeyboardInterrupt  # a Ctrl-C while the memory is fitted (it saves nothing)


@pytest.mark.parametrize("where", ["train_detector", "load_train_data"])
def test_ctrl_c_in_a_memory_train_says_to_rerun(cli, tmp_path, tiny_data, monkeypatch, where):
    import threedsr

    out = tmp_path / "run"
    args = ["train", "--data", tiny_data, "--category", CATEGORY, "--out", out, "--size", 64,
            "--device", "cpu", "-q"]  # fmt: skip
    real = getattr(threedsr, where)
    monkeypatch.setattr(threedsr, where, _stop)
    res = cli(*args)
    assert res.exit_code == 130, res.stderr
    assert res.stderr.strip() == RERUN
    assert not out.exists()  # undone, as the message says
    monkeypatch.setattr(threedsr, where, real)
    res = cli(*args)  # and the same command works
    assert res.exit_code == 0, res.stderr


def test_ctrl_c_in_an_overwrite_says_the_old_run_is_back(cli, tmp_path, tiny_data, monkeypatch):
    import threedsr

    out = tmp_path / "run"
    args = ["train", "--data", tiny_data, "--category", CATEGORY, "--out", out, "--size", 64,
            "--device", "cpu", "-q"]  # fmt: skip
    assert cli(*args).exit_code == 0
    old = (out / "detector.pt").read_bytes()
    monkeypatch.setattr(threedsr, "train_detector", _stop)
    res = cli(*args, "--overwrite", "--seed", 1)
    assert res.exit_code == 130 and res.stderr.strip() == RERUN, res.stderr
    assert (out / "detector.pt").read_bytes() == old
    assert sorted(p.name for p in out.iterdir()) == [
        "detector.pt",
        "run.json",
        "train_history.json",
    ]


def test_a_resumed_run_without_a_checkpoint_still_says_resume(capsys):
    from threedsr_cli.errors import Interrupted, guard

    with pytest.raises(SystemExit) as info, guard():
        raise Interrupted(None)
    assert info.value.code == 130
    assert capsys.readouterr().err == "error: interrupted, nothing new saved; rerun with --resume\n"
