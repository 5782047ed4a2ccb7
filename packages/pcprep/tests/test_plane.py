"""Plane fitting and foreground segmentation on synthetic clouds with known geometry."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pcprep import (
    PcprepError,
    Sample,
    border_points,
    fit_plane_corners,
    fit_plane_lstsq,
    fit_plane_robust,
    foreground_mask,
    plane_distance,
    preprocess,
)
from pcprep.kernels import ransac_scores
from pcprep.plane import PlaneFitError
from pcprep.synthetic import synthetic_scan

SETTINGS = settings(max_examples=20, deadline=None)


def angle_deg(p: np.ndarray, q: np.ndarray) -> float:
    cos = abs(float(np.dot(p[:3], q[:3])))
    return float(np.degrees(np.arccos(min(1.0, cos))))


def random_plane_points(rng, n, normal, offset, noise, outlier_frac):
    normal = normal / np.linalg.norm(normal)
    # orthonormal basis of the plane
    a = np.cross(normal, [1.0, 0, 0] if abs(normal[0]) < 0.9 else [0, 1.0, 0])
    a /= np.linalg.norm(a)
    b = np.cross(normal, a)
    uv = rng.uniform(-0.1, 0.1, size=(n, 2))
    pts = uv[:, :1] * a + uv[:, 1:] * b - offset * normal
    pts += rng.normal(0, noise, size=(n, 1)) * normal
    n_out = int(outlier_frac * n)
    # outliers: the object sitting 5-40 mm off the plane on one side
    pts[:n_out] += rng.uniform(0.005, 0.04, size=(n_out, 1)) * normal
    return pts


@SETTINGS
@given(
    seed=st.integers(0, 2**20),
    nx=st.floats(-0.5, 0.5),
    ny=st.floats(-0.5, 0.5),
    noise=st.floats(0.0, 0.001),
    outliers=st.floats(0.0, 0.45),
)
def test_robust_fit_recovers_plane_under_noise_and_outliers(seed, nx, ny, noise, outliers):
    rng = np.random.default_rng(seed)
    normal = np.array([nx, ny, 1.0])
    pts = random_plane_points(rng, 2000, normal, -0.6, noise, outliers)
    plane = fit_plane_robust(pts, threshold=max(0.0025, 3 * noise), rng=seed)
    assert np.isclose(np.linalg.norm(plane[:3]), 1.0)
    assert angle_deg(plane, normal / np.linalg.norm(normal)) < 1.0
    # the inlier residuals are at the noise level, far below the 5 mm foreground threshold
    inliers = pts[int(outliers * len(pts)) :]
    assert np.median(plane_distance(inliers, plane)) < 0.001 + 2 * noise


@SETTINGS
@given(seed=st.integers(0, 2**20), outliers=st.floats(0.1, 0.45))
def test_least_squares_alone_is_pulled_by_outliers_robust_is_not(seed, outliers):
    rng = np.random.default_rng(seed)
    normal = np.array([0.0, 0.3, 1.0])
    pts = random_plane_points(rng, 1000, normal, -0.6, 0.0002, outliers)
    robust = fit_plane_robust(pts, threshold=0.0025)
    truth_inliers = pts[int(outliers * len(pts)) :]
    assert np.abs(plane_distance(truth_inliers, robust)).max() < 0.002
    lsq = fit_plane_lstsq(pts)
    assert (
        np.abs(plane_distance(truth_inliers, lsq)).max()
        > np.abs(plane_distance(truth_inliers, robust)).max()
    )


def test_ransac_kernel_py_func_agrees():
    rng = np.random.default_rng(1)
    pts = random_plane_points(rng, 300, np.array([0.1, 0.2, 1.0]), -0.5, 0.0005, 0.2)
    triples = rng.integers(0, 300, size=(64, 3))
    triples[0] = (5, 5, 7)  # degenerate
    fast = ransac_scores(pts, triples, 0.002, 1.0)
    slow = ransac_scores.py_func(pts, triples, 0.002, 1.0)
    np.testing.assert_array_equal(fast, slow)
    assert fast[0] == -1


@pytest.mark.parametrize("plane", ["robust", "corners"])
@pytest.mark.parametrize("tilt", [(0.0, 0.0), (0.3, -0.2), (-0.6, 0.4)])
def test_tilted_plane_with_bump_recovered(plane, tilt):
    scan = synthetic_scan((96, 96), tilt=tilt, bump_height=0.02, noise=0.0003, rng=3)
    out = preprocess(scan.sample, size=96, plane=plane, closing_iterations=0, fill_iterations=0)
    assert angle_deg(out.plane, scan.plane) < 0.5
    assert abs(abs(out.plane[3]) - abs(scan.plane[3])) < 1e-3
    np.testing.assert_array_equal(out.foreground, scan.object_mask)
    assert np.isclose(out.depth[scan.object_mask].min(), 0.1, atol=1e-6)
    assert (out.depth[~scan.object_mask] == 0).all()


def test_robust_fit_when_object_touches_border_and_corners_missing():
    # the box reaches the left border and a corner patch is invalid: corners fails, robust works
    scan = synthetic_scan(
        (80, 80), tilt=(0.25, 0.1), bump_box=(0.3, 0.7, 0.0, 0.6), noise=0.0002, rng=5
    )
    scan.sample.xyz[:4, :4] = 0.0
    out = preprocess(scan.sample, size=80, closing_iterations=0, fill_iterations=0)
    assert angle_deg(out.plane, scan.plane) < 0.5
    truth = scan.object_mask & out.valid
    assert (out.foreground == truth).mean() > 0.999
    with pytest.raises(PcprepError, match="top-left 3x3 corner patch"):
        preprocess(scan.sample, size=80, plane="corners")


def test_corner_fit_errors_instead_of_nan():
    xyz = np.zeros((10, 10, 3), np.float32)
    xyz[..., 2] = 1.0
    valid = np.ones((10, 10), bool)
    with pytest.raises(PlaneFitError, match="collinear"):
        fit_plane_corners(xyz, valid)  # all corners are the same point
    valid[-3:, :3] = False
    with pytest.raises(PlaneFitError, match="bottom-left"):
        fit_plane_corners(xyz, valid)


def test_border_points_band_and_validity():
    xyz = np.ones((20, 30, 3), np.float32)
    valid = np.ones((20, 30), bool)
    valid[0] = False
    pts = border_points(xyz, valid, band=0.15)  # 3 px band
    ring = np.zeros((20, 30), bool)
    ring[:3] = ring[-3:] = ring[:, :3] = ring[:, -3:] = True
    assert pts.shape == ((ring & valid).sum(), 3)


def test_robust_fit_rejects_too_few_points():
    with pytest.raises(PlaneFitError, match="at least 3"):
        fit_plane_robust(np.zeros((2, 3)), threshold=0.01)
    line = np.stack([np.linspace(0, 1, 50)] * 3, axis=1)
    with pytest.raises(PlaneFitError, match="collinear"):
        fit_plane_robust(line, threshold=0.01)


def test_robust_fit_is_deterministic():
    scan = synthetic_scan((64, 64), noise=0.001, rng=2)
    a = preprocess(scan.sample, size=64)
    b = preprocess(scan.sample, size=64)
    np.testing.assert_array_equal(a.plane, b.plane)
    np.testing.assert_array_equal(a.depth, b.depth)


def test_sample_without_path_is_named_in_memory():
    xyz = np.zeros((8, 8, 3), np.float32)
    with pytest.raises(PcprepError, match="<in-memory sample>: all points are invalid"):
        preprocess(Sample(xyz, np.zeros((8, 8, 3), np.uint8)), size=8)


def test_inlier_moments_matches_numpy():
    from pcprep.kernels import inlier_moments

    rng = np.random.default_rng(4)
    pts = random_plane_points(rng, 500, np.array([0.2, 0.1, 1.0]), -0.5, 0.001, 0.3)
    plane = fit_plane_lstsq(pts[150:])
    inl = pts[plane_distance(pts, plane) <= 0.002]
    for fn in (inlier_moments, inlier_moments.py_func):
        n, mean, scatter = fn(pts, plane, 0.002)
        assert n == len(inl)
        np.testing.assert_allclose(mean, inl.mean(0))
        np.testing.assert_allclose(scatter, (inl - inl.mean(0)).T @ (inl - inl.mean(0)), atol=1e-12)


def test_adaptive_ransac_stops_early_on_clean_data():
    rng = np.random.default_rng(0)
    pts = random_plane_points(rng, 1000, np.array([0.0, 0.0, 1.0]), -0.5, 0.0, 0.0)
    triples = rng.integers(0, 1000, size=(256, 3))
    scores = ransac_scores(pts, triples, 0.001, 0.999999)
    assert (scores >= 0).sum() < 20  # all inliers: a handful of hypotheses suffice


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**20),
    tx=st.floats(-0.5, 0.5),
    ty=st.floats(-0.5, 0.5),
    noise=st.floats(0.0, 0.0008),
    dropout=st.floats(0.0, 0.3),
    height=st.floats(0.01, 0.05),
)
def test_preprocess_property_random_scans(seed, tx, ty, noise, dropout, height):
    scan = synthetic_scan(
        (64, 80), tilt=(tx, ty), bump_height=height, noise=noise, dropout=dropout, rng=seed
    )
    out = preprocess(scan.sample, size=(64, 80), closing_iterations=0)
    assert np.isfinite(out.depth).all() and np.isfinite(out.plane).all()
    assert (out.depth == 0).sum() > 0 and out.depth.max() <= 0.9 + 1e-6
    assert out.depth[out.depth > 0].min() >= 0.1 - 1e-6
    truth = scan.object_mask & out.valid
    inter = (out.foreground & truth).sum()
    union = (out.foreground | truth).sum()
    assert inter / union > 0.97
    assert angle_deg(out.plane, scan.plane) < 1.0


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**20),
    scales=st.tuples(st.floats(1e-6, 10.0), st.floats(1e-6, 10.0), st.floats(0.0, 10.0)),
)
def test_smallest_eigvec3_matches_numpy(seed, scales):
    from pcprep.kernels import smallest_eigvec3

    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    vals = np.array(sorted(scales, reverse=True))
    if vals[1] - vals[2] < 1e-3 * max(vals[0], 1e-9):
        vals[2] = vals[1] * 0.5  # keep the smallest eigenvalue distinct
    a = q @ np.diag(vals) @ q.T
    ref = np.linalg.eigh(a)[1][:, 0]
    for fn in (smallest_eigvec3, smallest_eigvec3.py_func):
        v = fn(a)
        assert np.isclose(np.linalg.norm(v), 1.0)
        assert abs(abs(v @ ref) - 1.0) < 1e-6


@pytest.mark.parametrize(
    "call",
    [
        lambda xyz, valid: border_points(xyz, valid),
        lambda xyz, valid: fit_plane_corners(xyz, valid),
        lambda xyz, valid: foreground_mask(xyz, valid, np.array([0, 0, 1, -1.0]), 0.005),
    ],
)
def test_mismatched_valid_mask_is_refused(call):
    # the numba kernels do not check bounds: a smaller or larger mask read outside the arrays
    xyz = np.ones((40, 40, 3), np.float32)
    for valid in (np.ones((3, 3), bool), np.ones((80, 80), bool)):
        with pytest.raises(ValueError, match=r"valid \(H, W\), got \(40, 40, 3\) and"):
            call(xyz, valid)


def test_plane_of_the_wrong_size_is_refused():
    with pytest.raises(ValueError, match="plane must be"):
        foreground_mask(np.ones((4, 4, 3)), np.ones((4, 4), bool), np.array([0, 0, 1.0]), 0.005)
