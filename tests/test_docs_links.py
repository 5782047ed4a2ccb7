"""The Markdown files' relative links lead somewhere, and docs/benchmarks.md is what
tools/bench/merge_docs.py builds from docs/bench/ (whose pages link from one folder deeper: the
merged copy of ``../images/x.png`` once pointed outside docs/)."""

from __future__ import annotations

import doctest
import importlib.util
import re
import sys
from pathlib import Path

import pytest

WORKSPACE = Path(__file__).resolve().parents[1]
DOCS = WORKSPACE / "docs"
MARKDOWN = sorted(
    [
        WORKSPACE / "README.md",
        *WORKSPACE.glob("packages/*/README.md"),
        *WORKSPACE.glob("tools/*/README.md"),
        *DOCS.glob("*.md"),
        *DOCS.glob("bench/*.md"),
    ]
)


def _merge_docs():
    path = WORKSPACE / "tools" / "bench" / "merge_docs.py"
    spec = importlib.util.spec_from_file_location("bench_merge_docs", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _relative_targets(text: str) -> list[str]:
    targets = re.findall(r"\]\(([^)\s]+)", text)
    return [t for t in targets if not t.startswith("#") and not re.match(r"[a-z][a-z0-9+.-]*:", t)]


@pytest.mark.parametrize("page", MARKDOWN, ids=lambda p: str(p.relative_to(WORKSPACE)))
def test_relative_links_name_existing_files(page: Path) -> None:
    missing = [
        target
        for target in _relative_targets(page.read_text())
        if not (page.parent / target.split("#", 1)[0]).exists()
    ]
    assert missing == []


def test_benchmarks_md_is_the_merge_of_the_bench_pages() -> None:
    merge_docs = _merge_docs()
    assert (DOCS / "benchmarks.md").read_text() == merge_docs.merged(DOCS), (
        "docs/benchmarks.md is stale: run python tools/bench/merge_docs.py"
    )


def test_merge_docs_doctests() -> None:
    result = doctest.testmod(_merge_docs())
    assert result.attempted > 0 and result.failed == 0
