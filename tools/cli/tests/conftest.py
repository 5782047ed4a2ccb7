"""Session fixtures: one tiny synthetic dataset, stage-1 backbones and a stage-2 run, all made
through the CLI itself and reused by the train / eval / predict tests."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from threedsr_cli.app import app
from typer.testing import CliRunner

CATEGORY = "puck"


class Result:
    def __init__(self, exit_code: int, stdout: str, stderr: str) -> None:
        self.exit_code, self.stdout, self.stderr = exit_code, stdout, stderr


def runner() -> CliRunner:
    """A runner that keeps stderr apart from stdout: click < 8.2 (which typer 0.12 allows) mixes
    them unless asked not to; 8.2 dropped the argument and always keeps them apart."""
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:
        return CliRunner()


def invoke(*args: object) -> Result:
    """Run the CLI in-process; exceptions other than SystemExit propagate (a test failure)."""
    res = runner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    return Result(res.exit_code, res.stdout, res.stderr)


@pytest.fixture(scope="session")
def cli() -> Callable[..., Result]:
    return invoke


_KILL_DRIVER = r"""
import fnmatch, os, signal, sys
pattern, nth = os.environ["FAULT_PATTERN"], int(os.environ["FAULT_NTH"])
real, seen = os.replace, [0]
def replace(src, dst, *a, **k):
    if fnmatch.fnmatch(os.path.basename(os.fspath(dst)), pattern):
        seen[0] += 1
        if seen[0] == nth:
            os.kill(os.getpid(), signal.SIGKILL)
    return real(src, dst, *a, **k)
os.replace = replace
from threedsr_cli.app import app
sys.argv[0] = "threedsr-cli"
app()
"""


def run_killed(*args: object, pattern: str, nth: int) -> None:
    """Run the CLI in a subprocess that SIGKILLs itself at the ``nth`` rename onto a file named
    like ``pattern``: it dies with the new file complete under its temporary name, the rename
    not done (the worst moment of an atomic write)."""
    env = dict(os.environ, FAULT_PATTERN=pattern, FAULT_NTH=str(nth), OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-c", _KILL_DRIVER, *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr[-2000:])


@pytest.fixture(scope="session")
def killed() -> Callable[..., None]:
    """``killed(args, pattern, nth)``: :func:`run_killed`."""
    return lambda args, pattern, nth: run_killed(*args, pattern=pattern, nth=nth)


_HOLD_DRIVER = r"""
import importlib, os, sys, time
module_name, name = os.environ["HOLD_AT"].rsplit(":", 1)
module = importlib.import_module(module_name)
real = getattr(module, name)
def waiting(*args, **kwargs):
    open(os.environ["HELD_FILE"], "w").close()
    start = time.monotonic()
    while not os.path.exists(os.environ["GO_FILE"]) and time.monotonic() - start < 300:
        time.sleep(0.05)
    return real(*args, **kwargs)
setattr(module, name, waiting)
from threedsr_cli.app import main
sys.argv[0] = "threedsr-cli"
main()
"""


@dataclass
class HeldCommand:
    """A CLI command stopped inside a function until :func:`held_command`'s body has run."""

    pid: int
    returncode: int | None = None
    stderr: str = ""


@contextmanager
def held_command(hold_at: str, args: list[object], tmp: Path) -> Iterator[HeldCommand]:
    """Run ``threedsr-cli ARGS`` in a subprocess that waits inside ``hold_at``
    (``module:function``, called after the command took its folder's lock) while the body runs
    (a second command against the same folder), then lets it finish; the returned record gets
    its exit code and stderr."""
    go, held = tmp / "go", tmp / "held"
    env = dict(
        os.environ, OMP_NUM_THREADS="1", HOLD_AT=hold_at, GO_FILE=str(go), HELD_FILE=str(held)
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD_DRIVER, *map(str, args)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    record = HeldCommand(proc.pid)
    try:
        deadline = time.monotonic() + 240
        while not held.exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.05)
        yield record
        go.touch()
        _, record.stderr = proc.communicate(timeout=600)
        record.returncode = proc.returncode
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.fixture(scope="session")
def real_data() -> Path:
    """Folder holding the real ``mvtec3d_ad/`` and ``eyecandies/`` samples, named by
    ``THREEDSR_REAL_DATA`` (the workspace's conftest.py sets it to ``../shared/data/real``);
    skips the test when the variable is unset or the folder is absent."""
    value = os.environ.get("THREEDSR_REAL_DATA")
    if not value:
        pytest.skip("THREEDSR_REAL_DATA is not set (the real MVTec 3D-AD / Eyecandies samples)")
    root = Path(value)
    if not root.is_dir():
        pytest.skip(f"real samples not found at {root}")
    return root


def assert_bad_input(res: Result, *fragments: str) -> str:
    """Exit 2, exactly one line on stderr starting with 'error:', naming every fragment."""
    assert res.exit_code == 2, (res.exit_code, res.stdout, res.stderr)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert "Traceback" not in res.stderr
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]


@pytest.fixture(scope="session")
def bad_input() -> Callable[..., str]:
    return assert_bad_input


@pytest.fixture(scope="session")
def cloud_bytes():
    """pcprep's tests/cloud_bytes.py: PCD / PLY files from numpy (loaded by path: the package
    tests are not importable from here)."""
    import importlib.util

    path = Path(__file__).resolve().parents[3] / "packages" / "pcprep" / "tests" / "cloud_bytes.py"
    spec = importlib.util.spec_from_file_location("cli_tests_cloud_bytes", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from depthsim import scenes

    root = tmp_path_factory.mktemp("data")
    scenes.generate_dataset(
        root, classes=[CATEGORY], size=64, n_train=4, n_validation=2, n_test_per_type=1, seed=3
    )
    return root


def _train_dada(out: Path, setup: str) -> Path:
    res = invoke(
        "train-dada",
        "--preset",
        "cpu",
        "--setup",
        setup,
        "--out",
        out,
        "--iterations",
        2,
        "--batch-size",
        2,
        "--size",
        32,
        "--device",
        "cpu",
        "--quiet",
    )
    assert res.exit_code == 0, res.stderr
    return out


@pytest.fixture(scope="session")
def dada_rgbd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _train_dada(tmp_path_factory.mktemp("dada") / "rgbd", "rgbd")


@pytest.fixture(scope="session")
def dada_rgb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _train_dada(tmp_path_factory.mktemp("dada") / "rgb", "rgb")


def fused_train_args(data: Path, dada: Path, out: Path, *extra: object) -> list[object]:
    """``train`` of a tiny fused rgbd run (``run_rgbd``'s arguments; add ``--resume`` ...)."""
    args = ["train", "--method", "fused", "--data", data, "--category", CATEGORY, "--dada", dada]
    args += ["--out", out, "--iterations", 2, "--batch-size", 2, "--size", 64, "--device", "cpu"]
    return [*args, "--quiet", *extra]


@pytest.fixture(scope="session")
def run_rgbd(tmp_path_factory: pytest.TempPathFactory, tiny_data: Path, dada_rgbd: Path) -> Path:
    out = tmp_path_factory.mktemp("runs") / "rgbd"
    res = invoke(*fused_train_args(tiny_data, dada_rgbd, out))
    assert res.exit_code == 0, res.stderr
    return out


@pytest.fixture()
def data_copy(tmp_path: Path, tiny_data: Path) -> Path:
    """A private copy of the dataset a test may corrupt (the session copy stays intact)."""
    dst = tmp_path / "data"
    shutil.copytree(tiny_data, dst)
    return dst
