"""Fixtures of the pcprep tests. Like every test here they need nothing outside this package, so
the tests also run from an unpacked sdist (README, "Tests")."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


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
