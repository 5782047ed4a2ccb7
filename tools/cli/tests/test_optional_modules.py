"""pillow and matplotlib are imported only where images are read or figures drawn (issue 25: a
GPU server's python may lack them). Each case runs the CLI in a fresh interpreter whose imports
of the blocked modules fail, as they do where the module is not installed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import CATEGORY

ROOT = Path(__file__).resolve().parents[3]

# argv: BLOCKED (comma-separated) then either "-c CODE" or the CLI's own arguments.
_BLOCKER = """
import importlib.abc, sys

blocked = set(sys.argv[1].split(","))


class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, Block())
if sys.argv[2] == "-c":
    exec(sys.argv[3])
else:
    sys.argv = ["threedsr-cli", *sys.argv[2:]]
    from threedsr_cli.app import main

    main()
"""


def _run(tmp_path: Path, blocked: str, *args: object) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "blocker.py"
    script.write_text(_BLOCKER)
    return subprocess.run(
        [sys.executable, str(script), blocked, *(str(a) for a in args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _train_memory(tmp_path: Path, blocked: str, data: Path) -> subprocess.CompletedProcess[str]:
    return _run(
        tmp_path,
        blocked,
        *("train", "--data", data, "--category", CATEGORY, "--out", tmp_path / "run"),
        *("--method", "memory", "--size", 64, "--device", "cpu", "--quiet"),
    )


@pytest.mark.slow
def test_train_and_eval_run_without_matplotlib(tmp_path: Path, tiny_data: Path) -> None:
    res = _train_memory(tmp_path, "matplotlib", tiny_data)
    assert res.returncode == 0, res.stderr
    res = _run(
        tmp_path,
        "matplotlib",
        *("eval", "--run", tmp_path / "run", "--data", tiny_data, "--device", "cpu", "--quiet"),
    )
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "run" / "metrics.json").is_file()
    # predict draws overlays: the missing module is named in one line, exit 2
    sample = tiny_data / CATEGORY / "test" / "good"  # xyz/ + rgb/
    res = _run(
        tmp_path,
        "matplotlib",
        *("predict", "--run", tmp_path / "run", sample, "--out", tmp_path / "pred"),
        *("--device", "cpu", "--quiet"),
    )
    assert res.returncode == 2, res.stderr
    assert res.stderr.splitlines() == [
        "error: matplotlib is not installed; this command needs it (pip install matplotlib)"
    ]


def test_png_dataset_without_pillow_names_file_and_fix(tmp_path: Path, tiny_data: Path) -> None:
    res = _train_memory(tmp_path, "PIL,matplotlib", tiny_data)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: " + str(tiny_data)), res.stderr
    assert lines[0].endswith(
        ".png: reading PNG / JPEG images needs pillow, which is not installed (pip install pillow)"
    )


def test_stage1_and_gpu_check_need_neither(tmp_path: Path) -> None:
    # stage 1 on procedural RGB and simulated depth
    res = _run(
        tmp_path,
        "PIL,matplotlib",
        *("train-dada", "--out", tmp_path / "dada", "--iterations", 2, "--batch-size", 2),
        *("--size", 32, "--device", "cpu", "--quiet"),
    )
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "dada" / "backbone.pt").is_file()
    # the GPU check's imports; an RGB image folder is refused at once, naming folder and fix
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"not read")
    code = f"""
import sys
sys.path.insert(0, "tools/bench")
import gpu_check, pcprep, depthsim, vqcore
try:
    vqcore.ImageFolderSource({str(folder)!r})
except vqcore.VqcoreError as exc:
    print(exc)
"""
    res = _run(tmp_path, "PIL,matplotlib", "-c", code)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [
        f"{folder}: reading an RGB image folder needs pillow, which is not installed "
        "(pip install pillow)"
    ]


@pytest.mark.parametrize("blocked", ["typer", "rich"])
def test_portable_entry_without_the_cli_stack_names_it(tmp_path: Path, blocked: str) -> None:
    # tools/portable.sh runs `python -m threedsr_cli` in a Python the user brings; one without
    # typer or rich met a traceback there instead of the one line the README promises.
    code = "import runpy; sys.argv = ['threedsr_cli', '--version']; "
    code += "runpy.run_module('threedsr_cli', run_name='__main__')"
    res = _run(tmp_path, blocked, "-c", code)
    assert res.returncode == 2, res.stderr
    assert res.stderr.splitlines() == [
        f"error: {blocked} is not installed; this command needs it (pip install {blocked})"
    ]
