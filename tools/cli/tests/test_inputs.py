"""predict's inputs: every sample gets its own output name."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from threedsr_cli.errors import CLIError
from threedsr_cli.inputs import resolve_inputs

from .conftest import CATEGORY


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


def test_directory_finds_the_generic_layouts_that_train_reads(tmp_path):
    # predict on an own test folder found nothing: flat NAME_depth.png + NAME_rgb.png pairs were
    # looked for only at the top, and depth/ + rgb/ folders not at all.
    flat = tmp_path / "flat" / "test"
    for t in ("cut", "good"):
        _touch(flat / t / f"{t}0_depth.png")
        _touch(flat / t / f"{t}0_rgb.png")
    items = resolve_inputs([flat])
    assert [(i.name, i.geometry.name, i.rgb.name, i.layout) for i in items] == [
        ("cut0", "cut0_depth.png", "cut0_rgb.png", "pair"),
        ("good0", "good0_depth.png", "good0_rgb.png", "pair"),
    ]
    sub = tmp_path / "sub" / "test" / "bent"
    _touch(sub / "depth" / "s 1.npy")
    _touch(sub / "rgb" / "s 1.jpg")
    _touch(sub / "gt" / "s 1.png")
    items = resolve_inputs([tmp_path / "sub"])
    assert [(i.name, i.geometry.name, i.rgb.name, i.layout) for i in items] == [
        ("bent_s 1", "s 1.npy", "s 1.jpg", "pair")
    ]


def test_mvtec_items_name_their_rgb(tmp_path):
    # scores.json's "rgb" was null for every MVTec-layout sample
    xyz = _touch(tmp_path / "dent" / "xyz" / "000.tiff")
    rgb = _touch(tmp_path / "dent" / "rgb" / "000.png")
    for items in (resolve_inputs([tmp_path / "dent"]), resolve_inputs([xyz])):
        assert [(i.rgb, i.layout) for i in items] == [(rgb, "mvtec3d")]


def test_own_depth_png_without_its_rgb_is_not_called_eyecandies(tmp_path):
    _touch(tmp_path / "a_depth.png")
    _touch(tmp_path / "b_depth.png")
    _touch(tmp_path / "b_rgb.png")
    with pytest.raises(CLIError, match=r"a_depth\.png: depth without its rgb \(expected a_rgb"):
        resolve_inputs([tmp_path])


def test_rgb_without_its_geometry_in_a_directory_is_an_error(tmp_path):
    # pcprep's indexes refuse a colour image whose geometry is missing; predict dropped the scan
    _touch(tmp_path / "flat" / "a_xyz.tiff")
    _touch(tmp_path / "flat" / "a_rgb.png")
    _touch(tmp_path / "flat" / "b_rgb.jpg")
    with pytest.raises(CLIError, match=r"b_rgb\.jpg: an rgb image without its xyz \(expected b_"):
        resolve_inputs([tmp_path / "flat"])
    _touch(tmp_path / "sub" / "xyz" / "000.tiff")
    _touch(tmp_path / "sub" / "rgb" / "000.png")
    _touch(tmp_path / "sub" / "rgb" / "._000.png")  # macOS metadata, not a scan
    assert len(resolve_inputs([tmp_path / "sub"])) == 1
    _touch(tmp_path / "sub" / "rgb" / "001.png")
    with pytest.raises(CLIError, match=r"rgb/001\.png: an rgb image without its xyz \(expected "):
        resolve_inputs([tmp_path / "sub"])


def test_own_depth_png_alone_is_not_called_eyecandies(tmp_path):
    # 'Eyecandies depth without its a_info_depth.yaml' for an own depth map given without its rgb
    depth = _touch(tmp_path / "a_depth.png")
    _touch(tmp_path / "a_rgb.png")
    with pytest.raises(CLIError, match=r"a_depth\.png: depth without its rgb \(pass 'DEPTH RGB'"):
        resolve_inputs([depth])
    _touch(tmp_path / "a_info_depth.yaml")  # next to its yaml it is an Eyecandies sample
    with pytest.raises(CLIError, match=r"a_depth\.png: Eyecandies depth without its rgb"):
        resolve_inputs([depth])


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("form", ["arguments", "folder"])
def test_an_xyz_without_its_rgb_among_several_inputs_is_refused_before_anything_is_written(
    bad_input, cli, run_rgbd, tiny_data, tmp_path, form
):
    # Every input is resolved before the detector is loaded: the lone xyz is the one-line
    # error, the good pairs beside it are not scored, and an earlier prediction stays whole.
    good = tiny_data / CATEGORY / "test" / "good"
    scans = tmp_path / "scans"
    for stem in ("a", "b"):
        _touch(scans / f"{stem}_xyz.tiff").write_bytes((good / "xyz" / "000.tiff").read_bytes())
        shutil.copy(good / "rgb" / "000.png", scans / f"{stem}_rgb.png")
    pairs = [scans / "a_xyz.tiff", scans / "a_rgb.png", scans / "b_xyz.tiff", scans / "b_rgb.png"]
    out = tmp_path / "p"
    args = ["predict", "--run", run_rgbd, "--device", "cpu", "-q"]
    assert cli(*args, *pairs, "--out", out).exit_code == 0
    before = _files(out)
    if form == "arguments":
        lone = _touch(tmp_path / "lone" / "c.tiff")
        inputs = [*pairs, lone]
    else:
        lone = _touch(scans / "c_xyz.tiff")
        inputs = [scans]
    lone.write_bytes((good / "xyz" / "000.tiff").read_bytes())
    bad_input(cli(*args, *inputs, "--out", out, "--overwrite"), str(lone), "xyz without its rgb")
    assert _files(out) == before and not list(out.glob(".incomplete*"))
    bad_input(cli(*args, *inputs, "--out", tmp_path / "new"), str(lone), "xyz without its rgb")
    assert not (tmp_path / "new").exists()
