"""Own scans in the generic layouts: what train, eval and predict make of them."""

from __future__ import annotations

import shutil
from pathlib import Path

from .conftest import CATEGORY


def _flat_test(tiny_data: Path, root: Path, *, typed: bool) -> Path:
    """``root/<class>/test/[<type>/]NAME_xyz.tiff + NAME_rgb.png`` copied from the tiny data."""
    src = tiny_data / CATEGORY / "test"
    for kind in ("good", "dent"):
        folder = root / CATEGORY / "test" / (kind if typed else "")
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(src / kind / "xyz" / "000.tiff", folder / f"{kind}_xyz.tiff")
        shutil.copy(src / kind / "rgb" / "000.png", folder / f"{kind}_rgb.png")
        if typed and kind != "good":
            shutil.copy(src / kind / "gt" / "000.png", folder / f"{kind}_gt.png")
    return root


def test_eval_refuses_test_scans_without_labels(bad_input, cli, run_rgbd, tiny_data, tmp_path):
    # Test scans straight in test/ without masks were all counted as good: every metric empty,
    # a metrics.json of nulls, exit 0.
    data = _flat_test(tiny_data, tmp_path / "flat", typed=False)
    res = cli("eval", "--run", run_rgbd, "--data", data, "--out", tmp_path / "m", "--device", "cpu")
    bad_input(res, str(data / CATEGORY / "test" / "dent_xyz.tiff"), "without a label (2 of 2)")
    assert not (tmp_path / "m").exists()
    # sorted into type folders with masks, the same scans evaluate
    data = _flat_test(tiny_data, tmp_path / "typed", typed=True)
    res = cli("eval", "--run", run_rgbd, "--data", data, "--out", tmp_path / "m", "--device", "cpu")
    assert res.exit_code == 0, res.stderr
    assert (tmp_path / "m" / "metrics.json").is_file()
