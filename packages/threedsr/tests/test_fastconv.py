"""Winograd fast conv (threedsr.fastconv) against F.conv2d, and the Detector's fast path.

Tolerance: the error is measured against a float64 ``F.conv2d`` and stated relative to the
largest output magnitude: <= 5e-5 for F(4x4, 3x3) and <= 5e-6 for F(2x2, 3x3) (measured: ~1e-5
and ~4e-7 at 512-2048 channels, a few 1e-6 and 1e-7 at the sizes below; fp32 direct conv is
~2e-6).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from threedsr import Detector, ThreeDSR, fastconv
from threedsr import _winograd_kernels as _kernels
from threedsr.fastconv import (
    _MATS,
    FastConvPlan,
    check_supported,
    pack_weight,
    winograd_conv2d,
    winograd_weight,
)
from threedsr_testutil import synthetic_class, tiny_backbone, tiny_config
from torch import nn

RTOL = {4: 5e-5, 2: 5e-6}


def _rel_err(y: torch.Tensor, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> float:
    ref = F.conv2d(x.double(), w.double(), None if b is None else b.double(), padding=1)
    assert y.shape == ref.shape
    if ref.numel() == 0:
        return 0.0
    return float((y.double() - ref).abs().max() / ref.abs().max().clamp_min(1e-30))


@pytest.mark.parametrize("tile", [4, 2])
@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize(
    ("n", "c", "k", "h", "w"),
    [
        (1, 3, 5, 8, 8),  # multiple of 4
        (2, 16, 24, 7, 5),  # odd, not multiples of 4 (or 2)
        (3, 32, 8, 10, 14),  # even, not multiples of 4
        (1, 64, 64, 1, 1),  # a single pixel
        (0, 8, 8, 6, 6),  # empty batch
        (1, 8, 4, 13, 2),
    ],
)
def test_winograd_matches_conv2d(
    tile: int, packed: bool, n: int, c: int, k: int, h: int, w: int
) -> None:
    g = torch.Generator().manual_seed(n * 1000 + c * 10 + k)
    x = torch.randn(n, c, h, w, generator=g)
    wt = torch.randn(k, c, 3, 3, generator=g)
    b = torch.randn(k, generator=g)
    u = winograd_weight(wt, tile)
    pk = pack_weight(u, max(1, n * -(-h // tile) * -(-w // tile))) if packed else None
    with torch.inference_mode():
        y = winograd_conv2d(x, pk if pk is not None else u, b, tile=tile)
        direct = F.conv2d(x, wt, b, padding=1)
    assert y.shape == (n, k, h, w)
    assert y.is_contiguous()  # NCHW in, NCHW out (as F.conv2d)
    assert _rel_err(y, x, wt, b) <= RTOL[tile]
    assert _rel_err(direct, x, wt, b) <= RTOL[tile]  # the fp32 direct conv as a sanity bound


@pytest.mark.parametrize("tile", [4, 2])
def test_channels_last_and_strided_inputs_give_the_same_result(tile: int) -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 12, 11, 9, generator=g)
    wt = torch.randn(6, 12, 3, 3, generator=g)
    u = winograd_weight(wt, tile)
    y = winograd_conv2d(x, u, tile=tile)
    y_cl = winograd_conv2d(x.contiguous(memory_format=torch.channels_last), u, tile=tile)
    big = torch.randn(2, 24, 11, 9, generator=g)
    big[:, ::2] = x  # a non-contiguous view with the same values
    y_view = winograd_conv2d(big[:, ::2], u, tile=tile)
    torch.testing.assert_close(y_cl, y, rtol=0, atol=0)
    assert y_cl.is_contiguous(memory_format=torch.channels_last)  # channels_last in and out
    torch.testing.assert_close(y_view, y, rtol=0, atol=0)
    assert _rel_err(y, x, wt, None) <= RTOL[tile]


def test_pack_made_for_another_tile_count_is_still_correct() -> None:
    g = torch.Generator().manual_seed(2)
    x, wt = torch.randn(1, 16, 12, 12, generator=g), torch.randn(8, 16, 3, 3, generator=g)
    pk = pack_weight(winograd_weight(wt), 1)
    if pk is None:
        pytest.skip("oneDNN not available")
    with torch.inference_mode():
        assert _rel_err(winograd_conv2d(x, pk), x, wt, None) <= RTOL[4]


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(0, 2),
    c=st.integers(1, 12),
    k=st.integers(1, 12),
    h=st.integers(1, 11),
    w=st.integers(1, 11),
    tile=st.sampled_from([2, 4]),
    seed=st.integers(0, 2**16),
)
def test_winograd_property(n: int, c: int, k: int, h: int, w: int, tile: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=g)
    wt = torch.randn(k, c, 3, 3, generator=g)
    b = torch.randn(k, generator=g)
    y = winograd_conv2d(x, winograd_weight(wt, tile), b, tile=tile)
    assert _rel_err(y, x, wt, b) <= RTOL[tile]


@pytest.mark.parametrize(
    ("conv", "message"),
    [
        (nn.Conv2d(4, 4, 3, stride=2, padding=1), "stride must be (1, 1), got (2, 2)"),
        (nn.Conv2d(4, 4, 3, padding=0), "padding must be (1, 1), got (0, 0)"),
        (nn.Conv2d(4, 4, 3, padding=2, dilation=2), "padding must be (1, 1), got (2, 2)"),
        (nn.Conv2d(4, 4, 3, padding=1, dilation=2), "dilation must be (1, 1), got (2, 2)"),
        (nn.Conv2d(4, 4, 5, padding=1), "kernel_size must be (3, 3), got (5, 5)"),
        (nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect"), "padding_mode must be 'zeros'"),
        (nn.ConvTranspose2d(4, 4, 3, padding=1), "needs an nn.Conv2d, got ConvTranspose2d"),
    ],
)
def test_unsupported_convs_are_named(conv: nn.Module, message: str) -> None:
    with pytest.raises(
        ValueError, match="winograd conv: " + message.replace("(", r"\(").replace(")", r"\)")
    ):
        check_supported(conv)


def test_same_padding_is_supported_and_bad_arguments_raise() -> None:
    check_supported(nn.Conv2d(4, 4, 3, padding="same"))
    w = torch.randn(4, 3, 3, 3)
    with pytest.raises(ValueError, match="tile must be 2 or 4, got 6"):
        winograd_weight(w, 6)
    with pytest.raises(ValueError, match="tile must be 2 or 4, got 3"):
        winograd_conv2d(torch.randn(1, 3, 4, 4), winograd_weight(w), tile=3)
    with pytest.raises(ValueError, match=r"weight must be \(K, C, 3, 3\), got \(4, 3, 5, 5\)"):
        winograd_weight(torch.randn(4, 3, 5, 5))
    with pytest.raises(ValueError, match="does not fit transformed weight"):
        winograd_conv2d(torch.randn(1, 5, 4, 4), winograd_weight(w))
    with pytest.raises(ValueError, match="does not fit transformed weight"):
        winograd_conv2d(torch.randn(1, 3, 4, 4), winograd_weight(w, 2), tile=4)
    with pytest.raises(ValueError, match="tile must be 2 or 4"):
        FastConvPlan(nn.Conv2d(3, 3, 3, padding=1), tile=8)
    grouped = pack_weight(winograd_weight(torch.randn(4, 2, 3, 3)))
    if grouped is not None:
        with pytest.raises(ValueError, match="packed weights are for ungrouped convs"):
            winograd_conv2d(torch.randn(1, 4, 5, 5), grouped)
    packed = pack_weight(winograd_weight(w))
    if packed is not None:
        with pytest.raises(ValueError, match="packed weights need a float32 CPU input"):
            winograd_conv2d(torch.randn(1, 3, 5, 5, dtype=torch.float64), packed)


def test_plan_selects_routes_restores_and_tracks_weight_updates() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(16, 32, 3, padding=1),  # selected
        nn.ReLU(),
        nn.Conv2d(32, 32, 3, stride=2, padding=1),  # unsupported: skipped
        nn.Conv2d(32, 2, 3, padding=1),  # too narrow (64 < 256): skipped
    )
    plan = FastConvPlan(net, min_channel_product=256)
    assert plan.convs == [net[0]]
    x = torch.randn(2, 16, 9, 10)
    with torch.no_grad():
        ref = net(x)
        with plan.active():
            assert "forward" in net[0].__dict__
            y = net(x)
        assert "forward" not in net[0].__dict__  # restored
        assert _rel_err(net[0](x), x, net[0].weight, net[0].bias) < 1e-6  # exact again
        torch.testing.assert_close(y, ref, rtol=0, atol=1e-4)
        net[0].weight.mul_(2.0)  # in-place update: the cached transform must be rebuilt
        with plan.active():
            y2 = net(x)
        torch.testing.assert_close(y2, net(x), rtol=0, atol=2e-4)
    plan.clear()
    with plan.active(), pytest.raises(RuntimeError, match="inference-only"):
        net(x)


@pytest.fixture(scope="module")
def wide_model() -> tuple[ThreeDSR, object]:
    # Object decoder wide enough (16 -> 32 channels) that its 3x3 convs are selected.
    cfg = tiny_config(
        "rgbd",
        object_decoder="reference",
        objdec_width=16,
        objdec_hidden=16,
        objdec_res_hidden=8,
    )
    torch.manual_seed(5)
    return ThreeDSR(tiny_backbone("rgbd"), cfg.model).eval(), cfg


def test_detector_fast_conv_equals_plain_eager(wide_model: tuple[ThreeDSR, object]) -> None:
    model, cfg = wide_model
    x = synthetic_class("rgbd", n=3, seed=6).x
    with torch.no_grad():
        ref = torch.cat([model(x[i : i + 1]).anomaly_map for i in range(3)])
    fast = Detector(model, cfg, batch_size=2, smoothing="none", fast_conv_min_product=256)
    assert fast.fast_conv and fast._fast_plan is not None
    # Only convs after the last re-quantisation: a rounding change upstream of a VQ can flip a
    # near-tie code. The object decoder's four wide convs are among them.
    downstream = {
        id(c)
        for mod in (model.object_decoder, model.backbone.decoder, model.anomaly_unet)
        for c in mod.modules()
    }
    assert all(id(c) in downstream for c in fast._fast_plan.convs)
    od = [c for c in model.object_decoder.encoder if isinstance(c, nn.Conv2d)]
    assert sum(c in od for c in fast._fast_plan.convs) == 4
    exact = Detector(model, cfg, batch_size=2, smoothing="none", fast_conv=False)
    assert not exact.fast_conv and exact._fast_plan is None
    got, got_exact = fast.predict(x), exact.predict(x)
    torch.testing.assert_close(got.maps, ref, rtol=0, atol=1e-4)
    torch.testing.assert_close(got_exact.maps, ref, rtol=0, atol=1e-4)
    assert not torch.equal(got.raw_maps, got_exact.raw_maps)  # the fast path really ran
    assert all("forward" not in c.__dict__ for c in fast._fast_plan.convs)


@pytest.mark.parametrize("tile", [4, 2])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("groups", "c", "k"), [(2, 8, 6), (4, 8, 8), (1, 5, 3)])
def test_grouped_convs_match_conv2d_on_both_paths(
    tile: int, dtype: torch.dtype, groups: int, c: int, k: int
) -> None:
    # float32 CPU runs the numba kernels, float64 the torch formulation of the same algorithm.
    g = torch.Generator().manual_seed(groups * 100 + c)
    x = torch.randn(2, c, 9, 6, generator=g, dtype=dtype)
    wt = torch.randn(k, c // groups, 3, 3, generator=g, dtype=dtype)
    b = torch.randn(k, generator=g, dtype=dtype)
    y = winograd_conv2d(x, winograd_weight(wt, tile), b, tile=tile)
    ref = F.conv2d(x.double(), wt.double(), b.double(), padding=1, groups=groups)
    assert y.dtype == dtype and y.shape == ref.shape
    tol = RTOL[tile] if dtype == torch.float32 else 1e-12
    assert float((y.double() - ref).abs().max() / ref.abs().max()) <= tol


@pytest.mark.parametrize("tile", [4, 2])
def test_kernels_py_func_equal_the_compiled_kernels(tile: int) -> None:
    rng = np.random.default_rng(tile)
    n, c, k, h, w = 2, 3, 4, 7, 10
    th, tw, t2 = -(-h // tile), -(-w // tile), (tile + 2) ** 2
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    v_jit, v_py = (np.full((t2, c, n * th * tw), np.nan, np.float32) for _ in range(2))
    _kernels.input_transform(x, v_jit, th, tw, tile)
    _kernels.input_transform.py_func(x, v_py, th, tw, tile)
    np.testing.assert_allclose(v_py, v_jit, rtol=1e-6, atol=1e-6)
    m = rng.standard_normal((t2, k, n * th * tw)).astype(np.float32)
    bias = rng.standard_normal(k).astype(np.float32)
    y_jit, y_py = (np.full((n, k, h, w), np.nan, np.float32) for _ in range(2))
    _kernels.output_transform(m, bias, y_jit, th, tw, tile)
    _kernels.output_transform.py_func(m, bias, y_py, th, tw, tile)
    assert np.isfinite(y_jit).all()  # every output pixel written, none beyond the crop
    np.testing.assert_allclose(y_py, y_jit, rtol=1e-5, atol=1e-5)
    # The transform itself: the kernel's V equals the dense kron(Bᵀ, Bᵀ) product on the tiles.
    bt = torch.tensor(_MATS[tile][0], dtype=torch.float64)
    xp = np.pad(x, ((0, 0), (0, 0), (1, th * tile + 1 - h), (1, tw * tile + 1 - w)))
    d = xp[0, 1, tile : tile + tile + 2, 0 : tile + 2]  # image 0, channel 1, tile (1, 0)
    want = (bt @ torch.from_numpy(d).double() @ bt.T).flatten().numpy()
    np.testing.assert_allclose(v_jit[:, 1, 1 * tw + 0], want, rtol=1e-5, atol=1e-5)


def test_workspace_is_reused_across_shapes_without_changing_results() -> None:
    g = torch.Generator().manual_seed(3)
    ws: dict[str, torch.Tensor] = {}
    cases = [(16, 24, 12), (4, 8, 5), (32, 8, 9), (4, 8, 5)]
    for c, k, s in cases:
        x = torch.randn(1, c, s, s, generator=g)
        u = winograd_weight(torch.randn(k, c, 3, 3, generator=g))
        with torch.inference_mode():
            fresh = winograd_conv2d(x, u)
            reused = winograd_conv2d(x, u, workspace=ws)
        torch.testing.assert_close(reused, fresh, rtol=0, atol=0)
    assert set(ws) == {"v", "m"} and ws["v"].numel() == 36 * 32 * 9  # grown to the largest
    with torch.no_grad():  # buffers made inside inference mode must still work outside it
        winograd_conv2d(
            torch.randn(1, 4, 5, 5), winograd_weight(torch.randn(8, 4, 3, 3)), workspace=ws
        )


def test_numba_threads_follow_torch_threads() -> None:
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        winograd_conv2d(torch.randn(1, 4, 6, 6), winograd_weight(torch.randn(4, 4, 3, 3)))
        assert numba.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_plan_follows_the_measured_gemm_route_and_both_routes_agree(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    torch.manual_seed(4)
    conv = nn.Conv2d(24, 40, 3, padding=1)
    x = torch.randn(1, 24, 13, 11)
    with torch.inference_mode():
        ref = F.conv2d(x, conv.weight, conv.bias, padding=1)
    monkeypatch.setattr(fastconv, "_GEMM_ROUTE", None)
    plan = FastConvPlan(conv, min_channel_product=1)
    with torch.inference_mode(), plan.active():
        y = conv(x)
    torch.testing.assert_close(y, ref, rtol=0, atol=1e-4)
    measured = fastconv._GEMM_ROUTE
    assert measured == fastconv.gemm_route() in ("bmm", "onednn")  # measured once, then kept
    if not fastconv._mkldnn_ok():
        assert measured == "bmm"
        return
    for route in ("bmm", "onednn"):  # the cached weights follow the route
        monkeypatch.setattr(fastconv, "_GEMM_ROUTE", route)
        with torch.inference_mode(), plan.active():
            y2 = conv(x)
        assert isinstance(plan._cache[id(conv)][1], list) == (route == "onednn")
        torch.testing.assert_close(y2, ref, rtol=0, atol=1e-4)


def test_detector_shared_by_threads_gives_the_sequential_result(
    wide_model: tuple[ThreeDSR, object],
) -> None:
    # Kernel launches and the plan's scratch buffers are shared; concurrent predicts must not
    # mix them up (nor abort under numba's workqueue layer).
    model, cfg = wide_model
    x = synthetic_class("rgbd", n=4, seed=7).x
    det = Detector(model, cfg, smoothing="none", fast_conv_min_product=256)
    want = [det.predict(x[i : i + 1]).raw_maps for i in range(4)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(lambda i: det.predict(x[i : i + 1]).raw_maps, [0, 1, 2, 3] * 3))
    for i, g in enumerate(got):
        torch.testing.assert_close(g, want[i % 4], rtol=0, atol=1e-5)
