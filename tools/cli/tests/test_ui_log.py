"""Plain progress lines when stderr is not a terminal (a log file, CI, nohup): one line per bar
at a steady interval (its first update, at most one per ``log_interval`` seconds, its end), none
when quiet, none on an interactive terminal (Rich bars, unchanged), none after a failure."""

from __future__ import annotations

import io
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console
from threedsr_cli import ui as ui_mod
from threedsr_cli.ui import UI

CATEGORY = "puck"  # the class the conftest fixtures generate


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _log_ui(interval: float, clock: FakeClock, **kwargs: object) -> tuple[UI, io.StringIO]:
    buf = io.StringIO()
    err = Console(file=buf, width=80, force_terminal=False, highlight=False)
    return UI(err=err, log_interval=interval, clock=clock, **kwargs), buf


def _lines(buf: io.StringIO) -> list[str]:
    return [ln for ln in buf.getvalue().splitlines() if ln.strip()]


def test_a_stage_logs_counts_rate_elapsed_and_eta() -> None:
    clock = FakeClock()
    ui, buf = _log_ui(0.0, clock)
    assert ui.logs_progress
    with ui.stage("predict", 100) as progress:
        progress(0, 100)
        clock.t = 10.0
        progress(30, 100)
        clock.t = 20.0
        progress(60)
        clock.t = 30.0
    assert _lines(buf) == [
        "predict: 0/100 (0%)  elapsed 0:00  ETA -:--",
        "predict: 30/100 (30%)  3 it/s  elapsed 0:10  ETA 0:23",
        "predict: 60/100 (60%)  3 it/s  elapsed 0:20  ETA 0:13",
        "predict: 100/100 (100%)  3.33 it/s  elapsed 0:30  ETA 0:00",
    ]


def _event(step: int, total: int = 400) -> SimpleNamespace:
    return SimpleNamespace(step=step, total=total, metrics={"loss": 0.5 / step, "it_per_s": 3.1})


def test_training_logs_first_and_last_line_only_with_a_long_interval() -> None:
    clock = FakeClock()
    ui, buf = _log_ui(3600.0, clock)
    with ui.training("train rgbd", 400) as on_event:
        for step in range(10, 401, 10):
            clock.t = step / 4
            on_event(_event(step))
    lines = _lines(buf)
    assert lines == [
        "train rgbd: 10/400 (2%)  loss 0.05  3.1 it/s  elapsed 0:03  ETA -:--",
        "train rgbd: 400/400 (100%)  loss 0.00125  3.1 it/s  elapsed 1:40  ETA 0:00",
    ]


def test_training_lines_come_at_a_steady_interval_with_an_eta_from_the_rate() -> None:
    clock = FakeClock()
    ui, buf = _log_ui(10.0, clock)
    # a resumed run: events from step 210, one a second, 10 steps each; no line is wrapped
    with ui.training("stage 2: rgbd detector, a long description that fills the row", 600) as cb:
        for i, step in enumerate(range(210, 601, 10)):
            clock.t = 5.0 + i
            cb(_event(step, 600))
    lines = _lines(buf)
    assert [re.findall(r"\d+/600", ln)[0] for ln in lines] == [
        "210/600",  # the first update
        "310/600",  # 10 s later
        "410/600",
        "510/600",
        "600/600",  # the end
    ]
    # 100 steps in 10 s since the first event: 90 steps left take 9 s
    assert lines[3].endswith("elapsed 0:35  ETA 0:09"), lines[3]
    assert all(len(ln) > 80 for ln in lines)


def test_quiet_logs_nothing() -> None:
    clock = FakeClock()
    ui, buf = _log_ui(0.0, clock, quiet=True)
    with ui.stage("predict", 3) as progress:
        progress(1, 3)
    with ui.training("train rgbd", 400) as on_event:
        on_event(_event(400))
    with ui.trainings([("a", 10)]) as bars:
        bars[0](10, 10, {"loss": 1.0})
    assert buf.getvalue() == ""


def test_an_interactive_terminal_keeps_the_rich_bars_and_prints_no_plain_lines() -> None:
    buf = io.StringIO()
    err = Console(
        file=buf, width=140, force_terminal=True, force_interactive=True, color_system=None
    )
    ui = UI(err=err, log_interval=0.0, clock=FakeClock())
    assert not ui.logs_progress
    with ui.stage("predict", 100) as progress:
        progress(30, 100)
    text = buf.getvalue()
    assert "100/100" in text and "━" in text  # the Rich bar
    assert "elapsed" not in text and "(100%)" not in text and "predict:" not in text


def test_a_failure_adds_no_line_after_those_already_logged() -> None:
    clock = FakeClock()
    ui, buf = _log_ui(0.0, clock)
    with pytest.raises(ValueError, match="bad sample"), ui.stage("evaluate puck", 10) as progress:
        progress(0, 10)
        clock.t = 1.0
        raise ValueError("bad sample")
    assert _lines(buf) == ["evaluate puck: 0/10 (0%)  elapsed 0:00  ETA -:--"]
    ui.log_interval = 3600.0  # step 20 is not logged when it comes, nor after the Ctrl-C
    with pytest.raises(KeyboardInterrupt), ui.training("train rgbd", 400) as on_event:
        on_event(_event(10))
        clock.t = 2.0
        on_event(_event(20))
        raise KeyboardInterrupt
    assert len(_lines(buf)) == 2 and "10/400" in _lines(buf)[1]
    ui, buf = _log_ui(0.0, clock)
    with pytest.raises(ValueError), ui.stage("preprocess", 10):
        raise ValueError("bad sample")
    assert buf.getvalue() == ""


def test_concurrent_trainings_log_each_bar_and_end_only_the_finished_one() -> None:
    clock = FakeClock()
    ui, buf = _log_ui(3600.0, clock)
    with ui.trainings([("train rgbd", 20), ("train rgb", 20)]) as bars:
        for step in (10, 20):
            clock.t += 5.0
            bars[0](step, 20, {"loss": 1.0 / step})
            if step < 20:  # the rgb worker stopped (failed): the caller raises after the display
                bars[1](step, 20, {"loss": 2.0 / step})
    assert _lines(buf) == [
        "train rgbd: 10/20 (50%)  loss 0.1  elapsed 0:05  ETA -:--",
        "train rgb: 10/20 (50%)  loss 0.2  elapsed 0:05  ETA -:--",
        "train rgbd: 20/20 (100%)  loss 0.05  2 it/s  elapsed 0:10  ETA 0:00",
    ]


def test_the_interval_is_the_module_constant_read_when_a_ui_is_made(monkeypatch) -> None:
    assert UI().log_interval == ui_mod.LOG_INTERVAL_S == 10.0
    monkeypatch.setattr(ui_mod, "LOG_INTERVAL_S", 0.5)
    assert UI().log_interval == 0.5


def test_a_redirected_train_logs_its_stages(cli, tiny_data: Path, dada_rgbd: Path, tmp_path):
    """Through the CLI (CliRunner's stderr is no terminal): preprocessing and training lines."""
    res = cli(
        "train", "--method", "fused", "--data", tiny_data, "--category", CATEGORY,
        "--dada", dada_rgbd,
        "--out", tmp_path / "run", "--iterations", 2, "--batch-size", 2, "--size", 64,
        "--device", "cpu",
    )  # fmt: skip
    assert res.exit_code == 0, res.stderr
    lines = res.stderr.splitlines()
    assert f"preprocess {CATEGORY}/train: 0/4 (0%)  elapsed 0:00  ETA -:--" in lines, lines
    assert any(
        re.fullmatch(rf"preprocess {CATEGORY}/train: 4/4 \(100%\) .*ETA 0:00", ln) for ln in lines
    )
    assert any(
        re.search(r": 2/2 \(100%\)  loss \S+ .*it/s  elapsed \d+:\d\d  ETA 0:00$", ln)
        for ln in lines
    ), lines
    assert "━" not in res.stderr  # no Rich bar
