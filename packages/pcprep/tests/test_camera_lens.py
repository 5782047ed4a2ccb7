"""Lens distortion (pcprep.camera): the models against their published formulas, distort and
undistort as inverses, and a distorted camera through depth_to_xyz, organize_points and
read_point_cloud: a scan back-projected through a lens and shuffled returns to its pixels."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pcprep import PcprepError, depth_to_xyz, organize_points, read_point_cloud
from pcprep.camera import (
    Distortion,
    distort,
    lens_arguments,
    lens_kernel,
    lens_point,
    undistort,
    unlens_point,
)
from pcprep.organize import count_landing, landing_kernel, zbuffer_kernel

# Coefficients of real lenses (an industrial camera: |k1| < 0.3), on fields of view where
# each model is one-to-one: the conditions a calibration file describes.
plumb_bob = st.tuples(
    st.floats(-0.3, 0.3), st.floats(-0.1, 0.1), st.floats(-0.01, 0.01), st.floats(-0.01, 0.01)
).map(lambda c: Distortion("plumb_bob", (*c, 0.0)))
rational = st.tuples(
    st.floats(-0.3, 0.3),
    st.floats(-0.1, 0.1),
    st.floats(-0.01, 0.01),
    st.floats(-0.01, 0.01),
    st.floats(-0.05, 0.05),
    st.floats(0.0, 0.2),
    st.floats(-0.05, 0.05),
    st.floats(-0.01, 0.01),
).map(lambda c: Distortion("rational_polynomial", c))
division = st.floats(-0.5, 0.5).map(lambda k: Distortion("division", (k,)))
lenses = st.one_of(plumb_bob, rational, division)


def _opencv_distort(x: float, y: float, c: tuple[float, ...]) -> tuple[float, float]:
    """OpenCV's documented projection model (calib3d), written term by term."""
    k1, k2, p1, p2, k3, k4, k5, k6 = (*c, 0.0, 0.0, 0.0, 0.0)[:8] if len(c) == 5 else c
    r2 = x * x + y * y
    radial = (1 + k1 * r2 + k2 * r2**2 + k3 * r2**3) / (1 + k4 * r2 + k5 * r2**2 + k6 * r2**3)
    return (
        x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x),
        y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y,
    )


@settings(max_examples=60, deadline=None)
@given(lens=st.one_of(plumb_bob, rational), x=st.floats(-0.6, 0.6), y=st.floats(-0.6, 0.6))
def test_polynomial_models_follow_opencv(lens, x, y) -> None:
    xd, yd = distort(np.array([x]), np.array([y]), lens)
    ex, ey = _opencv_distort(x, y, lens.coefficients)
    assert xd[0] == pytest.approx(ex, abs=1e-12) and yd[0] == pytest.approx(ey, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(kappa=st.floats(-0.5, 0.5), x=st.floats(-0.5, 0.5), y=st.floats(-0.5, 0.5))
def test_division_model_is_halcons(kappa, x, y) -> None:
    # HALCON area_scan_division: the undistorted point is the distorted one over 1 + kappa r_d^2
    xd, yd = distort(np.array([x]), np.array([y]), Distortion("division", (kappa,)))
    scale = 1 + kappa * (xd[0] ** 2 + yd[0] ** 2)
    assert xd[0] / scale == pytest.approx(x, abs=1e-12)
    assert yd[0] / scale == pytest.approx(y, abs=1e-12)


@settings(max_examples=80, deadline=None)
@given(lens=lenses, x=st.floats(-0.6, 0.6), y=st.floats(-0.6, 0.6))
def test_undistort_inverts_distort(lens, x, y) -> None:
    image = distort(np.array([x]), np.array([y]), lens)
    # a division lens with kappa > 0 folds within this square (1 - 4 kappa r^2 < 0): NaN there
    assume(np.isfinite(image[0][0]))
    back = undistort(*image, lens)
    np.testing.assert_allclose([back[0][0], back[1][0]], [x, y], atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(lens=lenses, n=st.integers(0, 50), inverse=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_lens_kernel_py_func_matches_compiled(lens, n, inverse, seed) -> None:
    rng = np.random.default_rng(seed)
    x, y = rng.uniform(-1.5, 1.5, (2, n))  # some past a lens's fold: NaN in both
    x[rng.random(n) < 0.1] = np.nan
    model, c = lens_arguments(lens)
    compiled = (np.empty(n), np.empty(n))
    lens_kernel(x, y, model, c, inverse, *compiled)
    python = (np.empty(n), np.empty(n))
    lens_kernel.py_func(x, y, model, c, inverse, *python)
    np.testing.assert_array_equal(compiled, python)
    point = (unlens_point if inverse else lens_point).py_func
    for i in range(n):
        np.testing.assert_array_equal(point(x[i], y[i], model, c), (python[0][i], python[1][i]))


def test_no_lens_and_zero_coefficients_change_nothing() -> None:
    x, y = np.array([0.1, -0.4]), np.array([0.3, 0.2])
    for lens in (None, Distortion("plumb_bob", (0.0,) * 5), Distortion("division", (0.0,))):
        for f in (distort, undistort):
            out = f(x, y, lens)
            np.testing.assert_array_equal(out[0], x)
            np.testing.assert_array_equal(out[1], y)


def test_points_a_lens_cannot_image_are_nan_and_lost() -> None:
    lens = Distortion("division", (1.0,))  # folds at r^2 = 1 / (4 kappa) = 0.25
    xd, _ = distort(np.array([0.4, 0.6]), np.array([0.0, 0.0]), lens)
    assert np.isfinite(xd[0]) and np.isnan(xd[1])
    pts = np.array([[0.0, 0.0, 1.0], [0.6, 0.0, 1.0], [0.0, 0.0, -1.0]])
    # the second point lands on the 40x40 grid through a pinhole but not through the lens
    assert count_landing(pts, (40, 40), 20.0) == (3, 2)
    assert count_landing(pts, (40, 40), 20.0, distortion=lens) == (3, 1)


@pytest.mark.parametrize(
    ("model", "coefficients", "message"),
    [
        ("fisheye", (0.1,), "distortion model must be one of"),
        ("plumb_bob", (0.1, 0.2), "plumb_bob distortion takes 4 or 5 finite coefficients"),
        ("division", (float("nan"),), "division distortion takes 1 finite coefficients"),
        ("rational_polynomial", "abc", "rational_polynomial distortion takes 8"),
    ],
)
def test_bad_lenses_are_refused_naming_the_model(model, coefficients, message) -> None:
    with pytest.raises(ValueError, match=message):
        Distortion.checked(model, coefficients)


def test_json_form_is_accepted() -> None:
    assert Distortion.of(["plumb_bob", [0.1, 0, 0, 0]]) == Distortion(
        "plumb_bob", (0.1, 0.0, 0.0, 0.0)
    )
    assert Distortion.of(None) is None
    with pytest.raises(ValueError, match="distortion must be"):
        Distortion.of("division")


@settings(max_examples=40, deadline=None)
@given(
    h=st.integers(2, 30),
    w=st.integers(2, 30),
    zoom=st.floats(2.0, 3.0),
    aspect=st.floats(0.8, 1.25),
    lens=lenses,
    seed=st.integers(0, 2**32 - 1),
)
def test_a_scan_back_projected_through_a_lens_returns_to_its_pixels(
    h, w, zoom, aspect, lens, seed
) -> None:
    # a focal length of twice the grid's side, the principal point near the middle: every
    # pixel within r < 0.45, where each lens images a point (a barrel folds further out)
    rng = np.random.default_rng(seed)
    depth = rng.uniform(0.2, 3.0, (h, w))
    depth[rng.random((h, w)) < 0.2] = 0.0
    colours = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    focal = (zoom * max(h, w), zoom * max(h, w) * aspect)
    centre = tuple(rng.uniform(0.45, 0.55, 2) * (w, h))
    xyz = depth_to_xyz(depth, focal_px=focal, principal_point=centre, distortion=lens)
    valid = depth > 0
    order = rng.permutation(int(valid.sum()))
    out, out_rgb = organize_points(
        xyz[valid][order],
        colours[valid][order],
        shape=(h, w),
        focal_px=focal,
        principal_point=centre,
        distortion=lens,
    )
    np.testing.assert_array_equal(out, xyz)
    np.testing.assert_array_equal(out_rgb[valid], colours[valid])


def test_pixels_beyond_a_barrel_s_reach_have_no_ray() -> None:
    # r (1 - 0.25 r^2) reaches at most 0.77: a pixel imaged farther out matches no point
    lens = Distortion("plumb_bob", (-0.25, 0.0, 0.0, 0.0))
    x, _ = undistort(np.array([0.5, 0.9]), np.array([0.0, 0.0]), lens)
    assert np.isfinite(x[0]) and np.isnan(x[1])
    xyz = depth_to_xyz(np.ones((1, 2)), focal_px=1.0, principal_point=(0.0, 0.0), distortion=lens)
    assert xyz[0, 0].tolist() == [0.0, 0.0, 1.0]
    assert xyz[0, 1].tolist() == [0.0, 0.0, 0.0]  # rd = 1: invalid, as a pixel without depth
    division = Distortion("division", (-1.0,))  # 1 + kappa rd^2 <= 0 at rd >= 1
    assert np.isnan(undistort(np.array([1.2]), np.array([0.0]), division)[0]).all()


def test_depth_to_xyz_undistorts_each_pixels_ray() -> None:
    lens = Distortion("plumb_bob", (-0.2, 0.05, 0.001, -0.002, 0.0))
    depth = np.full((6, 8), 2.0)
    xyz = depth_to_xyz(depth, focal_px=(10.0, 11.0), principal_point=(3.5, 2.5), distortion=lens)
    xd, yd = distort(xyz[..., 0] / xyz[..., 2], xyz[..., 1] / xyz[..., 2], lens)
    rows, cols = np.mgrid[0:6, 0:8]
    np.testing.assert_allclose(10.0 * xd + 3.5, cols, atol=1e-5)
    np.testing.assert_allclose(11.0 * yd + 2.5, rows, atol=1e-5)


def test_an_unorganized_cloud_file_is_projected_through_the_lens(cloud_bytes, tmp_path) -> None:
    lens = Distortion("division", (-0.3,))
    rng = np.random.default_rng(3)
    depth = rng.uniform(0.5, 1.0, (12, 16))
    xyz = depth_to_xyz(depth, focal_px=16.0, principal_point=(7.5, 5.5), distortion=lens)
    order = rng.permutation(12 * 16)
    path = tmp_path / "scan.pcd"
    path.write_bytes(cloud_bytes.pcd_bytes(xyz.reshape(1, -1, 3)[:, order], None, "binary"))
    camera = dict(grid_shape=(12, 16), focal_px=16.0, principal_point=(7.5, 5.5))
    np.testing.assert_array_equal(read_point_cloud(path, **camera, distortion=lens).xyz, xyz)
    # through a pinhole the barrel's corner points miss the grid: refused, not misplaced
    with pytest.raises(PcprepError, match="fall off the 16x12 grid"):
        read_point_cloud(path, **camera)
    # the same points in row order are an ordered export: laid out as written with the lens
    path.write_bytes(cloud_bytes.pcd_bytes(xyz.reshape(1, -1, 3), None, "binary"))
    ordered = read_point_cloud(path, **camera, distortion=["division", [-0.3]])
    np.testing.assert_array_equal(ordered.xyz, xyz)


@settings(max_examples=40, deadline=None)
@given(lens=lenses, n=st.integers(0, 200), seed=st.integers(0, 2**32 - 1))
def test_the_kernels_lens_is_distort(lens, n, seed) -> None:
    """The z-buffer's per-point lens (compiled and through py_func) lands each point on the
    pixel that `distort` gives, and drops the same points."""
    rng = np.random.default_rng(seed)
    h, w, fx, fy, cx, cy = 20, 24, 30.0, 31.0, 11.5, 9.5
    pts = np.column_stack([rng.uniform(-0.8, 0.8, (n, 2)), rng.uniform(0.5, 1.5, n)])
    pts[rng.random(n) < 0.1, 2] = -1.0
    args = (pts, fx, fy, cx, cy, h, w, *lens_arguments(lens))
    index = zbuffer_kernel(*args)
    np.testing.assert_array_equal(index, zbuffer_kernel.py_func(*args))
    assert landing_kernel(*args) == landing_kernel.py_func(*args)
    with np.errstate(invalid="ignore"):
        xd, yd = distort(pts[:, 0] / pts[:, 2], pts[:, 1] / pts[:, 2], lens)
    u, v = np.floor(fx * xd + cx + 0.5), np.floor(fy * yd + cy + 0.5)
    lands = (pts[:, 2] > 0) & (u >= 0) & (u < w) & (v >= 0) & (v < h)
    assert landing_kernel(*args) == (n, int(lands.sum()))
    for k in np.flatnonzero(index.ravel() >= 0):
        at = index.ravel()[k]
        assert (v[at], u[at]) == divmod(k, w)


def test_a_real_calibration_s_lens_describes_its_scans(real_data) -> None:
    """MVTec 3D-AD's xyz TIFFs hold each point on its own pixel: the class's HALCON division
    lens (read_camera) scatters them around their common offset by about 0.14 px; its pinhole
    alone by 0.52 / 0.37 px (column / row; docs/bench/pcprep.md, "A camera's calibration file")."""
    import tifffile
    from pcprep import read_camera

    root = real_data / "mvtec3d_ad" / "cable_gland"
    cam = read_camera(root / "calibration" / "camera_parameters.json")
    xyz = tifffile.imread(root / "test" / "cut" / "xyz" / "000.tiff").astype(np.float64)
    rows, cols = np.nonzero(xyz[..., 2] > 0)
    x, y, z = (xyz[rows, cols, i] for i in range(3))
    spread = {}
    for name, lens in (("pinhole", None), ("lens", cam.distortion)):
        xd, yd = distort(x / z, y / z, lens)
        u = cam.focal_px[0] * xd + cam.principal_point[0] - cols
        v = cam.focal_px[1] * yd + cam.principal_point[1] - rows
        spread[name] = (u.std(), v.std())
    assert max(spread["lens"]) < 0.2 < 0.3 < min(spread["pinhole"])
