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


@pytest.fixture(scope="session")
def cloud_bytes():
    """tests/cloud_bytes.py: tiny PCD / PLY files written from literal headers and numpy (loaded
    by path: the tests are collected with ``--import-mode=importlib`` in the workspace)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "pcprep_tests_cloud_bytes", Path(__file__).with_name("cloud_bytes.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
