"""Local descriptors: analytic curvature of quadratic surfaces, rotation and tint invariance,
shapes for batch 0/1/N, error messages, and a memory built on them."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from threedsr import Detector, train_detector
from threedsr.descriptors import (
    colour_descriptors,
    descriptor_channels,
    local_descriptors,
    surface_descriptors,
)
from threedsr.memory import FeatureMemory, MemoryFeatures, fit_memory, memory_map
from threedsr_testutil import synthetic_class, tiny_backbone, tiny_config


def _grid(n: int = 48) -> tuple[torch.Tensor, torch.Tensor]:
    v, u = torch.meshgrid(
        torch.arange(n, dtype=torch.float64), torch.arange(n, dtype=torch.float64), indexing="ij"
    )
    return u - n / 2, v - n / 2


@pytest.mark.parametrize(("a", "b"), [(0.01, 0.01), (0.02, 0.0), (-0.01, 0.005)])
def test_quadratic_surface_has_its_analytic_laplacian_and_anisotropy(a: float, b: float) -> None:
    # d = a x^2 / 2 + b y^2 / 2: d_xx = a, d_yy = b, d_xy = 0 everywhere; a Gaussian blur only
    # adds a constant, central differences are exact on quadratics.
    x, y = _grid()
    d = (a * x**2 / 2 + b * y**2 / 2)[None, None]
    out = surface_descriptors(d, scales=(1.0, 2.0))
    inner = (slice(None), slice(None), slice(16, 32), slice(16, 32))
    for i, s in enumerate((1.0, 2.0)):
        lap, aniso = out[:, 3 * i + 1][inner[1:]], out[:, 3 * i + 2][inner[1:]]
        torch.testing.assert_close(lap, torch.full_like(lap, s * s * (a + b)))
        torch.testing.assert_close(aniso, torch.full_like(aniso, s * s * abs(a - b) / 2))


def test_a_tilted_plane_has_a_constant_slope_and_no_curvature() -> None:
    x, y = _grid()
    d = (0.003 * x - 0.004 * y)[None, None]
    out = surface_descriptors(d, scales=(2.0,))[0, :, 16:32, 16:32]
    torch.testing.assert_close(out[0], torch.full_like(out[0], 2 * 0.005))
    assert float(out[1:].abs().max()) < 1e-12


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**16), k=st.integers(1, 3), setup=st.sampled_from(["rgbd", "depth", "rgb"])
)
def test_descriptors_turn_with_the_image(seed: int, k: int, setup: str) -> None:
    channels = {"rgbd": 4, "depth": 1, "rgb": 3}[setup]
    x = torch.rand(2, channels, 24, 24, generator=torch.Generator().manual_seed(seed))
    turned = local_descriptors(torch.rot90(x, k, (2, 3)), setup)
    torch.testing.assert_close(
        turned, torch.rot90(local_descriptors(x, setup), k, (2, 3)), atol=1e-5, rtol=1e-4
    )


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), tint=st.tuples(*[st.floats(0.3, 2.0)] * 3))
def test_colour_descriptors_ignore_a_scan_wide_tint(
    seed: int, tint: tuple[float, float, float]
) -> None:
    rgb = 0.1 + torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(seed))
    fg = torch.zeros(1, 1, 16, 16)
    fg[..., 4:12, 4:12] = 1
    tinted = rgb * torch.tensor(tint).view(1, 3, 1, 1)
    torch.testing.assert_close(
        colour_descriptors(tinted, fg), colour_descriptors(rgb, fg), atol=1e-5, rtol=1e-4
    )


@pytest.mark.parametrize("batch", [0, 1, 3])
@pytest.mark.parametrize(("setup", "channels"), [("rgbd", 4), ("depth", 1), ("rgb", 3)])
def test_shapes_for_every_batch_size(batch: int, setup: str, channels: int) -> None:
    out = local_descriptors(torch.rand(batch, channels, 20, 28), setup, scales=(1, 3))
    assert out.shape == (batch, descriptor_channels(setup, 2), 20, 28)
    assert bool(torch.isfinite(out).all())


def test_errors_say_what_was_expected() -> None:
    with pytest.raises(ValueError, match=r"depth: expected \(B, 1, H, W\), got \(2, 3, 8, 8\)"):
        surface_descriptors(torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError, match=r"rgbd input: expected \(B, 4, H, W\)"):
        local_descriptors(torch.zeros(1, 3, 8, 8), "rgbd")
    with pytest.raises(ValueError, match="unknown setup 'xyz'"):
        local_descriptors(torch.zeros(1, 3, 8, 8), "xyz")
    with pytest.raises(ValueError, match="kind must be 'encoder' or 'descriptors'"):
        MemoryFeatures("pixels")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="scales must be > 0"):
        MemoryFeatures("descriptors", scales=(0.0,))


def test_a_descriptor_memory_flags_a_dent_the_encoder_memory_barely_sees() -> None:
    bb = tiny_backbone("depth")
    data = synthetic_class("depth", n=4)
    dented = data.x[:1].clone()
    v, u = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    bowl = 0.03 * torch.clamp(1 - ((u - 32) ** 2 + (v - 32) ** 2) / 36, min=0)
    on = dented[0, 0] > 0
    dented[0, 0] = torch.where(on, dented[0, 0] - bowl, dented[0, 0])
    inside = (slice(28, 36), slice(28, 36))
    ratio = {}
    for kind in ("descriptors", "encoder"):
        mem = fit_memory(bb, data.x, features=MemoryFeatures(kind))  # type: ignore[arg-type]
        hit = memory_map(mem, bb, dented)[0][inside].mean()
        base = memory_map(mem, bb, data.x[:1], exclude=torch.tensor([0]))[0][inside].mean()
        ratio[kind] = float(hit) / max(float(base), 1e-6)
    assert ratio["descriptors"] > 3 and ratio["descriptors"] > 2 * ratio["encoder"]


def test_descriptor_memory_is_standardised_and_survives_a_round_trip() -> None:
    bb = tiny_backbone("rgbd")
    data = synthetic_class("rgbd", n=3)
    mem = fit_memory(bb, data.x, features=MemoryFeatures("descriptors", (1.0, 2.0), pool=4))
    assert mem.bank.shape[1] == descriptor_channels("rgbd", 2)
    torch.testing.assert_close(mem.bank.mean(0), torch.zeros(12), atol=1e-4, rtol=0)
    back = FeatureMemory.from_state(mem.state())
    assert back.features == mem.features
    torch.testing.assert_close(
        memory_map(back, bb, data.x[:1]), memory_map(mem, bb, data.x[:1]), atol=2e-2, rtol=1e-2
    )


def test_old_memory_states_mean_encoder_features() -> None:
    state = FeatureMemory(torch.randn(4, 3)).state()
    del state["features"]
    assert FeatureMemory.from_state(state).features == MemoryFeatures("encoder")


def test_a_detector_trained_with_descriptors_uses_them(tmp_path) -> None:
    cfg = tiny_config(
        "rgbd",
        out=str(tmp_path / "run"),
        iterations=2,
        memory_weight=1.0,
        memory_features="descriptors",
        descriptor_scales=(1.0, 2.0),
    )
    bb, data = tiny_backbone("rgbd"), synthetic_class("rgbd")
    train_detector(cfg, backbone=bb, data=data)
    det = Detector.load(tmp_path / "run", device="cpu")
    assert det.memory is not None and det.memory.features == MemoryFeatures(
        "descriptors", (1.0, 2.0)
    )
    assert det.config.memory_features == "descriptors"
    pred = det.predict(data.x[:2])
    assert pred.maps.shape == (2, *data.x.shape[2:]) and bool(torch.isfinite(pred.maps).all())


def test_memory_alone_skips_the_heads_and_equals_the_fused_path(tmp_path, monkeypatch) -> None:
    cfg = tiny_config(
        "depth", out=str(tmp_path / "run"), iterations=2, memory_weight=1.0,
        memory_features="descriptors",
    )  # fmt: skip
    bb, data = tiny_backbone("depth"), synthetic_class("depth")
    train_detector(cfg, backbone=bb, data=data)
    det = Detector.load(tmp_path / "run", device="cpu")
    calls = []
    det.model.register_forward_hook(lambda *a: calls.append(1))
    got = det.predict(data.x[:2]).raw_maps
    assert not calls
    # The general path: heads computed, then fused with weight 0 on them.
    monkeypatch.setattr(Detector, "_memory_alone", property(lambda self: False))
    want = det.predict(data.x[:2]).raw_maps
    assert calls
    torch.testing.assert_close(got, want, atol=0, rtol=0)
