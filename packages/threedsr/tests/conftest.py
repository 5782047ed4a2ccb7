"""Fixtures of the threedsr tests; makes ``threedsr_testutil`` importable (importlib mode).

Nothing here or in the tests needs a file outside this package, so they also run from an unpacked
sdist (README, "Tests and benchmark"). The development copy of the real cable_gland class (made by
the workspace's ``../shared/data/get-cable-gland.sh``) is found through ``THREEDSR_CABLE_GLAND``
(the folder that holds ``cable_gland/``); tests that need it request ``cable_gland`` and skip
without it. The Eyecandies CandyCane copy (``../shared/data/get-candycane.sh``) is found the same
way through ``THREEDSR_CANDYCANE`` (the folder that holds ``CandyCane/``, fixture ``candycane``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

#: registered by the workspace's pyproject.toml; an unpacked sdist has no pytest config
MARKERS = {
    "slow": "integration tests that train small models (minutes)",
    "cuda": "tests that need a CUDA device (skipped without one)",
}


def pytest_configure(config: pytest.Config) -> None:
    known = {line.split(":")[0] for line in config.getini("markers")}
    for name, text in MARKERS.items():
        if name not in known:
            config.addinivalue_line("markers", f"{name}: {text}")


@pytest.fixture(autouse=True, scope="module")
def _torch_threads() -> Iterator[None]:
    # On a shared, oversubscribed machine two OpenMP threads per process are 10-50x slower than
    # one (measured here); THREEDSR_TEST_THREADS overrides. Restored after each module.
    before = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("THREEDSR_TEST_THREADS", "1")))
    yield
    torch.set_num_threads(before)


def dev_copy(env: str, marker: str, what: str) -> Path:
    """The dataset root that environment variable ``env`` names, holding ``marker``; skips the
    test when the variable is unset or the folder lacks it."""
    value = os.environ.get(env)
    if not value:
        pytest.skip(f"{env} is not set (the {what} development copy)")
    root = Path(value)
    if not (root / marker).is_dir():
        pytest.skip(f"no {marker} under {env}={root}")
    return root


@pytest.fixture(scope="session")
def cable_gland() -> Path:
    """Dataset root holding ``cable_gland/{train,validation,test}`` (``THREEDSR_CABLE_GLAND``)."""
    return dev_copy("THREEDSR_CABLE_GLAND", "cable_gland/train", "real cable_gland")


@pytest.fixture(scope="session")
def candycane() -> Path:
    """Eyecandies root holding ``CandyCane/{train,val,test_public}`` (``THREEDSR_CANDYCANE``)."""
    return dev_copy("THREEDSR_CANDYCANE", "CandyCane/train/data", "Eyecandies CandyCane")
