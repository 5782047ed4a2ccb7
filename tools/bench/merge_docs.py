"""Rebuild docs/benchmarks.md from the per-package sources in docs/bench/.

Run from the repository root: ``python tools/bench/merge_docs.py``. The header paragraph is
kept from the current docs/benchmarks.md (everything before the first ``## `` heading); each
source's headings move one level down, except inside code fences.
"""

from __future__ import annotations

from pathlib import Path

PACKAGES = ("depthsim", "pcprep", "admetrics", "vqcore", "threedsr", "export", "gpu")


def demote(text: str) -> str:
    out, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        out.append("#" + line if line.startswith("#") and not fenced else line)
    return "\n".join(out).rstrip() + "\n"


def main() -> None:
    docs = Path("docs")
    target = docs / "benchmarks.md"
    current = target.read_text()
    header = current[: current.index("\n## ") + 1]
    parts = [header.rstrip() + "\n"]
    parts += [demote((docs / "bench" / f"{name}.md").read_text()) for name in PACKAGES]
    tmp = target.with_suffix(".md.tmp")
    tmp.write_text("\n".join(parts))
    tmp.replace(target)


if __name__ == "__main__":
    main()
