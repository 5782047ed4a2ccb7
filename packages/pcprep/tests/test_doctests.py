"""The docstring examples pass under plain doctest, as a user of the installed package runs them
(``python -m pytest --doctest-modules --pyargs pcprep``): without the workspace's ``NUMBER``
option, so a printed float must not depend on it."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pcprep
import pytest

MODULES = sorted(m.name for m in pkgutil.iter_modules(pcprep.__path__, "pcprep."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_pass_without_workspace_doctest_options(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=0, report=False)
    assert result.failed == 0
