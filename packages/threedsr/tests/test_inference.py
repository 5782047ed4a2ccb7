from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from threedsr import (
    Detector,
    DetectorConfig,
    ThreeDSR,
    ThreedsrError,
    box_filter,
    choose_threshold,
    gaussian_filter,
    predict_samples,
    upsample_map,
)
from threedsr.smoothing import gaussian_kernel1d, separable_filter
from threedsr_testutil import synthetic_class, tiny_backbone, tiny_config


@pytest.fixture(scope="module")
def detector() -> Detector:
    cfg = tiny_config("rgbd")
    torch.manual_seed(3)
    return Detector(cfg, network=ThreeDSR(tiny_backbone("rgbd"), cfg.model), batch_size=2)


def test_predict_equals_plain_eager_fp32_batch1(detector: Detector) -> None:
    x = synthetic_class("rgbd", n=5, seed=4).x
    pred = detector.predict(x)
    ref_maps = []
    model = detector.network
    with torch.no_grad():
        for i in range(5):
            raw = model(x[i : i + 1].contiguous()).anomaly_map
            ref_maps.append(F.avg_pool2d(raw[:, None], 11, 1, 5, count_include_pad=True)[:, 0])
    ref = torch.cat(ref_maps)
    torch.testing.assert_close(pred.maps, ref, rtol=0, atol=1e-4)
    torch.testing.assert_close(pred.scores, ref.flatten(1).amax(1), rtol=0, atol=1e-4)
    assert pred.raw_maps.shape == (5, 64, 64)


def test_box_filter_counts_zero_padding() -> None:
    m = torch.rand(2, 9, 7)
    out = box_filter(m, 3)
    padded = F.pad(m, (1, 1, 1, 1))
    manual = sum(padded[:, i : i + 9, j : j + 7] for i in range(3) for j in range(3)) / 9
    torch.testing.assert_close(out, manual)


@pytest.mark.parametrize(
    ("maps", "size", "error", "message"),
    [
        (
            np.zeros((1, 5, 5), np.float32),
            3,
            TypeError,
            r"maps must be a torch\.Tensor \(B, H, W\), got ndarray",
        ),
        (torch.zeros(5, 5), 3, ValueError, r"maps must be \(B, H, W\), got shape \(5, 5\)"),
        (
            torch.zeros(1, 1, 5, 5),
            3,
            ValueError,
            r"maps must be \(B, H, W\), got shape \(1, 1, 5, 5\)",
        ),
        (torch.zeros(1, 5, 5), 0, ValueError, "size must be a positive odd int, got 0"),
        (torch.zeros(1, 5, 5), -3, ValueError, "size must be a positive odd int, got -3"),
        (torch.zeros(1, 5, 5), 4, ValueError, "size must be a positive odd int, got 4"),
        (torch.zeros(1, 5, 5), True, TypeError, "size must be a positive odd int, got True"),
        (torch.zeros(1, 5, 5), 3.0, TypeError, "size must be a positive odd int, got 3.0"),
    ],
)
def test_box_filter_names_the_argument_it_refuses(
    maps: object, size: object, error: type, message: str
) -> None:
    # torch's own errors ("avg_pool2d(): argument 'input' ... not numpy.ndarray", "pad must be
    # non-negative") named neither box_filter nor the argument.
    with pytest.raises(error, match=f"^box_filter: {message}$"):
        box_filter(maps, size)  # type: ignore[arg-type]
    assert torch.equal(box_filter(torch.ones(1, 3, 3), np.int64(1)), torch.ones(1, 3, 3))


def test_gaussian_filter_names_the_maps_it_refuses() -> None:
    with pytest.raises(TypeError, match=r"^gaussian_filter: maps must be a torch\.Tensor"):
        gaussian_filter(np.zeros((1, 5, 5)), 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^gaussian_filter: maps must be \(B, H, W\), got shape"):
        gaussian_filter(torch.zeros(5, 5), 1.0)


def test_gaussian_filter_matches_scipy_constant_mode() -> None:
    scipy_ndimage = pytest.importorskip("scipy.ndimage")
    m = torch.rand(1, 40, 30, dtype=torch.float64)
    ours = gaussian_filter(m, 2.0)[0].numpy()
    ref = scipy_ndimage.gaussian_filter(m[0].numpy(), 2.0, mode="constant", cval=0.0, truncate=4.0)
    np.testing.assert_allclose(ours, ref, atol=1e-10)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 3),
    h=st.integers(1, 12),
    w=st.integers(1, 12),
    radius=st.integers(0, 6),
    mode=st.sampled_from(["constant", "replicate"]),
    seed=st.integers(0, 2**16),
)
def test_separable_filter_is_scipys_correlation_along_w_then_h(
    n: int, h: int, w: int, radius: int, mode: str, seed: int
) -> None:
    """Against scipy.ndimage.correlate1d per axis, float64; kernels wider than the image too."""
    scipy_ndimage = pytest.importorskip("scipy.ndimage")
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, h, w, generator=g, dtype=torch.float64)
    k = torch.rand(2 * radius + 1, generator=g, dtype=torch.float64)
    ours = separable_filter(x, k, mode=mode).numpy()
    sp_mode = {"constant": "constant", "replicate": "nearest"}[mode]
    ref = scipy_ndimage.correlate1d(x.numpy(), k.numpy(), axis=2, mode=sp_mode, cval=0.0)
    ref = scipy_ndimage.correlate1d(ref, k.numpy(), axis=1, mode=sp_mode, cval=0.0)
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-12)


def test_separable_filter_equals_the_one_channel_convolutions_it_replaced() -> None:
    """The descriptors' blur before session 18 (conv2d per image, 1 x K then K x 1): the same
    sums, so a detector's features do not move."""
    x = torch.rand(6, 64, 48)
    k = gaussian_kernel1d(3.0, truncate=3.0)
    r = (k.numel() - 1) // 2
    ref = F.conv2d(F.pad(x[:, None], (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    ref = F.conv2d(F.pad(ref, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))[:, 0]
    torch.testing.assert_close(separable_filter(x, k, mode="replicate"), ref, rtol=0, atol=1e-6)


def test_separable_filter_rejects_even_kernels_and_other_ranks() -> None:
    with pytest.raises(ValueError, match="K odd"):
        separable_filter(torch.zeros(1, 4, 4), torch.ones(2))
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        separable_filter(torch.zeros(1, 1, 4, 4), torch.ones(3))


def test_depth_filter_is_21_as_the_reference_11_in_the_cpu_preset_and_gaussian_option() -> None:
    assert DetectorConfig.paper("depth").filter_size == 21
    cfg = tiny_config("depth")  # the cpu preset, shrunk
    det = Detector(cfg, network=ThreeDSR(tiny_backbone("depth"), cfg.model))
    assert det.filter_size == 11
    cfg = cfg.replace(smoothing_size=None)
    assert Detector(cfg, network=ThreeDSR(tiny_backbone("depth"), cfg.model)).filter_size == 21
    g = Detector(cfg, network=ThreeDSR(tiny_backbone("depth"), cfg.model), smoothing="gaussian")
    p = g.predict(torch.rand(1, 1, 64, 64))
    assert p.scores.item() == pytest.approx(p.maps.max().item())


def test_predict_input_errors(detector: Detector) -> None:
    with pytest.raises(ThreedsrError, match=r"expected \(B, 4, H=64, W=64\) for setup 'rgbd'"):
        detector.predict(torch.rand(1, 1, 64, 64))
    with pytest.raises(ThreedsrError, match=r"expected \(B, 4, H=64, W=64\).*\(1, 4, 48, 64\)"):
        detector.predict(torch.rand(1, 4, 48, 64))


class _Prep:
    def __init__(self, x: torch.Tensor, shape: tuple[int, int], label: int) -> None:
        self.depth = x[0].numpy()
        self.rgb = np.moveaxis(x[1:].numpy(), 0, -1)
        self.foreground = self.valid = np.ones(x.shape[1:], bool)
        self.native_shape = shape
        self.label, self.defect_type, self.path = label, "good" if label == 0 else "dent", None


def test_predict_samples_native_resolution_and_threshold(detector: Detector) -> None:
    x = synthetic_class("rgbd", n=3, seed=5).x
    preps = [_Prep(x[0], (64, 64), 0), _Prep(x[1], (100, 80), 1), _Prep(x[2], (30, 50), 0)]
    res = predict_samples(detector, preps, batch_size=2)
    assert [r.native_map.shape for r in res] == [(64, 64), (100, 80), (30, 50)]
    direct = detector.predict(x)
    np.testing.assert_allclose([r.score for r in res], direct.scores.numpy(), atol=1e-6)
    np.testing.assert_allclose(res[0].native_map, direct.maps[0].numpy(), atol=1e-6)
    up = F.interpolate(
        direct.maps[1][None, None], size=(100, 80), mode="bilinear", align_corners=False
    )
    np.testing.assert_allclose(res[1].native_map, up[0, 0].numpy(), atol=1e-6)
    assert res[1].label == 1 and res[1].defect_type == "dent"
    thr = choose_threshold(detector, [preps[0], preps[2]])
    assert thr == pytest.approx(max(res[0].score, res[2].score))
    with pytest.raises(ThreedsrError, match="NaN"):
        choose_threshold(scores=[0.1, float("nan")])


def test_predict_samples_reports_progress_per_batch(detector: Detector) -> None:
    x = synthetic_class("rgbd", n=3, seed=5).x
    preps = [_Prep(x[k], (64, 64), 0) for k in range(3)]
    calls: list[tuple[int, int | None]] = []
    res = predict_samples(detector, preps, batch_size=2, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(2, 3), (3, 3)]
    lazy: list[tuple[int, int | None]] = []
    again = predict_samples(
        detector, iter(preps), batch_size=2, progress=lambda d, t: lazy.append((d, t))
    )
    assert lazy == [(2, None), (3, None)]
    assert [r.score for r in again] == [r.score for r in res]


def test_cpu_defaults_are_fp32_nchw(detector: Detector) -> None:
    assert not detector.bf16 and not detector.channels_last and detector.batch_size == 2
    assert detector.method == "3dsr" and detector.memory is None and detector.display is None


def test_bf16_on_cpu_is_opt_in_and_close_to_fp32(detector: Detector) -> None:
    cfg = detector.config
    net = detector.network
    fp32 = Detector(cfg, network=net, batch_size=2, smoothing="none", channels_last=False)
    bf16 = Detector(cfg, network=net, batch_size=2, smoothing="none", bf16=True)
    # bf16 brings channels_last (the fast CPU layout)
    assert bf16.bf16 and bf16.channels_last
    x = synthetic_class("rgbd", n=3, seed=5).x
    try:
        a = fp32.predict(x)
        b = bf16.predict(x)
    finally:
        net.to(memory_format=torch.contiguous_format)
    assert b.maps.dtype == torch.float32 and b.maps.shape == a.maps.shape
    assert torch.isfinite(b.maps).all()
    assert not torch.equal(a.raw_maps, b.raw_maps)  # the autocast really ran in bf16
    assert (a.raw_maps - b.raw_maps).abs().mean() < 0.05


M4 = np.ones((4, 4), np.float32)


@pytest.mark.parametrize(
    ("m", "shape", "error", "message"),
    [
        (M4, 100, TypeError, "shape must be (H, W), two ints >= 1, got 100"),
        (M4, (8.0, 8.0), TypeError, "shape must be (H, W), two ints >= 1, got (8.0, 8.0)"),
        (M4, (True, 8), TypeError, "shape must be (H, W), two ints >= 1, got (True, 8)"),
        (M4, (8,), ValueError, "shape must be (H, W), two ints >= 1, got (8,)"),
        (M4, (0, 8), ValueError, "shape must be (H, W), two ints >= 1, got (0, 8)"),
        (np.ones(4), (8, 8), ValueError, "m must be one (H, W) map with H, W >= 1, got shape (4,)"),
        (
            np.ones((0, 4)),
            (8, 8),
            ValueError,
            "m must be one (H, W) map with H, W >= 1, got shape (0, 4)",
        ),
        ("map", (8, 8), TypeError, "m must be an (H, W) array of numbers, got str"),
    ],
)
def test_upsample_map_names_the_argument_it_refuses(
    m: object, shape: object, error: type, message: str
) -> None:
    # An int shape failed on len(), a zero or float one inside F.interpolate, an empty map too.
    with pytest.raises(error) as err:
        upsample_map(m, shape)  # type: ignore[arg-type]
    assert str(err.value) == f"upsample_map: {message}"


def test_upsample_map_takes_a_tensor_that_numpy_cannot_convert() -> None:
    t = torch.ones(4, 4, requires_grad=True)  # np.asarray: "Can't call numpy() on Tensor..."
    np.testing.assert_array_equal(upsample_map(t, (6, 8)), np.ones((6, 8), np.float32))
    np.testing.assert_array_equal(upsample_map(M4, torch.Size([4, 4])), M4)
