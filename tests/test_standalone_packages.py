"""Each package's tests run outside the workspace, as from its unpacked sdist: they may need no
fixture, marker or file that only the workspace provides (the root conftest.py, the root
pyproject.toml's pytest settings, ../shared). Every package folder is copied out of the tree and
its tests are collected and set up (``--setup-plan``: fixtures resolved, no fixture or test run)
by a pytest that sees no workspace configuration.

The full check on the built artefacts (sdist unpacked, wheel installed in a fresh venv, the
tests run) is ``bash tools/standalone_check.sh`` (minutes: it runs every package's suite)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

WORKSPACE = Path(__file__).resolve().parents[1]
PACKAGES = WORKSPACE / "packages"
#: set by the root conftest.py or by the developer; the copies must run as if unset
WORKSPACE_ENV = ("THREEDSR_REAL_DATA", "THREEDSR_CABLE_GLAND", "THREEDSR_CANDYCANE")


@pytest.mark.parametrize("package", sorted(p.name for p in PACKAGES.iterdir() if p.is_dir()))
def test_package_tests_need_nothing_from_the_workspace(package: str) -> None:
    # Not tmp_path: a --basetemp inside the workspace would put the root conftest.py and
    # pyproject.toml above the copy.
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / package
        assert WORKSPACE not in copy.parents
        ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", ".pytest_cache")
        shutil.copytree(PACKAGES / package, copy, ignore=ignore)
        env = {k: v for k, v in os.environ.items() if k not in WORKSPACE_ENV}
        cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--setup-plan", "-q"]
        cmd += ["--strict-markers", "tests"]
        out = subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-3000:]
