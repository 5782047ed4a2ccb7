"""tools/portable.sh: the source tree on PYTHONPATH in an existing Python, nothing installed
(issue 25). CI also runs it in a venv without the workspace packages (.ci/portable-checks)."""

from __future__ import annotations

import ast
import importlib
import json
import os
import re
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


# Import name -> distribution name, where they differ.
_DISTRIBUTIONS = {"PIL": "pillow", "skimage": "scikit-image", "sklearn": "scikit-learn"}


@pytest.mark.parametrize("name", ["depthsim", "pcprep", "admetrics", "vqcore"])
def test_declared_dependencies_are_the_imported_ones(name: str) -> None:
    # `pip install <name>` must bring every third-party module its code imports, and nothing
    # else (pcprep declared scikit-image and admetrics scipy, neither ever imported).
    src = PACKAGES[name] / "src"
    imported: set[str] = set()
    for path in src.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    imported -= set(sys.stdlib_module_names) | {name}
    meta = tomllib.loads((PACKAGES[name] / "pyproject.toml").read_text())["project"]
    declared = {re.match(r"[A-Za-z0-9_.-]+", req)[0] for req in meta["dependencies"]}
    assert {_DISTRIBUTIONS.get(m, m) for m in imported} == declared


def test_pretrained_weights_ship_inside_the_package() -> None:
    # Found by path beside the module, so a source tree and a wheel both have them.
    import vqcore

    assert Path(vqcore.PRETRAINED_DIR).parent == PACKAGES["vqcore"] / "src" / "vqcore"
    assert {p.name for p in Path(vqcore.PRETRAINED_DIR).glob("*.pt")} == {
        "rgbd.pt",
        "depth.pt",
        "rgb.pt",
    }
