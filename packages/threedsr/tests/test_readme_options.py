"""The README's paper-vs-code tables name options a user passes to ``DetectorConfig.preset``: each
name there must be one it accepts (row 10 once named ``milestones`` and ``gamma``, which it
refuses as unknown fields)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from threedsr import DetectorConfig, evaluate

README = Path(__file__).resolve().parents[1] / "README.md"

# `name`, `name=value`, `part.name=value`; quoted values, class attributes and calls are not names
_NAME = re.compile(r"([a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)?)(=.*)?")


def _option_cells() -> list[tuple[str, str]]:
    section = README.read_text().split("## Paper vs code", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        if re.match(r"\| \d+ \|", line):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            rows.append((cells[0], cells[-1]))
    return rows


def _named_options(cell: str) -> list[str]:
    """The names of ``name=value`` tokens anywhere in the cell, and of the bare tokens of the list
    it opens with (``lr``, ``lr_milestones``, ``lr_gamma``); later bare tokens are values and
    preset names (``cpu``, ``host``), not options."""
    names = []
    for token in re.findall(r"`([^`]+)`", cell):
        m = _NAME.fullmatch(token)
        if m and m.group(2):
            names.append(m.group(1))
    lead = re.match(r"(?:\*\*[^*]+\*\*: )?((?:`[^`]+`(?:, | / |$))+)", cell)
    for token in re.findall(r"`([^`]+)`", lead.group(1)) if lead else []:
        m = _NAME.fullmatch(token)
        if m and not m.group(2):
            names.append(m.group(1))
    return names


def _accepted(name: str) -> bool:
    config = DetectorConfig.preset("paper")
    part, _, field = name.rpartition(".")
    holder = getattr(config, part) if part else config
    if not hasattr(holder, field):
        for sub in ("model", "preprocess", "anomaly", "loss", "memory"):
            if not part and hasattr(getattr(config, sub), field):
                holder = getattr(config, sub)
                break
        else:
            return False
    value = getattr(holder, field)
    override = {part: {field: value}} if part else {field: value}
    DetectorConfig.preset("paper", **override)  # raises on an unknown name
    return True


def test_every_option_the_tables_name_is_accepted() -> None:
    rows = _option_cells()
    assert len(rows) >= 30, "the paper-vs-code tables were not found"
    evaluate_args = set(inspect.signature(evaluate).parameters)
    named = [(row, name) for row, cell in rows for name in _named_options(cell)]
    assert ("10", "lr") in named  # the table's lists are read
    unknown = [
        (row, name) for row, name in named if name not in evaluate_args and not _accepted(name)
    ]
    assert unknown == []


def test_row_33_plain_distance_presets_are_plain() -> None:
    # Row 33 once listed `paper` here, whose fused memory (MemoryConfig.for_setup) uses k = 3.
    row = dict(_option_cells())["33"]
    plain = row.split("0 = plain distances: ", 1)[1].split(".", 1)[0]
    setups = re.findall(r"`([a-z]+)`", plain)
    assert setups, row
    for name in setups:
        if name in ("rgbd", "depth", "rgb"):
            config = DetectorConfig.preset("memory", setup=name)
        else:
            config = DetectorConfig.preset(name, setup="rgbd", method="fused")
        assert config.memory.local_k == 0, name
