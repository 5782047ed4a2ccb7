"""Two ``pack --out X`` at once: the second stops at once (exit 2, one line naming the folder
and the other process) instead of both writing X and the last one winning; a temporary that a
killed pack of X left is removed, a user's file beside it is not."""

from __future__ import annotations

import os
import subprocess
import sys

from .conftest import held_command

CATEGORY = "puck"


def test_two_packs_to_one_file(tmp_path, tiny_data):
    import threedsr

    folder = tmp_path / "packs"
    folder.mkdir()
    out = folder / "puck.3dsrpack"
    (folder / ".puck-ab12cd34.3dsrpack").write_bytes(b"cut short")  # a killed pack's temporary
    (folder / ".notes-ab12cd34.txt").write_text("mine")
    base = ["pack", "--data", tiny_data, "--category", CATEGORY, "--out", out, "--size", 64, "-q"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    with held_command("threedsr:write_pack", base, tmp_path) as first:
        second = subprocess.run(
            [sys.executable, "-m", "threedsr_cli", *map(str, base)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert not out.exists()  # the second wrote nothing
    assert first.returncode == 0, first.stderr
    assert second.returncode == 2, second.stderr
    lines = [ln for ln in second.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {folder}: "), second.stderr
    assert f"another threedsr-cli pack (pid {first.pid})" in lines[0], lines[0]
    assert threedsr.is_pack(out)
    assert sorted(p.name for p in folder.iterdir()) == [".notes-ab12cd34.txt", "puck.3dsrpack"]


def test_pack_makes_the_folder_of_out(cli, tiny_data, tmp_path):
    out = tmp_path / "new" / "sub" / "puck.3dsrpack"
    res = cli("pack", "--data", tiny_data, "--category", "puck", "--size", "64", "--out", out, "-q")
    assert res.exit_code == 0, res.stderr
    assert out.is_file()
