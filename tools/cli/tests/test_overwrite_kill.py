"""A kill while ``--overwrite`` moves the old run into ``.overwritten/`` (conftest's ``killed``:
SIGKILL at the n-th rename onto a name) must not leave the run split between the two folders:
the next command completes the move and brings the run back, as after any killed
``--overwrite``, and ``--resume``, ``eval`` and ``--overwrite`` work as on an unbroken folder."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

CATEGORY = "puck"
#: what a finished memory run holds: the entries the move renames, in its order
MOVED = ["detector.pt", "run.json", "train_history.json"]
KILLS = [
    (".threedsr-commit.json", 1),  # the move's journal, before any rename
    *((name, 1) for name in MOVED),  # before each entry's rename (rename 1 is the move's)
    ("run.json", 2),  # the move done, the new run's marker not yet written
]


def _memory_args(data: Path, out: Path) -> list[object]:
    return ["train", "--data", data, "--category", CATEGORY, "--out", out, "--size", 64,
            "--device", "cpu", "-q"]  # fmt: skip


def _state(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "/"
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture(scope="module")
def finished_run(cli, tmp_path_factory: pytest.TempPathFactory, tiny_data: Path) -> Path:
    out = tmp_path_factory.mktemp("finished") / "run"
    assert cli(*_memory_args(tiny_data, out)).exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == MOVED
    return out


@pytest.mark.parametrize(("pattern", "nth"), KILLS)
def test_a_kill_while_overwrite_moves_the_run_aside_keeps_it_whole(
    cli, killed, tmp_path, tiny_data, finished_run, pattern, nth
):
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    args = _memory_args(tiny_data, out)
    before = _state(out)

    killed([*args, "--overwrite"], pattern, nth)
    assert _state(out) != before  # the kill left the move unfinished
    res = cli(*args, "--resume")  # the old run, whole and finished: nothing to do
    assert res.exit_code == 0, res.stderr
    assert _state(out) == before

    killed([*args, "--overwrite"], pattern, nth)
    res = cli("eval", "--run", out, "--data", tiny_data, "-q")
    assert res.exit_code == 0, res.stderr
    after = _state(out)
    assert {k: after.get(k) for k in before} == before  # eval read the old run and added metrics
    assert not (out / ".overwritten").exists()

    res = cli(*args, "--overwrite")
    assert res.exit_code == 0, res.stderr
    assert sorted(p.name for p in out.iterdir()) == MOVED  # the old run and its metrics gone


def test_a_kill_while_the_replaced_run_comes_back_keeps_it_whole(
    cli, killed, tmp_path, tiny_data, finished_run
):
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    args = _memory_args(tiny_data, out)
    before = _state(out)
    killed([*args, "--overwrite"], "run.json", 2)  # moved aside, the new run not begun
    # the next command brings the run back (detector.pt first, the .json files last): killed
    # with detector.pt back and the rest still in .overwritten
    killed([*args, "--resume"], "train_history.json", 1)
    assert (out / "detector.pt").is_file() and (out / ".overwritten").is_dir()
    res = cli(*args, "--resume")
    assert res.exit_code == 0, res.stderr
    assert _state(out) == before


@pytest.mark.parametrize("record", [True, False], ids=["kept-recorded", "older-marker"])
@pytest.mark.parametrize("user", ["notes.txt", "mine/notes.txt", "metrics.json"])
def test_a_file_of_the_users_does_not_stop_a_killed_overwrite_being_undone(
    cli, killed, tmp_path, tiny_data, finished_run, user, record
):
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    (out / user).parent.mkdir(exist_ok=True)
    (out / user).write_text('{"auroc": 0.5}\n')  # metrics.json: by hand, so --overwrite keeps it
    args = _memory_args(tiny_data, out)
    before = _state(out)
    killed([*args, "--overwrite"], "detector.pt", 2)  # the new run's first checkpoint
    assert (out / ".overwritten" / "detector.pt").is_file() and (out / user).is_file()
    if not record:  # the new run's marker as a claim before the record of kept names wrote it
        marker = json.loads((out / "run.json").read_text())
        marker.pop("kept", None)
        (out / "run.json").write_text(json.dumps(marker))
    res = cli(*args, "--resume")  # the old run back, finished: nothing to do
    assert res.exit_code == 0, res.stderr
    assert _state(out) == before


@pytest.mark.parametrize("then", ["resume", "eval"])
@pytest.mark.parametrize("when", ["before-finish", "after-finish"])
def test_the_replaced_run_goes_once_the_new_run_has_a_checkpoint(
    cli, killed, tmp_path, tiny_data, finished_run, when, then
):
    """A killed ``--overwrite`` whose new run has its checkpoint keeps the new run; the replaced
    one in ``.overwritten/`` is deleted by the next command on the folder (a resumed run has no
    backup of its own to drop), the user's files stay."""
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    (out / "notes.txt").write_text("mine\n")
    args = _memory_args(tiny_data, out)
    if when == "before-finish":  # run.json: moved aside (1), the claim (2), finish() (3)
        killed([*args, "--overwrite"], "run.json", 3)
        assert not json.loads((out / "run.json").read_text())["finished"]
    else:  # finish() wrote the marker, killed before it dropped the backup
        res = cli(*args, "--overwrite")
        assert res.exit_code == 0, res.stderr
        shutil.copytree(finished_run, out / ".overwritten")
    assert (out / "detector.pt").is_file() and (out / ".overwritten" / "detector.pt").is_file()
    if then == "resume":
        res = cli(*args, "--resume")
    else:
        res = cli("eval", "--run", out, "--data", tiny_data, "-q")
    assert res.exit_code == 0, res.stderr
    assert not (out / ".overwritten").exists()
    assert (out / "notes.txt").read_text() == "mine\n"
    assert (out / "detector.pt").is_file()
    assert json.loads((out / "run.json").read_text())["finished"] == (
        then == "resume" or when == "after-finish"
    )
