"""organize_points: unorganized points back onto the pixel grid (pinhole + z-buffer), the raw
points of an unorganized cloud (read_cloud_points), and the README's "Unorganized clouds"
example run on a generated cloud."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pcprep
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pcprep import PcprepError, depth_to_xyz, organize_points, read_cloud_points
from pcprep.camera import lens_arguments
from pcprep.organize import gather_rows_kernel, landing_kernel, zbuffer_kernel

README = Path(__file__).resolve().parents[1] / "README.md"
NO_LENS = lens_arguments(None)


def _scan(h: int, w: int, seed: int, holes: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """A depth map in metres with holes (zeros) and a colour image."""
    rng = np.random.default_rng(seed)
    depth = rng.uniform(0.2, 3.0, (h, w))
    depth[rng.random((h, w)) < holes] = 0.0
    return depth, rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _shuffled(xyz: np.ndarray, rgb: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The valid points of a grid and their colours, flattened in a random order."""
    valid = xyz[..., 2] > 0
    order = np.random.default_rng(seed).permutation(int(valid.sum()))
    return xyz[valid][order], rgb[valid][order]


@settings(max_examples=40, deadline=None)
@given(
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    focal=st.floats(0.5, 3000.0),
    aspect=st.floats(0.5, 2.0),
    centre=st.sampled_from(["default", "pixel-centre", "random"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_back_projected_grid_reorganizes_exactly(h, w, focal, aspect, centre, seed) -> None:
    depth, rgb = _scan(h, w, seed)
    focal_px = (focal, focal * aspect)
    principal = {
        "default": None,  # both default to (W / 2, H / 2)
        "pixel-centre": ((w - 1) / 2, (h - 1) / 2),
        "random": tuple(np.random.default_rng(seed).uniform(-w, 2 * w, 2).tolist()),
    }[centre]
    xyz = depth_to_xyz(depth, focal_px=focal_px, principal_point=principal)
    points, colours = _shuffled(xyz, rgb, seed)
    out, out_rgb = organize_points(
        points, colours, shape=(h, w), focal_px=focal_px, principal_point=principal
    )
    assert out.dtype == np.float32 and out_rgb.dtype == np.uint8
    np.testing.assert_array_equal(out, xyz)  # the holes are zeros in both
    valid = depth > 0
    np.testing.assert_array_equal(out_rgb[valid], rgb[valid])
    assert not out_rgb[~valid].any()


ONE_PIXEL = {"shape": (1, 1), "focal_px": 1.0, "principal_point": (0.0, 0.0)}


def test_zbuffer_keeps_the_nearer_point_and_the_first_of_equal_depths() -> None:
    near, far = [0.0, 0.0, 1.0], [0.0, 0.0, 2.0]
    colours = np.array([[1, 1, 1], [2, 2, 2]], dtype=np.uint8)
    for pts in ([near, far], [far, near]):
        xyz, rgb = organize_points(np.array(pts), colours, **ONE_PIXEL)
        assert xyz[0, 0].tolist() == near
        assert rgb[0, 0].tolist() == colours[pts.index(near)].tolist()
    # the same z: the first in input order, whatever its x (both round to the pixel)
    tie = np.array([[0.2, 0.0, 1.0], [-0.2, 0.0, 1.0]])
    for order in ([0, 1], [1, 0]):
        xyz, rgb = organize_points(tie[order], colours[order], **ONE_PIXEL)
        assert xyz[0, 0].tolist() == np.float32(tie[order[0]]).tolist()
        assert rgb[0, 0, 0] == order[0] + 1


def test_invalid_and_off_grid_points_are_dropped() -> None:
    dropped = [
        [np.nan, 0.0, 1.0],
        [0.0, np.inf, 1.0],
        [0.0, 0.0, np.nan],
        [0.0, 0.0, np.inf],
        [0.0, 0.0, 0.0],
        [0.0, 0.0, -1.0],
        [1.0, 0.0, 1.0],  # u = 2.5: right of the 3 columns (the last ends before 2.5)
        [-2.1, 0.0, 1.0],  # u = -0.6: left of the first (from -0.5)
        [0.0, 0.5, 1.0],  # v = 1.5: below the 2 rows
        [1e300, 0.0, 1e-300],  # u overflows to inf
    ]
    # (u, v): (1.5, 1) and (2.4, 1) both on pixel (1, 2); (-0.5, -0.5) on (0, 0)
    kept = [[0.0, 0.0, 1.0], [0.9, 0.0, 1.0], [-2.0, -1.5, 1.0]]
    xyz, _ = organize_points(
        np.array(dropped + kept), shape=(2, 3), focal_px=1.0, principal_point=(1.5, 1.0)
    )
    assert np.count_nonzero(xyz[..., 2]) == 2  # three points kept, two on one pixel
    assert xyz[1, 2].tolist() == np.float32(kept[0]).tolist()  # halves round up: u 1.5 -> 2
    assert xyz[1, 2].tolist() != np.float32(kept[1]).tolist()  # the first of equal z stays
    assert xyz[0, 0].tolist() == np.float32(kept[2]).tolist()  # u = v = -0.5: the corner
    # nothing valid: an all-zero grid, as an all-invalid organized cloud
    xyz, rgb = organize_points(np.array(dropped), shape=(2, 3), focal_px=1.0)
    assert not xyz.any() and rgb is None


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(0, 300),
    h=st.integers(1, 12),
    w=st.integers(1, 12),
    focal=st.floats(0.1, 50.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_kernel_py_func_matches_compiled(n, h, w, focal, seed) -> None:
    rng = np.random.default_rng(seed)
    pts = rng.normal(0.0, 1.0, (n, 3))
    pts[:, 2] += 1.0  # some behind the camera
    pts[rng.random((n, 3)) < 0.05] = np.nan
    pts[rng.random(n) < 0.2, 2] = 1.0  # many equal depths: ties
    args = (np.ascontiguousarray(pts), focal, focal * 1.5, w / 3, h / 2, h, w, *NO_LENS)
    compiled = zbuffer_kernel(*args)
    np.testing.assert_array_equal(compiled, zbuffer_kernel.py_func(*args))
    assert compiled.shape == (h, w) and compiled.min() >= -1

    # the gather that lays the kept points out, compiled and through py_func, as numpy's
    want = np.zeros((h, w, 3))
    want[compiled >= 0] = args[0][compiled[compiled >= 0]]
    for kernel in (gather_rows_kernel, gather_rows_kernel.py_func):
        got = kernel(args[0], compiled, np.zeros((h, w, 3), dtype=np.float32))
        np.testing.assert_array_equal(got, want.astype(np.float32))


BAD_ARGUMENTS = {
    "points 2 columns": ({"points": np.zeros((5, 2))}, "points must be (N, 3), got (5, 2)"),
    "points flat": ({"points": np.zeros(3)}, "points must be (N, 3), got (3,)"),
    "points strings": ({"points": np.array([["a", "b", "c"]])}, "points must be real numbers"),
    "colours count": (
        {"colours": np.zeros((4, 3), np.uint8)},
        "colours must be (N, 3) with N = 5, got (4, 3)",
    ),
    "colours dtype": ({"colours": np.zeros((5, 3))}, "colours must be uint8, got dtype float64"),
    "shape zero": ({"shape": (0, 4)}, "shape must be (H, W) of positive integers, got (0, 4)"),
    "shape float": ({"shape": (2.0, 4)}, "shape must be (H, W) of positive integers"),
    "shape one dim": ({"shape": (4,)}, "shape must be (H, W) of positive integers"),
    "focal negative": ({"focal_px": -1.0}, "focal_px must be a positive finite number"),
    "focal zero fy": ({"focal_px": (1.0, 0.0)}, "focal_px must be a positive finite number"),
    "focal three": ({"focal_px": (1.0, 2.0, 3.0)}, "focal_px must be"),
    "focal nan": ({"focal_px": float("nan")}, "focal_px must be"),
    "principal one": ({"principal_point": 3.0}, "principal_point must be (cx, cy) finite"),
    "principal inf": ({"principal_point": (np.inf, 1.0)}, "principal_point must be (cx, cy)"),
}


@pytest.mark.parametrize("name", sorted(BAD_ARGUMENTS))
def test_bad_arguments_give_one_line_value_errors(name: str) -> None:
    change, expected = BAD_ARGUMENTS[name]
    kwargs = {"points": np.ones((5, 3)), "shape": (3, 4), "focal_px": 2.0, **change}
    with pytest.raises(ValueError) as info:
        organize_points(**kwargs)
    assert "\n" not in str(info.value) and str(info.value).startswith(expected), info.value


def _unorganized_pcd(cloud_bytes, path: Path, points: np.ndarray, colours) -> None:
    path.write_bytes(cloud_bytes.pcd_bytes(points.reshape(1, -1, 3), colours, "binary"))


@pytest.mark.parametrize("suffix", [".pcd", ".ply"])
def test_unorganized_cloud_error_names_the_way_out(cloud_bytes, tmp_path, suffix) -> None:
    depth, rgb = _scan(4, 5, 0, holes=0.0)
    xyz = depth_to_xyz(depth, focal_px=4.0)
    path = tmp_path / f"scan{suffix}"
    if suffix == ".pcd":
        _unorganized_pcd(cloud_bytes, path, xyz, rgb)
    else:
        path.write_bytes(cloud_bytes.ply_bytes(xyz, rgb, grid="none"))
    with pytest.raises(PcprepError) as info:
        pcprep.read_point_cloud(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}: unorganized point cloud")
    assert "--grid WxH --focal-px F" in message and "grid_shape=(H, W), focal_px=F" in message
    # ... and both ways out work: the file's points back onto the grid
    points, colours = read_cloud_points(path)
    assert points.shape == (20, 3) and colours.shape == (20, 3)
    out, out_rgb = organize_points(points, colours, shape=(4, 5), focal_px=4.0)
    np.testing.assert_array_equal(out, xyz)
    np.testing.assert_array_equal(out_rgb, rgb)
    cloud = pcprep.read_point_cloud(path, grid_shape=(4, 5), focal_px=4.0)
    np.testing.assert_array_equal(cloud.xyz, xyz)
    np.testing.assert_array_equal(cloud.rgb, rgb)


@pytest.mark.parametrize("suffix", [".pcd", ".ply"])
def test_read_pair_projects_an_unorganized_cloud_onto_the_grid(cloud_bytes, tmp_path, suffix):
    """An unorganized cloud in millimetres from a camera with its principal point off centre:
    read_pair gives the organized scan in metres that its depth map gives."""
    depth, rgb = _scan(12, 16, 3)
    focal, centre = (20.0, 22.0), (7.25, 5.5)
    xyz_mm = depth_to_xyz(depth * 1000.0, focal_px=focal, principal_point=centre)
    points, colours = _shuffled(xyz_mm, rgb, 3)
    path = tmp_path / f"scan{suffix}"
    if suffix == ".pcd":
        _unorganized_pcd(cloud_bytes, path, points, colours)
    else:
        path.write_bytes(cloud_bytes.ply_bytes(points.reshape(1, -1, 3), colours, grid="none"))
    opts = {"grid_shape": (12, 16), "focal_px": focal, "principal_point": centre}
    sample = pcprep.read_pair(path, None, depth_unit="mm", **opts)
    expected = depth_to_xyz(depth, focal_px=focal, principal_point=centre)
    np.testing.assert_allclose(sample.xyz, expected, rtol=1e-6, atol=1e-9)
    valid = depth > 0
    np.testing.assert_array_equal(sample.rgb[valid], rgb[valid])
    assert not sample.rgb[~valid].any()
    # the depth map itself reads the same through the same camera
    np.save(tmp_path / "depth.npy", depth.astype(np.float32))
    from_depth = pcprep.read_pair(tmp_path / "depth.npy", None, **opts)
    np.testing.assert_allclose(from_depth.xyz, expected, rtol=1e-6)


def test_an_organized_cloud_keeps_its_own_grid(cloud_bytes, tmp_path) -> None:
    depth, rgb = _scan(4, 5, 2)
    xyz = depth_to_xyz(depth, focal_px=4.0)
    path = tmp_path / "scan.pcd"
    path.write_bytes(cloud_bytes.pcd_bytes(xyz, rgb, "binary"))
    cloud = pcprep.read_point_cloud(path, grid_shape=(40, 50), focal_px=1.0)
    np.testing.assert_array_equal(cloud.xyz, xyz)


@pytest.mark.parametrize(
    ("opts", "expected"),
    [
        ({"grid_shape": (4, 5)}, "unorganized point cloud: projecting it onto a grid needs"),
        ({"grid_shape": (5, 4), "focal_px": 4.0}, "3 of its 20 points (15%) fall off the 4x5"),
        ({"grid_shape": (4, 5), "focal_px": 40.0}, "of its 20 points"),
        ({"grid_shape": (4, 5), "focal_px": 4.0, "principal_point": (9, 9)}, "20 of its 20"),
        ({"grid_shape": (4, 0), "focal_px": 4.0}, "shape must be (H, W) of positive integers"),
        ({"grid_shape": (1, 5), "focal_px": 4.0}, "grid too small: 5x1"),
        ({"grid_shape": (4, 5), "focal_px": -1.0}, "focal_px must be a positive"),
    ],
)
def test_a_projection_that_loses_the_cloud_is_refused(cloud_bytes, tmp_path, opts, expected):
    depth, rgb = _scan(4, 5, 0, holes=0.0)
    path = tmp_path / "scan.pcd"
    # shuffled: 20 points in row-major order would read as an ordered 4x5 or 5x4 cloud
    points, colours = _shuffled(depth_to_xyz(depth, focal_px=4.0), rgb, 0)
    _unorganized_pcd(cloud_bytes, path, points, colours)
    with pytest.raises(PcprepError) as info:
        pcprep.read_pair(path, None, **opts)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}: "), message
    assert expected in message, message


def test_a_cloud_behind_the_camera_is_refused(cloud_bytes, tmp_path) -> None:
    """A cloud in a world frame (z up, half of it below z = 0) is not a camera's view."""
    depth, rgb = _scan(4, 5, 0, holes=0.0)
    xyz = depth_to_xyz(depth, focal_px=4.0)
    xyz[..., 2] -= np.median(xyz[..., 2])
    path = tmp_path / "scan.pcd"
    _unorganized_pcd(cloud_bytes, path, xyz, rgb)
    with pytest.raises(PcprepError, match="behind the camera"):
        pcprep.read_point_cloud(path, grid_shape=(4, 5), focal_px=4.0)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 30),
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    focal=st.floats(0.1, 50.0),
    centre=st.none() | st.tuples(st.floats(-10, 20), st.floats(-10, 20)),
    seed=st.integers(0, 2**32 - 1),
)
def test_count_landing_counts_where_the_kernel_puts_points(n, h, w, focal, centre, seed):
    rng = np.random.default_rng(seed)
    points = rng.normal(0.0, 2.0, (n, 3))
    points[rng.random(n) < 0.1] = np.nan
    points[rng.random(n) < 0.1, 0] = np.inf
    points[rng.random(n) < 0.1] = 0.0  # a sensor's invalid points
    cx, cy = (w / 2.0, h / 2.0) if centre is None else centre
    landed = sum(
        bool((zbuffer_kernel(points[k : k + 1], focal, focal, cx, cy, h, w, *NO_LENS) >= 0).any())
        for k in range(n)
    )
    valid = int((np.isfinite(points).all(1) & (points[:, 2] != 0)).sum())
    assert pcprep.organize.count_landing(points, (h, w), focal, centre) == (valid, landed)
    args = (np.ascontiguousarray(points), focal, focal, cx, cy, h, w, *NO_LENS)
    with np.errstate(invalid="ignore"):  # inf - inf in Python floats
        assert landing_kernel.py_func(*args) == (valid, landed)


def test_readme_unorganized_example_runs(cloud_bytes, tmp_path, monkeypatch) -> None:
    """The README's example, on a generated 480x640 cloud at its focal length: the .npy and
    .png it saves read back through read_pair as the grid the cloud came from."""
    text = README.read_text()
    section = text[text.index("## Unorganized clouds") :]
    block = re.findall(r"```python\n(.*?)```", section, re.S)[0]
    focal = float(re.search(r"focal_px=([0-9.]+)", block).group(1))
    depth, rgb = _scan(480, 640, 1)
    xyz = depth_to_xyz(depth, focal_px=focal)
    points, colours = _shuffled(xyz, rgb, 1)
    monkeypatch.chdir(tmp_path)
    _unorganized_pcd(cloud_bytes, tmp_path / "scan.pcd", points, colours)
    exec(compile(block, str(README), "exec"), {})
    sample = pcprep.read_pair("scan_xyz.npy", "scan_rgb.png")
    np.testing.assert_array_equal(sample.xyz, xyz)
    valid = depth > 0
    np.testing.assert_array_equal(sample.rgb[valid], rgb[valid])


def _distorted(xyz: np.ndarray, k: float) -> np.ndarray:
    """``xyz`` with a radial lens distortion (x, y scaled by 1 + k r^2 about the optical axis):
    what a pinhole does not model, so projecting moves points off their pixels."""
    out = xyz.copy()
    r2 = (out[..., 0] ** 2 + out[..., 1] ** 2) / np.maximum(out[..., 2], 1e-9) ** 2
    out[..., :2] *= (1.0 + k * r2)[..., None]
    return out


@pytest.mark.parametrize("suffix", [".pcd", ".ply"])
def test_an_ordered_cloud_without_a_stated_grid_is_laid_out_as_written(
    cloud_bytes, tmp_path, suffix
) -> None:
    """An "ordered" export (every pixel's point, NaN where invalid, in row-major order) whose
    header states no grid: read exactly as written, not through the pinhole, which would
    shuffle the points a distorting lens moved (here by up to ~1.5 px)."""
    depth, rgb = _scan(30, 40, 5)
    xyz = _distorted(depth_to_xyz(depth, focal_px=35.0), 0.08)
    xyz[depth == 0] = np.nan
    flat = xyz.reshape(1, -1, 3)
    path = tmp_path / f"scan{suffix}"
    if suffix == ".pcd":
        _unorganized_pcd(cloud_bytes, path, flat, rgb.reshape(-1, 3))
    else:
        path.write_bytes(cloud_bytes.ply_bytes(flat, rgb.reshape(1, -1, 3), grid="none"))
    cloud = pcprep.read_point_cloud(path, grid_shape=(30, 40), focal_px=35.0)
    want = np.where(np.isnan(xyz), 0.0, xyz).astype(np.float32)
    np.testing.assert_array_equal(cloud.xyz, want)
    np.testing.assert_array_equal(cloud.rgb, rgb)
    projected, _ = organize_points(flat[0], None, shape=(30, 40), focal_px=35.0)
    assert (projected != want).any()  # the pinhole alone would have moved points
    # the same points in another order are projected
    points, colours = _shuffled(np.where(np.isnan(xyz), 0.0, xyz), rgb, 5)
    shuffled = tmp_path / "shuffled.pcd"
    _unorganized_pcd(cloud_bytes, shuffled, points, colours)
    got = pcprep.read_point_cloud(shuffled, grid_shape=(30, 40), focal_px=35.0)
    np.testing.assert_array_equal(got.xyz, projected)


def test_a_cloud_of_h_times_w_points_out_of_order_is_projected(cloud_bytes, tmp_path) -> None:
    """H x W valid points in random order (no NaN): as many points as pixels by chance."""
    depth, rgb = _scan(30, 40, 6, holes=0.0)
    points, colours = _shuffled(depth_to_xyz(depth, focal_px=35.0), rgb, 6)
    assert len(points) == 30 * 40
    path = tmp_path / "scan.pcd"
    _unorganized_pcd(cloud_bytes, path, points, colours)
    cloud = pcprep.read_point_cloud(path, grid_shape=(30, 40), focal_px=35.0)
    np.testing.assert_array_equal(cloud.xyz, depth_to_xyz(depth, focal_px=35.0))


def test_a_real_scan_exported_ordered_or_unordered(real_data, cloud_bytes, tmp_path) -> None:
    """A real MVTec 3D-AD scan (Zivid-class camera, 400 x 400 crop) written as a one-row cloud,
    read with its class's calibration as a pinhole (focal = focus / sx; the division model's
    distortion has no place in it): in row order it reads back exactly; shuffled it is
    projected, the lens's distortion moving points by about a pixel, and keeps its pixels."""
    import json

    import tifffile

    root = real_data / "mvtec3d_ad" / "cable_gland"
    cal = json.loads((root / "calibration" / "camera_parameters.json").read_text())
    camera = {
        "grid_shape": (400, 400),
        "focal_px": cal["focus"] / cal["sx"],
        "principal_point": (cal["cx"], cal["cy"]),
    }
    xyz = tifffile.imread(sorted(root.glob("test/*/xyz/*.tiff"))[0]).astype(np.float32)
    valid = xyz[..., 2] > 0
    ordered = tmp_path / "ordered.pcd"
    _unorganized_pcd(cloud_bytes, ordered, xyz.reshape(1, -1, 3), None)
    np.testing.assert_array_equal(pcprep.read_point_cloud(ordered, **camera).xyz, xyz)
    shuffled = tmp_path / "shuffled.pcd"
    points = xyz[valid][np.random.default_rng(0).permutation(int(valid.sum()))]
    _unorganized_pcd(cloud_bytes, shuffled, points, None)
    got = pcprep.read_point_cloud(shuffled, **camera).xyz
    filled = got[..., 2] > 0
    assert filled.sum() > 0.95 * valid.sum()  # points that share a pixel leave others empty
    assert (got[valid & filled] != xyz[valid & filled]).any(axis=-1).mean() > 0.5  # moved
