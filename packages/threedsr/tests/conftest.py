"""Fixtures of the threedsr tests; makes ``threedsr_testutil`` importable (importlib mode)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True, scope="module")
def _torch_threads() -> Iterator[None]:
    # On a shared, oversubscribed machine two OpenMP threads per process are 10-50x slower than
    # one (measured here); THREEDSR_TEST_THREADS overrides. Restored after each module.
    before = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("THREEDSR_TEST_THREADS", "1")))
    yield
    torch.set_num_threads(before)
