"""Workspace-wide pytest fixtures.

The real MVTec 3D-AD / Eyecandies samples live outside the repository (their licences forbid
copying them in). Tests that use them request the ``real_data`` fixture, which skips cleanly when
the folder is absent. The development copy of the real cable_gland class (made by
``../shared/data/get-cable-gland.sh``) is found through ``THREEDSR_CABLE_GLAND`` (the folder that
holds ``cable_gland/``); tests that need it request ``cable_gland`` and skip without it. The
Eyecandies CandyCane copy (``../shared/data/get-candycane.sh``) is found the same way through
``THREEDSR_CANDYCANE`` (the folder that holds ``CandyCane/``, fixture ``candycane``).
"""

from __future__ import annotations

import os
from pathlib import Path

# Torch's OpenMP workers busy-wait by default; on a small shared machine that slowed convolutions
# ~10x. Set before any test module imports torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest

_REPO_ROOT = Path(__file__).resolve().parent


def real_data_dir() -> Path:
    """Folder holding ``mvtec3d_ad/`` and ``eyecandies/`` samples (``THREEDSR_REAL_DATA`` overrides)."""
    env = os.environ.get("THREEDSR_REAL_DATA")
    return Path(env) if env else _REPO_ROOT.parent / "shared" / "data" / "real"


@pytest.fixture(scope="session")
def real_data() -> Path:
    root = real_data_dir()
    if not root.is_dir():
        pytest.skip(f"real samples not found at {root}")
    return root


def cable_gland_dir() -> Path | None:
    """Dataset root holding ``cable_gland/{train,validation,test}`` (``THREEDSR_CABLE_GLAND``)."""
    env = os.environ.get("THREEDSR_CABLE_GLAND")
    return Path(env) if env else None


@pytest.fixture(scope="session")
def cable_gland() -> Path:
    root = cable_gland_dir()
    if root is None:
        pytest.skip("THREEDSR_CABLE_GLAND is not set (the real cable_gland development copy)")
    if not (root / "cable_gland" / "train").is_dir():
        pytest.skip(f"no cable_gland/train under THREEDSR_CABLE_GLAND={root}")
    return root


def candycane_dir() -> Path | None:
    """Eyecandies root holding ``CandyCane/{train,val,test_public}`` (``THREEDSR_CANDYCANE``)."""
    env = os.environ.get("THREEDSR_CANDYCANE")
    return Path(env) if env else None


@pytest.fixture(scope="session")
def candycane() -> Path:
    root = candycane_dir()
    if root is None:
        pytest.skip("THREEDSR_CANDYCANE is not set (the Eyecandies CandyCane development copy)")
    if not (root / "CandyCane" / "train" / "data").is_dir():
        pytest.skip(f"no CandyCane/train/data under THREEDSR_CANDYCANE={root}")
    return root
