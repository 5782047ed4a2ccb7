"""Workspace-wide pytest settings. The fixtures live beside the tests, in each package's (and the
CLI's) tests/conftest.py: a package's tests also run from its unpacked sdist, where this file and
the root pyproject.toml's pytest settings do not exist (tests/test_standalone_packages.py checks
it), so nothing here may be needed by them.

The real MVTec 3D-AD / Eyecandies samples live outside the repository (their licences forbid
copying them in). Tests that use them request a ``real_data`` fixture (pcprep, admetrics, the
CLI), which reads ``THREEDSR_REAL_DATA`` and skips cleanly when it is unset or the folder is
absent; this file points the variable at ``../shared/data/real`` when it is unset. The real
cable_gland and Eyecandies CandyCane development copies (``../shared/data/get-cable-gland.sh``,
``get-candycane.sh``) are found through ``THREEDSR_CABLE_GLAND`` / ``THREEDSR_CANDYCANE``
(threedsr's ``cable_gland`` / ``candycane`` fixtures; skipped without them).
"""

from __future__ import annotations

import os
from pathlib import Path

# Torch's OpenMP workers busy-wait by default; on a small shared machine that slowed convolutions
# ~10x. Set before any test module imports torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest
from hypothesis import settings

# CI (`.ci/run` sets HYPOTHESIS_PROFILE=ci) draws the same examples on every run: a red CI blocks
# landing, so it must not turn red by chance. Runs elsewhere draw new examples each time, which
# is how the fp32 tolerance cases pinned with @example in test_knn and test_procedural_depth were
# found (each had turned one CI run red by chance).
settings.register_profile("ci", derandomize=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

_REPO_ROOT = Path(__file__).resolve().parent

# Each worker imports torch and builds its own session fixtures (trained detectors): the cap keeps
# a many-core machine from paying that once per core.
_MAX_WORKERS = 4

# The real samples: every real_data fixture reads THREEDSR_REAL_DATA only (an unpacked sdist's
# tests need nothing from this workspace); here, unset or empty, it is the copy beside the checkout.
if not os.environ.get("THREEDSR_REAL_DATA"):
    os.environ["THREEDSR_REAL_DATA"] = str(_REPO_ROOT.parent / "shared" / "data" / "real")


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """``uv run pytest`` runs on pytest-xdist's workers, one per physical core and at most
    :data:`_MAX_WORKERS`, unless ``-n`` is given (``-n 0``: one process). Most tests run torch on
    one thread, so a single process left the second core of a 2-core machine idle: the suite took
    14.3 min there in one process and 9.0 min on two workers (session 24). Where xdist is absent (a GPU
    server's Python, ``tools/portable.sh``) or under ``--pdb`` the suite runs in one process."""
    if not config.pluginmanager.hasplugin("xdist") or hasattr(config, "workerinput"):
        return  # an xdist worker gets its options from the controller
    if config.option.numprocesses is None and not config.option.usepdb:
        config.option.numprocesses = "auto"
        config.option.maxprocesses = config.option.maxprocesses or _MAX_WORKERS
