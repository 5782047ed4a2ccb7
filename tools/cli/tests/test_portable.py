"""tools/portable.sh: the source tree on PYTHONPATH in an existing Python, nothing installed
(issue 25). CI also runs it in a venv without the workspace packages (.ci/portable-checks)."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "tools" / "portable.sh"
PACKAGES = {
    "depthsim": ROOT / "packages/depthsim",
    "pcprep": ROOT / "packages/pcprep",
    "admetrics": ROOT / "packages/admetrics",
    "vqcore": ROOT / "packages/vqcore",
    "threedsr": ROOT / "packages/threedsr",
    "threedsr_cli": ROOT / "tools/cli",
}


def _portable(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        env={**os.environ, "PYTHON": sys.executable, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_workspace_package_is_listed() -> None:
    found = {p.parent.name for p in (ROOT / "packages").glob("*/src")}
    assert found == set(PACKAGES) - {"threedsr_cli"}


def test_packages_import_from_the_source_tree() -> None:
    names = ",".join(sorted(PACKAGES))
    code = (
        "import importlib, json, sys; print(json.dumps({n: importlib.import_module(n).__file__"
        " for n in sys.argv[1].split(',')}))"
    )
    res = _portable("python3", "-c", code, names, PYTHONPATH="/elsewhere")
    assert res.returncode == 0, res.stderr
    files = json.loads(res.stdout)
    for name, pkg in PACKAGES.items():
        assert Path(files[name]) == pkg / "src" / name / "__init__.py"


def test_pythonpath_puts_the_tree_first_and_keeps_the_callers() -> None:
    res = _portable("python3", "-c", "import os; print(os.environ['PYTHONPATH'])", PYTHONPATH="/x")
    parts = res.stdout.strip().split(":")
    srcs = {str(pkg / "src") for pkg in PACKAGES.values()}
    assert set(parts[: len(srcs)]) == srcs and parts[len(srcs) :] == ["/x"]


def test_cli_runs_as_threedsr_cli() -> None:
    res = _portable("threedsr-cli", "--help")
    assert res.returncode == 0, res.stderr
    assert "Usage: threedsr-cli " in res.stdout


def test_other_commands_run_as_given() -> None:
    res = _portable("bash", "-c", 'echo "$0 $PYTHONPATH"', "given", PYTHONPATH="")
    assert res.returncode == 0, res.stderr
    word, path = res.stdout.split()
    assert word == "given" and str(ROOT / "tools/cli/src") in path.split(":")
    assert not path.endswith(":")  # an empty caller PYTHONPATH adds no "" (the cwd) entry


@pytest.mark.parametrize(
    ("args", "env", "err"),
    [
        ((), {}, ""),  # no command: the usage, exit 2
        (("threedsr-cli",), {"PYTHON": "no-such-python"}, "error: no-such-python: no such"),
    ],
)
def test_bad_calls_exit_2(args: tuple[str, ...], env: dict[str, str], err: str) -> None:
    res = _portable(*args, **env)
    assert res.returncode == 2
    assert res.stderr.startswith(err) and "Traceback" not in res.stderr


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_version_attribute_matches_pyproject(name: str) -> None:
    # Checkpoints and pcprep's cache keys read __version__ (a source tree has no metadata).
    meta = tomllib.loads((PACKAGES[name] / "pyproject.toml").read_text())["project"]
    assert importlib.import_module(name).__version__ == meta["version"]


def test_pretrained_weights_ship_inside_the_package() -> None:
    # Found by path beside the module, so a source tree and a wheel both have them.
    import vqcore

    assert Path(vqcore.PRETRAINED_DIR).parent == PACKAGES["vqcore"] / "src" / "vqcore"
    assert {p.name for p in Path(vqcore.PRETRAINED_DIR).glob("*.pt")} == {
        "rgbd.pt",
        "depth.pt",
        "rgb.pt",
    }
