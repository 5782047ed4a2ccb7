"""The method's map (``AnomalyMap``), the fusion of two maps and the display scale."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from threedsr import (
    AnomalyMap,
    DisplayScale,
    MapCalibration,
    MemoryConfig,
    ThreeDSR,
    ThreedsrError,
    box_filter,
    fit_memory,
    fuse_maps,
)
from threedsr.calibration import display_scale
from threedsr_testutil import synthetic_class, tiny_backbone, tiny_config

CAL = MapCalibration(0.0, 1.0)


@pytest.fixture(scope="module")
def parts() -> tuple[ThreeDSR, object]:
    torch.manual_seed(0)
    network = ThreeDSR(tiny_backbone("depth"), tiny_config("depth").model).eval()
    memory = fit_memory(synthetic_class("depth", n=3).x, "depth", MemoryConfig(local_k=0))
    return network, memory


@pytest.mark.parametrize(
    ("method", "given", "message"),
    [
        ("3dsr", "memory", "the 3dsr method needs the 3DSR network, which was not trained"),
        ("fused", "memory", "the fused method needs the 3DSR network, which was not trained"),
        ("memory", "network", "the memory method needs the descriptor memory, which was not fit"),
        ("fused", "network", "the fused method needs the descriptor memory, which was not fit"),
        ("fused", "both", "the fused method needs the network's good-scan calibration"),
        ("both", "both", r"unknown method 'both' \(memory, 3dsr or fused\)"),
    ],
)
def test_a_method_whose_part_is_missing_is_refused_in_one_line(
    parts, method: str, given: str, message: str
) -> None:
    network, memory = parts
    kwargs: dict[str, object] = {}
    if given in ("network", "both"):
        kwargs["network"] = network
    if given in ("memory", "both"):
        kwargs.update(memory=memory, memory_calibration=CAL)
    with pytest.raises(ThreedsrError, match=message) as err:
        AnomalyMap(method, **kwargs)  # type: ignore[arg-type]
    assert "\n" not in str(err.value)


def test_a_memory_without_its_calibration_is_refused(parts) -> None:
    _, memory = parts
    with pytest.raises(ThreedsrError, match="needs the descriptor memory"):
        AnomalyMap("memory", memory=memory)


def test_each_method_keeps_only_its_parts_and_weight(parts) -> None:
    network, memory = parts
    both = dict(network=network, memory=memory, heads_calibration=CAL, memory_calibration=CAL)
    m = AnomalyMap("memory", **both, weight=0.3)
    assert m.network is None and m.memory is memory and m.weight == 1.0
    h = AnomalyMap("3dsr", **both, weight=0.3)
    assert h.network is network and h.memory is None and h.weight == 0.0
    f = AnomalyMap("fused", **both, weight=0.3)
    assert f.network is network and f.memory is memory and f.weight == 0.3
    x = synthetic_class("depth", n=2, seed=3).x
    with torch.no_grad():
        hm, out = h(x)
        mm, none = m(x)
        fm, _ = f(x)
    assert out is not None and none is None
    torch.testing.assert_close(hm, out.anomaly_map)
    # The memory's and the fused map are logits until finish() smooths, then squashes them.
    torch.testing.assert_close(mm, memory(x))
    torch.testing.assert_close(fm, 0.3 * memory(x) + 0.7 * out.anomaly_map)
    for amap, pre in ((m, mm), (f, fm)):
        smoothed, raw = amap.finish(pre, "box", 5, 4.0)
        torch.testing.assert_close(smoothed, torch.sigmoid(box_filter(pre, 5)))
        torch.testing.assert_close(raw, torch.sigmoid(pre))
    smoothed, raw = h.finish(hm, "box", 5, 4.0)
    torch.testing.assert_close(smoothed, box_filter(hm, 5))
    assert raw is hm


def test_squash_on_pixels_is_the_map_of_earlier_detectors(parts) -> None:
    _, memory = parts
    old = AnomalyMap("memory", memory=memory, memory_calibration=CAL, squash="pixels")
    x = synthetic_class("depth", n=2, seed=3).x
    with torch.no_grad():
        pre, _ = old(x)
    torch.testing.assert_close(pre, torch.sigmoid(memory(x)))
    smoothed, raw = old.finish(pre, "box", 5, 4.0)
    torch.testing.assert_close(smoothed, box_filter(torch.sigmoid(memory(x)), 5))
    assert raw is pre
    with pytest.raises(ThreedsrError, match="squash"):
        AnomalyMap("memory", memory=memory, memory_calibration=CAL, squash="late")


def test_fuse_maps_weights_and_range() -> None:
    heads, mem = torch.full((1, 2, 2), 0.3), torch.full((1, 2, 2), 5.0)
    hc, mc = MapCalibration(0.1, 0.1), MapCalibration(1.0, 2.0)
    only_heads = fuse_maps(heads, mem, hc, mc, 0.0)
    only_mem = fuse_maps(heads, mem, hc, mc, 1.0)
    torch.testing.assert_close(only_heads, torch.sigmoid(torch.full((1, 2, 2), 2.0)))
    torch.testing.assert_close(only_mem, torch.sigmoid(torch.full((1, 2, 2), 2.0)))
    half = fuse_maps(heads, mem, hc, mc, 0.5)
    assert bool(((half > 0) & (half < 1)).all())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_display_scale_puts_the_threshold_between_low_and_high(seed: int) -> None:
    rng = np.random.default_rng(seed)
    maps = rng.gamma(2.0, 0.1, size=(5, 16, 16))
    fg = np.zeros(maps.shape, bool)
    fg[:, 4:12, 4:12] = True
    s = display_scale(maps, fg, "validation")
    assert s.low < s.threshold < s.high and s.source == "validation"
    assert s.threshold == maps.max()  # the largest good score: no good scan is flagged
    assert s.low == pytest.approx(np.quantile(maps[fg], 0.95))
    # The threshold sits two thirds up the colour bar.
    assert s.normalise(np.array([s.low, s.threshold, s.high, s.high + 1])) == pytest.approx(
        [0.0, 2 / 3, 1.0, 1.0]
    )
    assert DisplayScale.from_state(s.state()) == s and DisplayScale.from_state(None) is None
    # A constant map still gives an ordered scale.
    flat = display_scale(np.full((2, 4, 4), 0.5), None, "training")
    assert flat.low <= flat.threshold < flat.high
