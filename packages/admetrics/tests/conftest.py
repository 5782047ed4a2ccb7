"""Fixtures of the admetrics tests. Like every test here they need nothing outside this package,
so the tests also run from an unpacked sdist (README, "Tests")."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # The workspace's pyproject.toml registers the marker; an unpacked sdist has no pytest config.
    if "real" not in {line.split(":")[0] for line in config.getini("markers")}:
        config.addinivalue_line("markers", "real: tests on the real samples (THREEDSR_REAL_DATA)")


@pytest.fixture(scope="session")
def real_data() -> Path:
    """Folder holding the real ``mvtec3d_ad/`` samples, named by ``THREEDSR_REAL_DATA`` (the
    workspace's conftest.py sets it to ``../shared/data/real``); skips the test when the variable
    is unset or the folder is absent."""
    value = os.environ.get("THREEDSR_REAL_DATA")
    if not value:
        pytest.skip("THREEDSR_REAL_DATA is not set (the real MVTec 3D-AD samples)")
    root = Path(value)
    if not root.is_dir():
        pytest.skip(f"real samples not found at {root}")
    return root
