"""Units: error mapping, run folders, predict inputs, report figures from arrays."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from threedsr_cli.errors import CLIError, Interrupted, guard, is_bad_input, one_line
from threedsr_cli.inputs import resolve_inputs
from threedsr_cli.ownership import MARKER
from threedsr_cli.progress_text import format_train_stats
from threedsr_cli.runs import claim_run


def _exit_code(exc: BaseException, verbose: bool = False) -> int:
    with pytest.raises(SystemExit) as info, guard(verbose):
        raise exc
    return int(info.value.code)


def test_guard_maps_library_and_validation_errors_to_2(capsys):
    import admetrics
    import pcprep
    import threedsr
    import vqcore

    for exc in (
        CLIError("a.tiff: bad"),
        FileNotFoundError(2, "No such file or directory", "a.tiff"),
        ValueError("a.tiff: bad value"),
        pcprep.PcprepError("a.tiff: bad"),
        vqcore.VqcoreError("a.pt: bad"),
        threedsr.ThreedsrError("a.pt: bad"),
        admetrics.AdmetricsError("bad"),
    ):
        assert _exit_code(exc) == 2, exc
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 7
    assert err[1] == "error: a.tiff: No such file or directory"
    assert all(line.startswith("error: ") for line in err)


def test_guard_full_disk_or_no_permission_is_one_line_not_a_bug(capsys):
    import errno

    assert _exit_code(OSError(errno.ENOSPC, "No space left on device", "run/detector.pt")) == 2
    assert _exit_code(PermissionError(errno.EACCES, "Permission denied", "out/x.png")) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "error: run/detector.pt: No space left on device",
        "error: out/x.png: Permission denied",
    ]


def test_guard_internal_error_is_exit_1_one_line(capsys):
    assert _exit_code(KeyError("boom")) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error: KeyError" in err and "--verbose" in err


def test_guard_verbose_prints_traceback(capsys):
    assert _exit_code(CLIError("x.png: corrupt"), verbose=True) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.rstrip().endswith("error: x.png: corrupt")


def test_guard_interrupted(capsys, tmp_path):
    assert _exit_code(Interrupted(tmp_path / "backbone.pt")) == 130
    err = capsys.readouterr().err
    assert (
        err
        == f"error: interrupted, checkpoint saved to {tmp_path / 'backbone.pt'}; rerun with --resume\n"
    )
    assert _exit_code(KeyboardInterrupt()) == 130


def test_is_bad_input_and_one_line():
    assert not is_bad_input(RuntimeError("x"))
    assert one_line(ValueError("a\nb")) == "a b"


def test_claim_run_rules(tmp_path):
    out = tmp_path / "run"
    run = claim_run(out, "train", {"a": 1}, resume=False, overwrite=False)
    assert json.loads((out / MARKER).read_text())["finished"] is False
    # a run that never wrote anything (failed on bad input) does not block a retry
    assert not claim_run(out, "train", {"a": 9}, resume=False, overwrite=False).resumed
    run = claim_run(out, "train", {"a": 1}, resume=False, overwrite=False)
    (out / "detector.pt").write_text("checkpoint")
    with pytest.raises(CLIError, match="unfinished run; pass --resume"):
        claim_run(out, "train", {"a": 1}, resume=False, overwrite=False)
    assert claim_run(out, "train", {"a": 1}, resume=True, overwrite=False).resumed
    run.finish()
    with pytest.raises(CLIError, match="finished run"):
        claim_run(out, "train", {"a": 1}, resume=False, overwrite=False)
    with pytest.raises(CLIError, match=r"different run \(a 1 -> 2\)"):
        claim_run(out, "train", {"a": 2}, resume=True, overwrite=False)
    with pytest.raises(CLIError, match="'train' run, not a 'demo' one"):
        claim_run(out, "demo", {"a": 1}, resume=False, overwrite=False)
    (out / "detector.pt").write_text("old")
    claim_run(out, "train", {"a": 2}, resume=False, overwrite=True)
    assert not (out / "detector.pt").exists()
    with pytest.raises(CLIError, match="exclude each other"):
        claim_run(out, "train", {"a": 2}, resume=True, overwrite=True)


def test_claim_run_never_touches_unrelated_folders(tmp_path):
    (tmp_path / "mine.txt").write_text("user data")
    for overwrite in (False, True):
        with pytest.raises(CLIError, match="holds no threedsr-cli run"):
            claim_run(tmp_path, "train", {}, resume=False, overwrite=overwrite)
    assert (tmp_path / "mine.txt").read_text() == "user data"
    (tmp_path / "file").write_text("x")
    with pytest.raises(CLIError, match="not a folder"):
        claim_run(tmp_path / "file", "train", {}, resume=False, overwrite=False)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / MARKER).write_text("{not json")
    with pytest.raises(CLIError, match="unreadable run marker"):
        claim_run(tmp_path / "bad", "train", {}, resume=False, overwrite=False)


def _touch(p: Path) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"")
    return p


def test_resolve_inputs_forms(tmp_path):
    sample = tmp_path / "test" / "dent"
    _touch(sample / "xyz" / "000.tiff")
    _touch(sample / "rgb" / "000.png")
    _touch(sample / "xyz" / "001.tiff")
    _touch(sample / "rgb" / "001.png")
    pair_xyz, pair_rgb = _touch(tmp_path / "scan.tiff"), _touch(tmp_path / "scan.png")
    flat = tmp_path / "flat"
    _touch(flat / "a_xyz.tiff")
    _touch(flat / "a_rgb.png")
    items = resolve_inputs([sample, pair_xyz, pair_rgb, sample / "xyz" / "000.tiff", flat])
    assert [i.name for i in items] == ["dent_000", "dent_001", "scan", "dent_000-1", "a"]
    assert items[2].rgb == pair_rgb and items[4].rgb == flat / "a_rgb.png"
    assert (items[0].rgb, items[0].layout) == (sample / "rgb" / "000.png", "mvtec3d")
    assert len(resolve_inputs([tmp_path / "test"])) == 2  # searched recursively


def _eyecandies(data: Path, sid: str, *, rgb: bool = True, info: bool = True) -> None:
    names = ["depth.png", "image_0.png", "mask.png", "pose.txt", "metadata.yaml"]
    names += ["image_5.png"] * rgb + ["info_depth.yaml"] * info
    for n in names:
        _touch(data / f"{sid}_{n}")


def test_resolve_inputs_eyecandies_forms(tmp_path):
    data = tmp_path / "eye" / "Candy" / "test_public" / "data"
    for sid in ("00", "01", "02"):
        _eyecandies(data, sid)
    args = [data / "01_image_0.png", data / "00", data / "01_depth.png", data / "00_pose.txt"]
    items = resolve_inputs([*args, data / "02_depth.png"])
    assert [i.name for i in items] == ["Candy_01", "Candy_00", "Candy_02"]  # each sample once
    assert all(i.layout == "eyecandies" for i in items)
    assert items[0].geometry == data / "01_depth.png" and items[0].rgb == data / "01_image_5.png"
    for folder in (data, tmp_path / "eye", tmp_path / "eye" / "Candy" / "test_public"):
        assert [i.name for i in resolve_inputs([folder])] == ["Candy_00", "Candy_01", "Candy_02"]
    # own depth maps keep working: DEPTH RGB on the command line, NAME_depth + NAME_rgb in folders
    own = tmp_path / "own"
    depth, rgb = _touch(own / "scan_depth.png"), _touch(own / "scan_rgb.png")
    (pair,) = resolve_inputs([depth, rgb])
    assert (pair.layout, pair.rgb) == ("pair", rgb)
    assert [(i.name, i.layout) for i in resolve_inputs([own])] == [("scan", "pair")]


@pytest.mark.parametrize(
    ("setup_files", "arg", "message"),
    [
        (["d/00_depth.png", "d/00_image_5.png"], "d", "without its 00_info_depth.yaml"),
        (["d/00_depth.png", "d/00_image_5.png"], "d/00_image_5.png", "00_info_depth.yaml"),
        (["d/00_depth.png", "d/00_info_depth.yaml"], "d/00", "expected 00_image_5.png"),
        (["d/00_depth.png"], "d/00_depth.png", "pass 'DEPTH RGB'"),
        (["lonely.tiff"], "lonely.tiff", "xyz without its rgb"),
        (["only.png"], "only.png", "rgb image without its xyz"),
        (["s/xyz/000.tiff"], "s", "xyz without its rgb"),
        (["f/b_xyz.tiff"], "f", "xyz without its rgb"),
        (["e/readme.txt"], "e", "no samples found"),
        ([], "missing.tiff", "not found"),
        (["notes.txt"], "notes.txt", "not a point cloud"),
    ],
)
def test_resolve_inputs_errors(tmp_path, setup_files, arg, message):
    for f in setup_files:
        _touch(tmp_path / f)
    with pytest.raises(CLIError, match=message) as info:
        resolve_inputs([tmp_path / arg])
    assert str(tmp_path) in str(info.value)


def test_format_train_stats_handles_missing_and_nan():
    assert format_train_stats({}) == ""
    assert format_train_stats({"loss": float("nan")}) == "loss -"


def test_report_figures_from_arrays(tmp_path):
    from threedsr_cli import overlays, report

    rng = np.random.default_rng(0)
    labels = np.array([0] * 10 + [1] * 10)
    scores = {"good": rng.random(20) + labels, "random": rng.random(20)}
    roc = report.plot_roc({k: (labels, v) for k, v in scores.items()}, tmp_path / "roc.png")
    masks = np.zeros((4, 16, 16), bool)
    masks[2:, 4:8, 4:8] = True
    maps = rng.random((4, 16, 16)) + masks
    pro = report.plot_pro({"m": (masks, maps)}, tmp_path / "pro.png")
    bars = report.plot_per_defect_type(
        {"rgbd": {"dent": 0.9, "stain": None}, "rgb": {"dent": 0.5, "stain": 0.8}},
        {"dent": "depth", "stain": "rgb"},
        tmp_path / "bars.png",
    )
    ov = overlays.overlay_figure(
        rng.integers(0, 255, (16, 16, 3), dtype=np.uint8),
        rng.random((16, 16)),
        {"rgbd": maps[2]},
        tmp_path / "o.png",
        gt=masks[2],
        scale=(0.0, 2.0),
        title="dent",
        scores={"rgbd": 1.2},
    )
    gray = overlays.save_map_png(maps[2], tmp_path / "m.png", 0.0, 2.0)
    from PIL import Image

    for p in (roc, pro, bars, ov, gray):
        with Image.open(p) as im:
            assert im.size[0] > 0
    with Image.open(gray) as im:
        assert im.mode == "L" and im.size == (16, 16)
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_report_tables():
    from threedsr_cli import report

    rows = report.defect_type_table({"rgbd": {"dent": 0.95, "stain": None}}, {"dent": "depth"})
    assert rows[1] == ["dent", "depth", "95.0"] and rows[2] == ["stain", "?", "-"]
    html = report.render_html("t <x>", [("h", report.html_table(rows))])
    assert "<td>95.0</td>" in html and "t &lt;x&gt;" in html


def test_claim_run_under_torchrun_only_rank_zero_owns_the_folder(tmp_path, monkeypatch):
    out = tmp_path / "run"
    monkeypatch.setenv("RANK", "0")
    owner = claim_run(out, "train-dada", {"a": 1}, resume=False, overwrite=False)
    # Rank 1 starts after rank 0 wrote its unfinished marker: it must not refuse the folder,
    # and must not write the marker itself.
    monkeypatch.setenv("RANK", "1")
    follower = claim_run(out, "train-dada", {"a": 1}, resume=False, overwrite=False)
    follower.finish(steps=1)
    assert json.loads((out / MARKER).read_text())["finished"] is False
    owner.finish(steps=1)
    assert json.loads((out / MARKER).read_text())["finished"] is True


def test_ui_is_silent_on_nonzero_ranks(monkeypatch):
    from threedsr_cli.ui import UI

    monkeypatch.setenv("RANK", "1")
    ui = UI()
    ui.info("hello")
    assert ui.quiet and ui.out.file.getvalue() == ""
    monkeypatch.setenv("RANK", "0")
    assert not UI().quiet


def test_lines_are_not_wrapped_off_a_terminal(capsys) -> None:
    # Under pytest stdout is not a terminal, as in a log file or a pipe: Rich's default 80
    # columns there had split a long path across two lines ("report.h" / "tml").
    from threedsr_cli.ui import UI

    path = "/tmp/" + "a-long-run-folder/" * 8 + "report.html"
    ui = UI()
    ui.info(f"wrote {path}")
    ui.out.print(f"report: {path}  (also report.md, metrics.json)")
    assert capsys.readouterr().out.splitlines() == [
        f"wrote {path}",
        f"report: {path}  (also report.md, metrics.json)",
    ]


def test_progress_rows_fit_narrow_terminals() -> None:
    import io
    import re

    from rich.console import Console
    from threedsr_cli.ui import UI

    def row(width: int) -> str:
        buf = io.StringIO()
        err = Console(
            file=buf,
            width=width,
            force_terminal=True,
            force_interactive=True,
            color_system=None,
            highlight=False,
        )
        ui = UI(err=err)
        with ui.trainings([("stage 1: rgb-only backbone", 600)]) as bars:
            stats = {"loss": 0.08544, "perplexity_top": 75.2, "perplexity_bot": 193.0, "it_s": 10.7}
            bars[0](50, 600, stats)
        # the last frame the live display drew, without its cursor controls
        text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", buf.getvalue())
        return text.strip().replace("\r", "\n").splitlines()[-1]

    narrow, wide = row(80), row(140)
    assert "50/600" in narrow and "ETA -:--:--" in narrow and "…" not in narrow
    assert "loss 0.08544" in wide and "50/600" in wide and "ETA -:--:--" in wide


def test_a_shape_error_is_an_internal_error_not_bad_input() -> None:
    """Issue 15: a module handed a wrong tensor is a bug (exit 1); a library's one-line error
    about the user's data and a plain ValueError stay bad input (exit 2)."""
    import threedsr
    import vqcore
    from threedsr_cli.errors import is_bad_input

    assert not is_bad_input(vqcore.ShapeError("DADA: expected input (B, 4, H, W), got (1, 3)"))
    assert is_bad_input(threedsr.ThreedsrError("predict: expected (B, 4, H, W)"))
    assert is_bad_input(ValueError("--size must be positive"))


def test_load_train_data_reports_progress_and_needs_good_samples(tiny_data: Path) -> None:
    import threedsr

    cfg = threedsr.DetectorConfig.preset(
        "cpu", setup="rgbd", data_root=str(tiny_data), category="puck", image_size=64
    )
    calls: list[tuple[int, int]] = []
    data = threedsr.load_train_data(cfg, progress=lambda d, t: calls.append((d, t)))
    assert data.x.shape[0] == 4 and data.x.shape[2:] == (64, 64)
    assert calls and calls[-1] == (4, 4)
    with pytest.raises(threedsr.ThreedsrError, match=r"data_root and \.category are required"):
        threedsr.load_train_data(threedsr.DetectorConfig.preset("cpu", setup="rgbd"))


def test_the_setup_option_lists_vqcore_setups() -> None:
    # The CLI spells the enum out (importing vqcore at start-up would load torch); it must
    # stay the one list vqcore defines.
    import vqcore
    from threedsr_cli.options import Setup

    assert tuple(s.value for s in Setup) == vqcore.SETUPS


@pytest.mark.parametrize(
    ("given", "flag"),
    [
        (dict(preset="cpu"), "--preset cpu"),
        (dict(iterations=100), "--iterations"),
        (dict(batch_size=4), "--batch-size"),
        (dict(precision="bf16"), "--precision"),
    ],
)
def test_network_options_are_refused_with_the_memory(given, flag):
    # The memory trains nothing: a 3DSR schedule given with it would be silently ignored.
    from threedsr_cli.commands.train import build_config

    fields = dict(iterations=None, batch_size=None, precision=None)
    fields.update({k: v for k, v in given.items() if k != "preset"})
    with pytest.raises(CLIError) as err:
        build_config(method="memory", preset=given.get("preset"), setup="rgbd", **fields)
    message = str(err.value)
    assert message.startswith(flag + ":") and "--method 3dsr or fused" in message
    assert "\n" not in message
    # the same options are the network's schedule once a network is trained
    config = build_config(method="3dsr", preset=given.get("preset"), setup="rgbd", **fields)
    assert config.method == "3dsr"
