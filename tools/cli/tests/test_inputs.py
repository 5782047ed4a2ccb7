"""predict's inputs: every sample gets its own output name."""

from __future__ import annotations

from pathlib import Path

from threedsr_cli.inputs import resolve_inputs


def _touch(p: Path) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"")
    return p


def test_renamed_duplicate_does_not_take_another_samples_name(tmp_path):
    # "a" named twice becomes "a-1" the second time: a sample really named "a-1" must keep its
    # name alone, else both write a-1_overlay.png / a-1_map.png and one scan's files are lost.
    for stem in ("a", "a-1"):
        _touch(tmp_path / "scans" / f"{stem}_xyz.tiff")
        _touch(tmp_path / "scans" / f"{stem}_rgb.png")
    other_xyz = _touch(tmp_path / "other" / "a_xyz.tiff")
    other_rgb = _touch(tmp_path / "other" / "a_rgb.png")
    items = resolve_inputs([tmp_path / "scans", other_xyz, other_rgb])
    names = [i.name for i in items]
    assert len(set(names)) == len(names) == 3, names
    assert names[:2] == ["a-1", "a"]  # the scans keep their own names
    # and the other way round: the renamed one comes first
    items = resolve_inputs([other_xyz, other_rgb, tmp_path / "scans"])
    names = [i.name for i in items]
    assert len(set(names)) == len(names) == 3, names
