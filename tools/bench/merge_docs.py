"""Rebuild docs/benchmarks.md from the per-package sources in docs/bench/.

Run from the repository root: ``python tools/bench/merge_docs.py``. The header paragraph is
kept from the current docs/benchmarks.md (everything before the first ``## `` heading); each
source's headings move one level down, except inside code fences, and its relative links (written
from docs/bench/) are rewritten to point from docs/ (``../images/x.png`` -> ``images/x.png``).
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

PACKAGES = ("depthsim", "pcprep", "admetrics", "vqcore", "threedsr", "export", "gpu")


def demote(text: str) -> str:
    out, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        out.append("#" + line if line.startswith("#") and not fenced else line)
    return "\n".join(out).rstrip() + "\n"


# a Markdown link or image target: ](target) or ](target "title")
_LINK = re.compile(r"\]\(([^)\s]+)")


def relink(text: str) -> str:
    """Relative link targets of a docs/bench/ page, rewritten for docs/benchmarks.md.

    >>> relink("![c](../images/c.png) [g](gpu.md#x) [w](https://a.b/c) [s](#here)")
    '![c](images/c.png) [g](bench/gpu.md#x) [w](https://a.b/c) [s](#here)'
    """

    def fix(m: re.Match[str]) -> str:
        target = m.group(1)
        if target.startswith("#") or re.match(r"[a-z][a-z0-9+.-]*:", target):
            return m.group(0)
        return "](" + posixpath.normpath(posixpath.join("bench", target))

    return _LINK.sub(fix, text)


def merged(docs: Path) -> str:
    """docs/benchmarks.md as built from its header and the docs/bench/ pages."""
    current = (docs / "benchmarks.md").read_text()
    header = current[: current.index("\n## ") + 1]
    parts = [header.rstrip() + "\n"]
    parts += [relink(demote((docs / "bench" / f"{name}.md").read_text())) for name in PACKAGES]
    return "\n".join(parts)


def main() -> None:
    docs = Path("docs")
    target = docs / "benchmarks.md"
    text = merged(docs)
    tmp = target.with_suffix(".md.tmp")
    tmp.write_text(text)
    tmp.replace(target)


if __name__ == "__main__":
    main()
