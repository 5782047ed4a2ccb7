"""The tests run as the README says: with depthsim, pytest and hypothesis only; scipy or pillow
may be missing, so a test module must not import them at module level (that fails collection of
every test in the module, not just the few that need them)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
# depthsim's own dependencies (pyproject.toml) and the test runner's
REQUIRED = {"depthsim", "numpy", "numba", "tifffile", "pytest", "hypothesis"}


def _module_level_imports(path: Path) -> set[str]:
    roots = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("path", sorted(TESTS.glob("*.py")), ids=lambda p: p.name)
def test_module_imports_only_required_packages(path: Path) -> None:
    extra = _module_level_imports(path) - REQUIRED - set(sys.stdlib_module_names)
    assert not extra, f"{path.name} imports {sorted(extra)} at module level; use importorskip"
