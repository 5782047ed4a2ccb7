"""Feature memory: exact nearest-neighbour distances, leave-one-scan-out, fusion, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from threedsr import Detector, DetectorConfig, ThreedsrError, train_detector
from threedsr.memory.torch_model import FeatureMemory, MapCalibration, fit_memory, fuse_maps, memory_map
from threedsr_testutil import synthetic_class, tiny_backbone, tiny_config


def _brute(bank: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    return torch.cdist(q.double(), bank.double()).amin(1).float()


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 40),
    c=st.integers(1, 6),
    hw=st.tuples(st.integers(1, 5), st.integers(1, 5)),
    chunk=st.integers(1, 9),
    seed=st.integers(0, 2**16),
)
def test_distance_equals_brute_force(n: int, c: int, hw: tuple[int, int], chunk: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    bank = torch.randn(n, c, generator=g)
    feats = torch.randn(2, c, *hw, generator=g)
    got = FeatureMemory(bank, chunk=chunk).distance(feats)
    want = _brute(bank, feats.permute(0, 2, 3, 1).reshape(-1, c)).view(2, *hw)
    torch.testing.assert_close(got, want, atol=2e-3, rtol=1e-3)


def test_a_stored_feature_has_distance_zero_unless_its_scan_is_left_out() -> None:
    bank = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    mem = FeatureMemory(bank, torch.tensor([0, 1]))
    q = torch.tensor([[0.0, 0.0]]).view(1, 2, 1, 1)
    assert float(mem.distance(q)) == 0.0
    assert float(mem.distance(q, exclude=torch.tensor([0]))) == pytest.approx(5.0)


def test_shape_errors_name_the_dims() -> None:
    with pytest.raises(ValueError, match=r"bank must be \(N>0, C\)"):
        FeatureMemory(torch.zeros(0, 3))
    with pytest.raises(ValueError, match="features have 2 channels, the bank 3"):
        FeatureMemory(torch.zeros(4, 3)).distance(torch.zeros(1, 2, 2, 2))


def test_state_round_trip_is_fp16_and_keeps_ids() -> None:
    mem = FeatureMemory(torch.randn(5, 3), torch.arange(5))
    state = mem.state()
    assert state["bank"].dtype == torch.float16 and state["image_ids"].dtype == torch.int32
    back = FeatureMemory.from_state(state)
    torch.testing.assert_close(back.bank, mem.bank, atol=1e-2, rtol=1e-2)
    assert torch.equal(back.image_ids, torch.arange(5))


@pytest.mark.parametrize("setup", ["rgbd", "depth", "rgb"])
def test_fit_memory_keeps_object_cells_with_depth_and_all_cells_without(setup: str) -> None:
    bb = tiny_backbone(setup)
    data = synthetic_class(setup, n=3)
    mem = fit_memory(bb, data.x)
    cells = (data.x.shape[2] // 4) * (data.x.shape[3] // 4)
    if setup == "rgb":
        assert mem.bank.shape[0] == 3 * cells
    else:
        assert 0 < mem.bank.shape[0] < 3 * cells
        dist = memory_map(mem, bb, data.x)
        assert float(dist[:, :2, :2].abs().max()) == 0.0  # the corner is background
    capped = fit_memory(bb, data.x, max_size=7, seed=1)
    assert capped.bank.shape[0] == 7
    assert torch.equal(capped.bank, fit_memory(bb, data.x, max_size=7, seed=1).bank)


def test_fuse_maps_weights_and_range() -> None:
    heads, mem = torch.full((1, 2, 2), 0.3), torch.full((1, 2, 2), 5.0)
    hc, mc = MapCalibration(0.1, 0.1), MapCalibration(1.0, 2.0)
    only_heads = fuse_maps(heads, mem, hc, mc, 0.0)
    only_mem = fuse_maps(heads, mem, hc, mc, 1.0)
    torch.testing.assert_close(only_heads, torch.sigmoid(torch.full((1, 2, 2), 2.0)))
    torch.testing.assert_close(only_mem, torch.sigmoid(torch.full((1, 2, 2), 2.0)))
    half = fuse_maps(heads, mem, hc, mc, 0.5)
    assert bool(((half > 0) & (half < 1)).all())


def test_training_stores_the_memory_and_the_detector_fuses(tmp_path) -> None:
    cfg = tiny_config("rgbd", out=str(tmp_path / "run"), iterations=2, memory_weight=0.6)
    bb, data = tiny_backbone("rgbd"), synthetic_class("rgbd")
    train_detector(cfg, backbone=bb, data=data)
    ckpt = torch.load(tmp_path / "run" / "detector.pt", weights_only=True)
    mem = ckpt["memory"]
    assert mem["weight"] == 0.6 and mem["bank"].dtype == torch.float16
    assert mem["memory_calibration"][1] > 0 and mem["heads_calibration"][1] > 0
    fused = Detector.load(tmp_path / "run", device="cpu")
    heads = Detector.load(tmp_path / "run", device="cpu", memory_weight=0.0)
    assert fused.memory_weight == 0.6 and heads.memory_weight == 0.0
    x = data.x[:2]
    a, b = fused.predict(x), heads.predict(x)
    assert not torch.allclose(a.raw_maps, b.raw_maps)
    with torch.no_grad():
        torch.testing.assert_close(b.raw_maps, heads.model(x).anomaly_map)
    assert bool(((a.raw_maps > 0) & (a.raw_maps < 1)).all())


def test_a_detector_without_memory_refuses_a_memory_weight(tmp_path) -> None:
    cfg = tiny_config("depth", out=str(tmp_path / "run"), iterations=1, memory_weight=0.0)
    train_detector(cfg, backbone=tiny_backbone("depth"), data=synthetic_class("depth"))
    assert "memory" not in torch.load(tmp_path / "run" / "detector.pt", weights_only=True)
    with pytest.raises(ThreedsrError, match="has no feature memory"):
        Detector.load(tmp_path / "run", device="cpu", memory_weight=0.5)


@pytest.mark.parametrize("bad", [dict(memory_weight=1.5), dict(memory_size=0)])
def test_config_rejects_bad_memory_options(bad: dict[str, float]) -> None:
    with pytest.raises(ThreedsrError, match=next(iter(bad))):
        DetectorConfig.preset("cpu", **bad)


def test_memory_flags_a_feature_unlike_the_training_scans() -> None:
    bb = tiny_backbone("depth")
    data = synthetic_class("depth", n=4)
    mem = fit_memory(bb, data.x)
    odd = data.x[:1].clone()
    odd[:, :, 24:40, 24:40] = torch.where(odd[:, :, 24:40, 24:40] > 0, 0.9, 0.0)
    d_odd = memory_map(mem, bb, odd)[0, 24:40, 24:40].mean()
    d_same = memory_map(mem, bb, data.x[:1])[0, 24:40, 24:40].mean()
    assert float(d_same) == pytest.approx(0.0, abs=1e-3) and float(d_odd) > 10 * float(d_same)
    assert np.isfinite(float(d_odd))
