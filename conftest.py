"""Workspace-wide pytest fixtures.

The real MVTec 3D-AD / Eyecandies samples live outside the repository (their licences forbid
copying them in). Tests that use them request the ``real_data`` fixture, which skips cleanly when
the folder is absent.
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
