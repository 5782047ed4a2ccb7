"""The README's first example runs and prints what it says."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs_and_matches_comments():
    block = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)[0]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(compile(block, str(README), "exec"), {})
    printed = buf.getvalue().splitlines()
    expected = [line.split("# ", 1)[1].strip() for line in block.splitlines() if "print(" in line]
    assert printed == expected
