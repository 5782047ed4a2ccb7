"""Anomaly-map overlays on a fixed, per-detector colour scale: a scan's files do not depend on
the other scans of a predict call; a detector's calibrated display scale is used as is; the
grayscale map and the figure layout (good reference row) from arrays."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from PIL import Image
from threedsr_cli import map_scale, overlays, report

CATEGORY = "puck"


def _predict(cli: Any, run: Path, inputs: list[Path], out: Path) -> dict[str, Any]:
    # Batch size 1: each scan is computed alone in both calls, so only the drawing can differ.
    res = cli(
        "predict", "--run", run, *inputs, "--out", out, "--batch-size", 1, "--device", "cpu", "-q"
    )
    assert res.exit_code == 0, res.stderr
    return json.loads((out / "scores.json").read_text())


def test_predict_draws_a_scan_the_same_alone_or_with_others(cli, run_rgbd, tiny_data, tmp_path):
    test = tiny_data / CATEGORY / "test"
    alone = _predict(cli, run_rgbd, [test / "good"], tmp_path / "alone")
    together = _predict(cli, run_rgbd, [test], tmp_path / "together")
    assert len(alone["samples"]) == 1 and len(together["samples"]) == 5
    # The detector's display scale, calibrated on the validation good scans when it was made.
    import threedsr

    display = threedsr.detector_info(run_rgbd).display
    assert display is not None and display.source == "validation"
    for scores in (alone, together):
        assert scores["map_scale"] == [display.low, display.high]
        assert scores["scale_source"] == "detector"
    for suffix in ("_overlay.png", "_map.png"):
        a = (tmp_path / "alone" / f"good_000{suffix}").read_bytes()
        b = (tmp_path / "together" / f"good_000{suffix}").read_bytes()
        assert a == b, suffix


class _WithDisplay:
    """A stand-in detector: the real one plus a calibrated ``display`` (the library's contract)."""

    def __init__(self, detector: Any, display: Any) -> None:
        self._detector, self.display = detector, display

    def __getattr__(self, name: str) -> Any:
        return getattr(self._detector, name)


def test_predict_uses_the_detectors_display_scale(cli, run_rgbd, tiny_data, tmp_path, monkeypatch):
    from threedsr_cli import libs

    display = SimpleNamespace(low=0.25, high=0.75, threshold=0.5, source="validation")
    real = libs.load_detector
    monkeypatch.setattr(libs, "load_detector", lambda *a, **k: _WithDisplay(real(*a, **k), display))
    scores = _predict(cli, run_rgbd, [tiny_data / CATEGORY / "test" / "dent"], tmp_path / "p")
    assert scores["map_scale"] == [display.low, display.high]
    assert scores["scale_source"] == "detector"
    assert scores["threshold"] == display.threshold and "validation" in scores["threshold_source"]
    sample = scores["samples"][0]
    assert sample["anomalous"] == (sample["score"] > display.threshold)
    with Image.open(tmp_path / "p" / sample["map"]) as im:
        assert im.text["threedsr:scale"] == "0.25 0.75" and im.text["threedsr:threshold"] == "0.5"


def test_display_scale_from_the_detector_or_the_fixed_fallback():
    assert map_scale.display_scale(SimpleNamespace(display=None)) == map_scale.MapScale(0.0, 1.0)
    sidecar = {"low": 0.8, "high": 0.95, "threshold": 0.9, "source": "validation"}
    for display in (sidecar, SimpleNamespace(**sidecar)):
        scale = map_scale.display_scale(SimpleNamespace(display=display))
        assert scale == map_scale.MapScale(0.8, 0.95, 0.9, "detector", "validation")
        assert scale.range == (0.8, 0.95)


def test_save_map_png_maps_low_to_0_and_high_to_255(tmp_path):
    low, high = 0.84, 0.97
    m = np.array([[low - 0.5, low, low + 0.25 * (high - low), high, high + 0.5]])
    path = overlays.save_map_png(m, tmp_path / "m.png", low, high)
    with Image.open(path) as im:
        assert im.mode == "L"
        assert np.asarray(im).tolist() == [[0, 0, 64, 255, 255]]
        assert "threedsr:threshold" not in im.text


def test_heat_map_is_transparent_below_low_and_ramps_above():
    image = np.full((1, 4, 3), 0.5)
    out = overlays.blend(image, np.array([[0.1, 0.5, 0.75, 1.0]]), 0.5, 1.0)
    assert np.array_equal(out[0, :2], image[0, :2])  # at and below low: the image itself
    alpha = overlays.colorize(np.array([[0.5, 0.75, 1.0]]), 0.5, 1.0)[0, :, 3]
    assert alpha.tolist() == pytest.approx([0.0, overlays.HEAT_ALPHA / 2, overlays.HEAT_ALPHA])


def _row(rng: np.random.Generator, gt: bool) -> overlays.OverlayRow:
    mask = np.zeros((16, 16), bool)
    mask[4:8, 4:8] = gt
    maps = {s: rng.random((16, 16)) for s in ("rgbd", "rgb")}
    return overlays.OverlayRow(rng.random((16, 16, 3)), rng.random((16, 16)), maps, mask)


def _texts(fig: Any) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts]


@pytest.mark.parametrize("with_good", [False, True])
def test_overlay_layout_adds_the_good_reference_row(with_good):
    rng = np.random.default_rng(0)
    scale = {"rgbd": (0.2, 0.9), "rgb": (0.1, 0.8)}
    fig = overlays.overlay_layout(
        _row(rng, True),
        scale=scale,
        threshold={"rgbd": 0.5, "rgb": None},
        good=_row(rng, False) if with_good else None,
    )
    rows = 2 if with_good else 1
    panels = [ax for ax in fig.axes if ax.images]
    bars = [ax for ax in fig.axes if not ax.images]
    # RGB, depth, ground truth, then each of the 2 maps over RGB and over depth; a bar per map
    assert len(panels) == rows * 7 and len(bars) == 2
    assert {ax.get_subplotspec().get_gridspec().nrows for ax in fig.axes} == {rows}
    assert (overlays.GOOD_LABEL in _texts(fig)) == with_good
    for bar, name in zip(bars, scale, strict=True):
        assert bar.get_ylabel() == f"{name} anomaly score"
        assert bar.get_ylim() == pytest.approx(scale[name])
    assert any("threshold 0.5" in t.get_text() for t in bars[0].get_yticklabels())
    report.pyplot().close(fig)


def test_overlay_figure_with_good_writes_a_taller_png(tmp_path):
    rng = np.random.default_rng(1)
    row, good = _row(rng, True), _row(rng, False)
    sizes = []
    for name, ref in (("one.png", None), ("two.png", good)):
        path = overlays.overlay_figure(
            row.rgb, row.depth, row.maps, tmp_path / name, scale=(0.0, 1.0), gt=row.gt, good=ref
        )
        with Image.open(path) as im:
            sizes.append(im.size)
    assert sizes[1][1] > 1.6 * sizes[0][1]


def test_scores_near_one_print_apart_from_the_threshold() -> None:
    # A memory map is a logistic: CandyCane's threshold is 0.9999864, and the predict table read
    # "> 1.0000" above a scan at "0.9999 normal" and one at "1.0000 anomalous".
    import io
    from types import SimpleNamespace

    from rich.console import Console
    from threedsr_cli.commands.predict_outputs import print_scores
    from threedsr_cli.ui import UI

    buffer = io.StringIO()
    ui = UI(out=Console(file=buffer, width=120, highlight=False))
    records = [
        {"name": "good", "score": 0.99992, "anomalous": False},
        {"name": "dent", "score": 0.9999971, "anomalous": True},
    ]
    print_scores(ui, SimpleNamespace(setup="rgbd"), records, 0.9999864)
    text = buffer.getvalue()
    assert "> 0.99999" in text and "1.0000" not in text
    assert "0.9999 " in text and "0.999997" in text


@pytest.mark.parametrize("method", [None, "memory"])
def test_predict_pictures_and_table_say_which_method_made_the_map(
    cli, run_rgbd, tiny_data, tmp_path, monkeypatch, method
):
    # scores.json named the method, but the overlay ("anomaly map"), the grayscale map and the
    # printed table did not: a fused detector's --method memory map looked like its fused one.
    labels: list[str] = []
    real = overlays.overlay_figure
    monkeypatch.setattr(
        overlays, "overlay_figure", lambda *a, **k: labels.extend(a[2]) or real(*a, **k)
    )
    out = tmp_path / "p"
    extra = [] if method is None else ["--method", method]
    good = tiny_data / CATEGORY / "test" / "good"
    res = cli("predict", "--run", run_rgbd, good, "--out", out, "--device", "cpu", *extra)
    assert res.exit_code == 0, res.stderr
    scores = json.loads((out / "scores.json").read_text())
    made = scores["method"]
    assert made == (method or "fused")
    assert labels == [f"{made} anomaly map"]
    sample = scores["samples"][0]
    assert Image.open(out / sample["map"]).info["threedsr:method"] == made
    assert f"rgbd detector, {made} map: 1 samples" in res.stdout
