"""`preprocess` on degenerate inputs: a clear error naming the file, never NaN."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pcprep import PcprepError, Sample, preprocess
from pcprep.synthetic import synthetic_scan

PATH = Path("scans/xyz/007.tiff")


def scan_sample(**kw) -> Sample:
    s = synthetic_scan((48, 64), rng=1, **kw).sample
    s.path = PATH
    return s


def expect(sample: Sample, message: str, **kw) -> None:
    with pytest.raises(PcprepError, match=r"^scans/xyz/007\.tiff: " + message):
        preprocess(sample, size=32, **kw)


def test_all_invalid():
    s = scan_sample()
    s.xyz[:] = 0
    expect(s, "all points are invalid")


def test_all_non_finite_is_all_invalid():
    s = scan_sample()
    s.xyz[..., 0] = np.nan
    s.xyz[:5, :, 2] = np.inf
    expect(s, "all points are invalid")


def test_partial_nan_and_inf_are_invalid_points_not_nan_outputs():
    s = scan_sample()
    s.xyz[::3, ::2, 2] = np.nan
    s.xyz[1::5, 1::3, 0] = -np.inf
    out = preprocess(s, size=(48, 64))
    bad = ~np.isfinite(s.xyz).all(-1)
    assert not out.valid[bad].any()
    for arr in (out.depth, out.rgb, out.plane):
        assert np.isfinite(arr).all()
    assert out.foreground.any() and out.depth.max() <= 0.9


def test_no_valid_border_points():
    s = scan_sample()
    s.xyz[:8] = s.xyz[-8:] = 0
    s.xyz[:, :8] = s.xyz[:, -8:] = 0
    expect(s, "only 0 valid points in the image border band")
    out = preprocess(s, size=(48, 64), plane="robust", border_band=0.25)
    assert out.foreground.any()


def test_collinear_border_points():
    s = scan_sample()
    s.xyz[:] = 0
    s.xyz[20, :, 2] = 0.5  # one valid row: a line, no plane
    s.xyz[20, :, 0] = np.linspace(0, 0.1, 64)
    with pytest.raises(PcprepError, match=r"^scans/xyz/007\.tiff: background points are collinear"):
        preprocess(s, size=(48, 64), border_band=0.5)


def test_empty_foreground():
    expect(scan_sample(bump_height=0.0), r"empty foreground: no valid point is more than 0\.005")
    expect(scan_sample(bump_height=0.003), "empty foreground")  # below the threshold
    out = preprocess(scan_sample(bump_height=0.003), size=32, fg_threshold=0.001)
    assert out.foreground.any()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("xyz", np.zeros((8, 8, 3), np.int32), "xyz must be float"),
        ("xyz", np.zeros((8, 8, 4), np.float32), r"xyz must be \(H, W, 3\), got shape \(8, 8, 4\)"),
        ("xyz", np.zeros((8, 8), np.float32), r"xyz must be \(H, W, 3\)"),
        ("xyz", np.zeros((1, 8, 3), np.float32), "point cloud too small"),
        ("rgb", np.zeros((48, 64, 3), np.float32), "rgb must be uint8"),
        ("rgb", np.zeros((48, 64), np.uint8), r"rgb must be \(H, W, 3\)"),
        (
            "rgb",
            np.zeros((40, 64, 3), np.uint8),
            r"rgb size \(40, 64\) does not match xyz size \(48, 64\)",
        ),
        ("gt", np.zeros((40, 64), bool), "gt size"),
    ],
)
def test_malformed_arrays(field, value, message):
    s = scan_sample()
    if field == "xyz" and value.ndim == 3 and value.shape[-1] == 3 and value.shape[0] > 1:
        s.rgb = np.zeros((*value.shape[:2], 3), np.uint8)
    setattr(s, field, value)
    expect(s, message)


def test_bad_parameters_are_value_errors():
    s = scan_sample()
    with pytest.raises(ValueError, match="plane"):
        preprocess(s, plane="ransac")
    with pytest.raises(ValueError, match="fg_threshold"):
        preprocess(s, fg_threshold=float("nan"))
    with pytest.raises(TypeError, match=r"sample must be a pcprep\.Sample .*, got str"):
        preprocess("scan.tiff")  # type: ignore[arg-type]


def test_output_contract_non_square():
    s = scan_sample(noise=0.0005, dropout=0.05)
    s.gt = np.zeros(s.shape, bool)
    s.gt[10:20, 30:40] = True
    out = preprocess(s, size=(40, 56))
    assert out.depth.shape == (40, 56) and out.depth.dtype == np.float32
    assert out.rgb.shape == (40, 56, 3) and out.rgb.dtype == np.float32
    assert out.valid.dtype == bool and out.foreground.dtype == bool
    assert out.gt.dtype == np.float32 and set(np.unique(out.gt)) == {0.0, 1.0}
    assert out.native_shape == (48, 64) and out.path == PATH
    assert out.rgbd().shape == (4, 40, 56)
    nz = out.depth[out.depth > 0]
    assert nz.min() >= 0.1 - 1e-6 and nz.max() <= 0.9 + 1e-6


def test_hole_filling_only_fills_zeros():
    s = scan_sample(dropout=0.2)
    raw = preprocess(s, size=(48, 64), fill_iterations=0)
    filled = preprocess(s, size=(48, 64), fill_iterations=2)
    keep = raw.depth != 0
    np.testing.assert_array_equal(filled.depth[keep], raw.depth[keep])
    assert (filled.depth > 0).sum() > keep.sum()


def test_drop_border_objects_removes_rails_and_keeps_an_object_that_reaches_the_border():
    s = scan_sample()
    plain = preprocess(s, size=32)
    centre = plain.foreground.copy()
    assert centre.any() and not centre[0].any()
    s.xyz[:4, :, 2] -= 0.02  # a rail along the top edge, 2 cm above the support
    railed = preprocess(s, size=32)
    dropped = preprocess(s, size=32, drop_border_objects=True)
    assert railed.foreground[0].all()
    np.testing.assert_array_equal(dropped.foreground, centre)
    # the object itself touches the border: nothing else is left, so the mask stays whole
    s = scan_sample(bump_height=0.0)
    s.xyz[:, :12, 2] -= 0.02
    whole = preprocess(s, size=32, drop_border_objects=True)
    assert whole.foreground[:, 0].all()
    np.testing.assert_array_equal(whole.foreground, preprocess(s, size=32).foreground)


def _wedge_on_tilted_support(tilt: float) -> Sample:
    """A wedge on a support that recedes from the camera by ``tilt`` per metre of y: its height
    above the support rises from 1 to 2 cm along x and does not change along y."""
    yy, xx = np.mgrid[0:64, 0:64] / 64.0 * 0.2  # 20 cm field
    support = 1.0 + tilt * yy
    normal = np.array([0.0, -tilt, 1.0]) / np.hypot(1.0, tilt)
    height = np.zeros((64, 64))
    height[16:48, 16:48] = 0.01 + 0.05 * xx[16:48, 16:48]
    # above the support along its normal, towards the camera (the -z side)
    xyz = np.stack([xx, yy, support], -1) - height[..., None] * normal
    return Sample(xyz.astype(np.float32), np.zeros((64, 64, 3), np.uint8))


@pytest.mark.parametrize("tilt", [0.5, -0.5, 2.0])
def test_plane_depth_axis_measures_height_not_the_supports_tilt(tilt):
    sample = _wedge_on_tilted_support(tilt)
    camera = preprocess(sample, size=64, depth_axis="camera")
    plane = preprocess(sample, size=64, depth_axis="plane")
    assert (camera.foreground == plane.foreground).all()
    inner = (slice(20, 44), slice(20, 44))
    # Along y the wedge's height is constant: so is its plane depth, not its camera z.
    assert np.ptp(plane.depth[inner], axis=0).max() < 1e-3
    assert np.ptp(camera.depth[inner], axis=0).min() > 0.1
    # Along x it rises towards the camera: lower values, as camera z would give untilted.
    assert (np.diff(plane.depth[inner], axis=1) < 0).all()


def test_plane_depth_axis_is_anchored_at_the_plane_not_at_the_lowest_foreground_point():
    # Over a fronto-parallel support (z = 1) the height is 1 - z: the plane maps to 0.9 and the
    # top to 0.1 whatever the foreground's lowest point, unlike camera z's min-max.
    sample = _wedge_on_tilted_support(0.0)
    sample.xyz[30:34, 44:46, 2] -= 0.01  # a bump 1 cm nearer the camera
    prepared = preprocess(sample, size=64, depth_axis="plane")
    keep = prepared.foreground & prepared.valid
    height = 1.0 - sample.xyz[..., 2].astype(np.float64)
    expected = 0.9 - 0.8 * np.maximum(height, 0) / height[keep].max()
    np.testing.assert_allclose(prepared.depth[keep], expected[keep], atol=1e-5)
    camera = preprocess(sample, size=64, depth_axis="camera").depth
    assert camera[keep].max() == pytest.approx(0.9) and prepared.depth[keep].max() < 0.62
    with pytest.raises(ValueError, match="depth_axis"):
        preprocess(sample, size=64, depth_axis="normal")


def test_a_scan_without_colour_keeps_its_depth_and_says_so():
    with_colour = scan_sample()
    without = Sample(with_colour.xyz, None, path=PATH)
    a, b = preprocess(with_colour, size=32), preprocess(without, size=32)
    assert a.colour and not b.colour
    assert b.rgb.shape == (32, 32, 3) and b.rgb.dtype == np.float32 and not b.rgb.any()
    for field in ("depth", "valid", "foreground", "plane"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)


def test_the_cache_keeps_whether_a_scan_had_colour(tmp_path):
    from pcprep.cache import load_prepared, save_prepared

    prepared = preprocess(Sample(scan_sample().xyz, None, path=PATH), size=32)
    save_prepared(tmp_path / "a.npz", prepared)
    assert load_prepared(tmp_path / "a.npz").colour is False
    # An entry written before the field came from a scan with colour.
    with np.load(tmp_path / "a.npz") as z:
        np.savez(tmp_path / "old.npz", **{k: z[k] for k in z.files if k != "colour"})
    assert load_prepared(tmp_path / "old.npz").colour is True
