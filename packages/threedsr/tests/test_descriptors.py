"""Local descriptors: analytic curvature of quadratic surfaces, rotation and tint invariance,
shapes for batch 0/1/N, error messages, and a memory built on them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from threedsr import Detector, MemoryConfig, train_detector
from threedsr.errors import ThreedsrError
from threedsr.memory import FeatureMemory, MemoryFeatures, fit_memory
from threedsr.memory.descriptors import (
    DESCRIPTOR_GROUPS,
    LEGACY_GROUPS,
    colour_descriptors,
    descriptor_channels,
    group_slices,
    interior_distance,
    local_descriptors,
    setup_groups,
    surface_descriptors,
    texture_descriptors,
)
from threedsr_testutil import synthetic_class, tiny_backbone, tiny_memory_config

# The descriptors of session 6: surface and colour at 1, 2 and 4 px, every channel weighing 1.
LEGACY = MemoryConfig(scales=(1.0, 2.0, 4.0), groups=LEGACY_GROUPS, weights=None, local_k=0)


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
    seed=st.integers(0, 2**16),
    k=st.integers(1, 3),
    setup=st.sampled_from(["rgbd", "depth", "rgb"]),
    groups=st.sampled_from([LEGACY_GROUPS, DESCRIPTOR_GROUPS]),
)
def test_descriptors_turn_with_the_image(
    seed: int, k: int, setup: str, groups: tuple[str, ...]
) -> None:
    channels = {"rgbd": 4, "depth": 1, "rgb": 3}[setup]
    x = torch.rand(2, channels, 24, 24, generator=torch.Generator().manual_seed(seed))
    if setup != "rgb":
        x[:, :1] *= (torch.rand(2, 1, 24, 24) > 0.3).float()  # an object and a background
    turned = local_descriptors(torch.rot90(x, k, (2, 3)), setup, groups=groups)
    torch.testing.assert_close(
        turned,
        torch.rot90(local_descriptors(x, setup, groups=groups), k, (2, 3)),
        atol=1e-5,
        rtol=1e-4,
    )


def _disk(n: int, radius: float, centre: tuple[float, float]) -> torch.Tensor:
    v, u = torch.meshgrid(torch.arange(n * 1.0), torch.arange(n * 1.0), indexing="ij")
    return (((u - centre[1]) ** 2 + (v - centre[0]) ** 2) <= radius**2).float()[None, None]


@pytest.mark.parametrize("radius", [8.0, 20.0])
def test_interior_distance_is_the_depth_inside_a_disk_over_its_radius(radius: float) -> None:
    fg = _disk(64, radius, (31.0, 33.0))
    e = interior_distance(fg)[0, 0]
    assert float(e[fg[0, 0] == 0].abs().max()) == 0.0
    # Centre: the octagonal distance is within 8 % of the Euclidean one; ~1 after the division.
    assert abs(float(e[31, 33]) - 1.0) < 0.12
    # Half-way out, half the depth: the profile does not depend on the object's size.
    assert abs(float(e[31, 33 + int(radius / 2)]) - 0.5) < 0.12


@settings(max_examples=15, deadline=None)
@given(dy=st.integers(-10, 10), dx=st.integers(-10, 10))
def test_interior_distance_moves_with_the_object(dy: int, dx: int) -> None:
    fg = _disk(64, 12.0, (32.0, 32.0))
    moved = torch.roll(fg, (dy, dx), (2, 3))
    torch.testing.assert_close(
        interior_distance(moved), torch.roll(interior_distance(fg), (dy, dx), (2, 3))
    )


def _interior_reference(fg: np.ndarray) -> np.ndarray:
    """Erosions counted with scipy: a cross with the outside as background, then a square with
    the outside ignored, alternating, over the whole fixed-length loop (what a traced graph
    runs); over sqrt(area / pi)."""
    ndimage = pytest.importorskip("scipy.ndimage")
    cross = ndimage.generate_binary_structure(2, 1)
    square = np.ones((3, 3), bool)
    cur, depth = fg.astype(bool), np.zeros(fg.shape)
    for step in range((min(fg.shape) + 1) // 2):
        depth += cur
        if step % 2:
            cur = ndimage.binary_erosion(cur, square, border_value=1)
        else:
            cur = ndimage.binary_erosion(cur, cross, border_value=0)
    return depth / max(1.0, (fg.sum() / np.pi) ** 0.5)


@settings(max_examples=25, deadline=None)
@given(
    h=st.integers(3, 40),
    w=st.integers(3, 40),
    fill=st.floats(0.0, 1.0),
    grow=st.integers(0, 3),
    seed=st.integers(0, 2**16),
)
def test_interior_distance_counts_the_erosions_scipy_counts(
    h: int, w: int, fill: float, grow: int, seed: int
) -> None:
    """Blobs of any size, touching the border or not, empty or full: the eager loop (which
    stops once nothing is left) gives the full loop's values."""
    g = torch.Generator().manual_seed(seed)
    fg = (torch.rand(1, 1, h, w, generator=g) < fill).float()
    if grow:
        fg = F.max_pool2d(fg, 2 * grow + 1, 1, grow)
    ref = _interior_reference(fg[0, 0].numpy())
    np.testing.assert_allclose(interior_distance(fg)[0, 0].double().numpy(), ref, rtol=1e-6)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), light=st.floats(0.3, 3.0))
def test_texture_descriptors_ignore_the_light_level(seed: int, light: float) -> None:
    rgb = 0.1 + torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(seed))
    fg = torch.zeros(1, 1, 16, 16)
    fg[..., 3:13, 3:13] = 1
    torch.testing.assert_close(
        texture_descriptors(rgb * light, fg), texture_descriptors(rgb, fg), atol=1e-5, rtol=1e-4
    )


def test_texture_of_a_grey_ramp_is_its_relative_slope() -> None:
    x, _ = _grid(40)
    grey = (0.5 + 0.01 * x.float())[None, None].expand(1, 3, 40, 40)
    out = texture_descriptors(grey, None, scales=(2.0,))[0, :, 12:28, 12:28]
    slope = 2 * 0.01 / float(grey[0, 0].mean())  # s |grad| of the grey over its mean
    torch.testing.assert_close(out[0], torch.full_like(out[0], slope), rtol=1e-4, atol=0)
    assert float(out[1].abs().max()) < 1e-5


def test_setups_take_the_groups_their_input_gives() -> None:
    assert setup_groups("rgbd", DESCRIPTOR_GROUPS) == DESCRIPTOR_GROUPS
    assert setup_groups("depth", DESCRIPTOR_GROUPS) == ("surface", "interior")
    assert setup_groups("rgb", DESCRIPTOR_GROUPS) == ("colour", "texture")
    assert descriptor_channels("rgbd", 4, DESCRIPTOR_GROUPS) == 12 + 12 + 8 + 1
    slices = group_slices("rgbd", 2, DESCRIPTOR_GROUPS)
    assert [s.stop - s.start for s in slices.values()] == [6, 6, 4, 1]
    x = torch.rand(2, 4, 16, 16)
    full = local_descriptors(x, "rgbd", (1, 2), DESCRIPTOR_GROUPS)
    torch.testing.assert_close(full[:, slices["surface"]], surface_descriptors(x[:, :1], (1, 2)))


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
    with pytest.raises(ValueError, match=r"unknown group\(s\) \['edges'\]"):
        MemoryFeatures("descriptors", groups=("surface", "edges"))
    with pytest.raises(ValueError, match="one positive number per group"):
        MemoryFeatures("descriptors", groups=("surface",), weights=(1.0, 2.0))
    with pytest.raises(ThreedsrError, match="MemoryConfig: weights must be one positive number"):
        tiny_memory_config("rgbd", groups=("surface", "colour"), weights=(0.0, 1.0))
    with pytest.raises(ThreedsrError, match="MemoryConfig: groups must be some of"):
        tiny_memory_config("rgbd", groups=("curvature",))


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
        mem = fit_memory(data.x, "depth", LEGACY.replace(features=kind), backbone=bb)
        hit = mem(dented)[0][inside].mean()
        base = mem(data.x[:1], exclude=torch.tensor([0]))[0][inside].mean()
        ratio[kind] = float(hit) / max(float(base), 1e-6)
    assert ratio["descriptors"] > 3 and ratio["descriptors"] > 2 * ratio["encoder"]


def test_descriptor_memory_is_standardised_and_survives_a_round_trip() -> None:
    data = synthetic_class("rgbd", n=3)
    mem = fit_memory(data.x, "rgbd", LEGACY.replace(scales=(1.0, 2.0)))
    assert mem.bank.shape[1] == descriptor_channels("rgbd", 2)
    torch.testing.assert_close(mem.bank.mean(0), torch.zeros(12), atol=1e-4, rtol=0)
    back = FeatureMemory.from_state(mem.state(), "rgbd")
    assert back.features == mem.features == MemoryFeatures("descriptors", (1.0, 2.0))
    # Fitted on the fp16 bank the checkpoint stores: the reloaded memory is the same detector.
    assert torch.equal(back(data.x[:1]), mem(data.x[:1]))


def test_a_fitted_memory_with_parts_and_scales_reloads_exactly() -> None:
    """Local scales and part statistics are measured on the bank as written (fp16), so the
    written detector's maps are the fitted memory's, bit for bit (they differed by ~1e-3)."""
    data = synthetic_class("rgbd", n=6, seed=3)
    cfg = MemoryConfig.for_setup("rgbd", scales=(1.0, 2.0), local_min_scans=3, size=4000)
    mem = fit_memory(data.x, "rgbd", cfg)
    assert mem.parts is not None and mem.local_scale is not None
    assert torch.equal(mem.bank, mem.bank.half().float())
    back = FeatureMemory.from_state(mem.state(), "rgbd")
    new = synthetic_class("rgbd", n=2, seed=4).x
    assert torch.equal(back(new), mem(new))


def test_group_weights_set_each_groups_share_of_the_distance() -> None:
    data = synthetic_class("rgbd", n=3)
    weights = (2.0, 1.0, 0.5, 1.0)
    features = MemoryFeatures("descriptors", (1.0, 2.0), groups=DESCRIPTOR_GROUPS, weights=weights)
    cfg = MemoryConfig(scales=(1.0, 2.0), weights=weights, size=10**9, local_k=0)
    mem = fit_memory(data.x, "rgbd", cfg)
    assert mem.features == features
    var = mem.bank.var(0, correction=0)
    for (group, sl), w in zip(
        group_slices("rgbd", 2, DESCRIPTOR_GROUPS).items(), weights, strict=True
    ):
        # Each group's variance adds up to w^2, whatever its channel count (interior: 1 channel).
        assert abs(float(var[sl].sum()) - w * w) < 1e-3 * w * w, group
    back = FeatureMemory.from_state(mem.state(), "rgbd")
    assert back.features == features
    torch.testing.assert_close(back.scale, mem.scale)


def test_searching_object_cells_only_equals_masking_afterwards() -> None:
    data = synthetic_class("depth", n=3)
    mem = fit_memory(data.x, "depth", LEGACY)
    # Off the bank: at an exact match, sqrt magnifies the rounding of ||q||^2 + ||e||^2 - 2 q.e,
    # which depends on how many rows a block holds.
    f = mem.features.extract("depth", data.x) + 0.1 * torch.randn(3, 9, 32, 32)
    where = torch.rand(f.shape[0], *f.shape[2:]) > 0.5
    torch.testing.assert_close(mem.distance(f, where=where), mem.distance(f) * where)
    with pytest.raises(ValueError, match=r"where must be \(3, 32, 32\)"):
        mem.distance(f, where=where[:, :4])


def test_memory_states_without_groups_are_the_session_6_descriptors() -> None:
    state = MemoryFeatures("descriptors", (1.0, 2.0)).state()
    del state["groups"], state["weights"]
    back = MemoryFeatures.from_state(state)
    assert back.groups == LEGACY_GROUPS and back.weights is None
    assert back.channel_weights("rgbd") is None


def test_old_memory_states_mean_encoder_features() -> None:
    state = FeatureMemory(torch.randn(4, 3), "rgbd").state()
    del state["features"]
    bb = tiny_backbone("rgbd")
    assert FeatureMemory.from_state(state, "rgbd", bb).features == MemoryFeatures("encoder")
    with pytest.raises(ValueError, match="needs its backbone"):
        FeatureMemory.from_state(state, "rgbd")


def test_a_detector_trained_with_descriptors_uses_them(tmp_path) -> None:
    cfg = tiny_memory_config("rgbd", out=str(tmp_path / "run"), scales=(1.0, 2.0))
    data = synthetic_class("rgbd")
    train_detector(cfg, data=data)
    det = Detector.load(tmp_path / "run", device="cpu")
    assert det.memory is not None and det.memory.features == MemoryFeatures(
        "descriptors", (1.0, 2.0), groups=cfg.memory.groups, weights=cfg.memory.weights
    )
    assert det.config.memory.features == "descriptors" and det.memory.local_scale is not None
    pred = det.predict(data.x[:2])
    assert pred.maps.shape == (2, *data.x.shape[2:]) and bool(torch.isfinite(pred.maps).all())
