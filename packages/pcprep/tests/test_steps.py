"""Resizing, closing, normalisation and hole filling against plain numpy / scipy references."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pcprep import (
    area_coverage,
    close_mask,
    fill_holes,
    normalize_depth,
    normalize_height,
    resize_mask,
    resize_rgb,
    resize_xyz,
)
from pcprep.kernels import (
    area_mask_kernel,
    border_points_kernel,
    box_close,
    fill_holes_kernel,
    normalize_kernel,
    resize_bilinear_kernel,
    resize_nearest_xyz_kernel,
)
from pcprep.steps import drop_border_components, parse_size
from scipy import ndimage

SETTINGS = settings(max_examples=25, deadline=None)


def fill_reference(depth: np.ndarray, iterations: int) -> np.ndarray:
    """Vectorised numpy version of the reference recipe (zero-padded 3x3 sums)."""
    cur = depth.astype(np.float64)
    for _ in range(iterations):
        pad = np.pad(cur, 1)
        nz = np.pad((cur != 0).astype(np.float64), 1)
        h, w = cur.shape
        total = sum(pad[i : i + h, j : j + w] for i in range(3) for j in range(3))
        count = sum(nz[i : i + h, j : j + w] for i in range(3) for j in range(3))
        fill = (cur == 0) & (count > 0)
        cur = np.where(fill, total / np.maximum(count, 1), cur)
    return cur


def closing_reference(mask: np.ndarray, iterations: int) -> np.ndarray:
    """cv2.morphologyEx(MORPH_CLOSE, 3x3, iterations) semantics with scipy."""
    st3 = np.ones((3, 3), bool)
    dil = ndimage.binary_dilation(mask, st3, iterations=iterations, border_value=0)
    return ndimage.binary_erosion(dil, st3, iterations=iterations, border_value=1)


sparse_depth = arrays(
    np.float32,
    st.tuples(st.integers(1, 24), st.integers(1, 24)),
    # float32 values: hypothesis (numpy < 2) refuses 0.1 as "not representable" in float32
    elements=st.sampled_from([np.float32(v) for v in (0.0, 0.0, 0.0, 0.1, 0.5, 0.9, 0.3)]),
)
masks = arrays(np.bool_, st.tuples(st.integers(1, 30), st.integers(1, 30)))


@SETTINGS
@given(depth=sparse_depth, iterations=st.integers(0, 4))
def test_fill_holes_never_changes_valid_pixels_and_matches_reference(depth, iterations):
    out = fill_holes(depth, iterations)
    valid = depth != 0
    np.testing.assert_array_equal(out[valid], depth[valid])
    np.testing.assert_allclose(out, fill_reference(depth, iterations), rtol=1e-5, atol=1e-7)
    py = fill_holes_kernel.py_func(depth.copy(), iterations)
    np.testing.assert_allclose(out, py, rtol=1e-6)
    assert np.isfinite(out).all()


def test_fill_holes_grows_at_most_k_pixels():
    depth = np.zeros((9, 9), np.float32)
    depth[4, 4] = 0.5
    out = fill_holes(depth, 2)
    assert (out > 0).sum() == 25 and np.allclose(out[out > 0], 0.5)


@SETTINGS
@given(mask=masks, iterations=st.integers(0, 4))
def test_close_mask_matches_opencv_semantics(mask, iterations):
    out = close_mask(mask, iterations)
    np.testing.assert_array_equal(out, closing_reference(mask, iterations) if iterations else mask)
    np.testing.assert_array_equal(out, box_close.py_func(mask, iterations))
    assert (out | ~mask).all()  # closing is extensive


@SETTINGS
@given(
    src=st.tuples(st.integers(2, 40), st.integers(2, 40)),
    dst=st.tuples(st.integers(1, 50), st.integers(1, 50)),
    seed=st.integers(0, 2**16),
)
def test_resize_xyz_is_opencv_nearest(src, dst, seed):
    rng = np.random.default_rng(seed)
    xyz = rng.random((*src, 3)).astype(np.float32)
    xyz[rng.random(src) < 0.3] = 0.0
    xyz[rng.random(src) < 0.05, 1] = np.nan
    out, valid = resize_xyz(xyz, dst)
    rows = np.minimum((np.arange(dst[0]) * src[0] / dst[0]).astype(int), src[0] - 1)
    cols = np.minimum((np.arange(dst[1]) * src[1] / dst[1]).astype(int), src[1] - 1)
    ref = xyz[rows[:, None], cols[None, :]]
    ref_valid = np.isfinite(ref).all(-1) & (ref != 0).any(-1)
    np.testing.assert_array_equal(valid, ref_valid)
    np.testing.assert_array_equal(out[valid], ref[valid])
    assert (out[~valid] == 0).all() and np.isfinite(out).all()
    py_out, py_valid = resize_nearest_xyz_kernel.py_func(xyz, *dst)
    np.testing.assert_array_equal(py_out, out)
    np.testing.assert_array_equal(py_valid, valid)


def bilinear_reference(img: np.ndarray, h: int, w: int) -> np.ndarray:
    def axis(n_out, n_in):
        f = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, None)
        i0 = np.minimum(np.floor(f).astype(int), n_in - 1)
        return i0, np.minimum(i0 + 1, n_in - 1), f - i0

    y0, y1, wy = axis(h, img.shape[0])
    x0, x1, wx = axis(w, img.shape[1])
    img = img.astype(np.float64)
    top = img[y0][:, x0] * (1 - wx)[None, :, None] + img[y0][:, x1] * wx[None, :, None]
    bot = img[y1][:, x0] * (1 - wx)[None, :, None] + img[y1][:, x1] * wx[None, :, None]
    return (top * (1 - wy)[:, None, None] + bot * wy[:, None, None]) / 255.0


@SETTINGS
@given(
    src=st.tuples(st.integers(1, 30), st.integers(1, 30)),
    dst=st.tuples(st.integers(1, 40), st.integers(1, 40)),
    seed=st.integers(0, 2**16),
)
def test_resize_rgb_is_bilinear_in_unit_range(src, dst, seed):
    rgb = np.random.default_rng(seed).integers(0, 256, (*src, 3), dtype=np.uint8)
    out = resize_rgb(rgb, dst)
    assert out.shape == (*dst, 3) and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1
    np.testing.assert_allclose(out, bilinear_reference(rgb, *dst), atol=1e-5)
    np.testing.assert_allclose(
        resize_bilinear_kernel.py_func(rgb, *dst, np.float32(1 / 255), np.float32(1)),
        out,
        atol=1e-6,
    )


def test_resize_rgb_identity_at_same_size():
    rgb = np.random.default_rng(0).integers(0, 256, (7, 5, 3), dtype=np.uint8)
    np.testing.assert_allclose(resize_rgb(rgb, (7, 5)), rgb / 255.0, atol=1e-6)


@SETTINGS
@given(
    mask=masks,
    dst=st.tuples(st.integers(1, 40), st.integers(1, 40)),
    mode=st.sampled_from(["area", "nearest"]),
)
def test_resize_mask_never_fractional(mask, dst, mode):
    out = resize_mask(mask, dst, mode=mode)
    assert out.shape == dst and out.dtype == np.float32
    assert set(np.unique(out)) <= {0.0, 1.0}


@SETTINGS
@given(mask=arrays(np.bool_, st.tuples(st.integers(1, 8), st.integers(1, 8))), k=st.integers(1, 4))
def test_resize_mask_area_on_integer_factor_is_block_majority(mask, k):
    big = np.kron(mask, np.ones((k, k), bool))
    np.testing.assert_array_equal(resize_mask(big, mask.shape), mask.astype(np.float32))
    # upsampling by an integer factor reproduces the blocks exactly
    np.testing.assert_array_equal(resize_mask(mask, big.shape), big.astype(np.float32))


def test_resize_mask_area_threshold_at_half():
    m = np.zeros((4, 4), bool)
    m[:2, 0] = True  # exactly half of the top-left 2x2 block
    assert resize_mask(m, 2)[0, 0] == 1.0
    m[1, 0] = False  # a quarter
    assert resize_mask(m, 2)[0, 0] == 0.0
    with pytest.raises(ValueError, match="mode"):
        resize_mask(m, 2, mode="bilinear")


@SETTINGS
@given(
    z=arrays(
        np.float64, st.tuples(st.integers(1, 12), st.integers(1, 12)), elements=st.floats(0.0, 5.0)
    ),
    seed=st.integers(0, 1000),
)
def test_normalize_depth_range(z, seed):
    fg = np.random.default_rng(seed).random(z.shape) < 0.7
    out, count = normalize_depth(z, fg)
    keep = fg & (z != 0)
    assert count == keep.sum()
    assert (out[~keep] == 0).all()
    assert np.isfinite(out).all()
    if count:
        assert out[keep].min() >= 0.1 - 1e-6 and out[keep].max() <= 0.9 + 1e-6
        span = np.ptp(z[keep])
        if span > 0 and np.isfinite(0.8 / span):
            assert np.isclose(out[keep].min(), 0.1) and np.isclose(out[keep].max(), 0.9)
        else:
            assert np.allclose(out[keep], 0.5)
    py, py_count = normalize_kernel.py_func(z, fg, 0.1, 0.9)
    np.testing.assert_allclose(py, out, atol=1e-6)
    assert py_count == count


@pytest.mark.parametrize("kernel", [normalize_kernel, normalize_kernel.py_func])
def test_a_subnormal_depth_span_is_flat_not_nan(kernel):
    # 0.8 / 2.2e-309 overflows: the foreground is treated as flat (0.5), never inf or NaN
    z = np.array([[2.2e-309, 2.2e-311], [0.0, 1e-310]])
    out, count = kernel(z, np.ones((2, 2), bool), 0.1, 0.9)
    assert count == 3 and np.isfinite(out).all()
    np.testing.assert_allclose(out, [[0.5, 0.5], [0.0, 0.5]])


def test_parse_size_and_bad_sizes():
    assert parse_size(5) == (5, 5) and parse_size((3, 4)) == (3, 4)
    for bad in (0, (0, 4), "abc", (1, 2, 3), True):
        with pytest.raises(ValueError, match="size"):
            parse_size(bad)


def test_drop_border_components():
    m = np.zeros((8, 8), bool)
    m[0, 3:5] = True
    m[3:5, 3:5] = True
    out = drop_border_components(m)
    assert out.sum() == 4 and out[3:5, 3:5].all()


def dense_overlap(n_out: int, n_in: int) -> np.ndarray:
    edges = np.arange(n_out + 1) * (n_in / n_out)
    lo = np.maximum(edges[:-1, None], np.arange(n_in)[None])
    hi = np.minimum(edges[1:, None], np.arange(1, n_in + 1)[None])
    w = np.clip(hi - lo, 0, None)
    return w / w.sum(1, keepdims=True)


@SETTINGS
@given(mask=masks, dst=st.tuples(st.integers(1, 40), st.integers(1, 40)))
def test_area_coverage_matches_dense_overlap_product(mask, dst):
    from pcprep.steps import _overlap, area_coverage

    ref = dense_overlap(dst[0], mask.shape[0]) @ mask @ dense_overlap(dst[1], mask.shape[1]).T
    np.testing.assert_allclose(area_coverage(mask, dst), ref, atol=1e-12)
    ri, rw = _overlap(dst[0], mask.shape[0])
    ci, cw = _overlap(dst[1], mask.shape[1])
    np.testing.assert_allclose(area_mask_kernel.py_func(mask, ri, rw, ci, cw), ref, atol=1e-12)


@SETTINGS
@given(mask=masks, width=st.integers(1, 6), seed=st.integers(0, 1000))
def test_border_points_kernel(mask, width, seed):
    xyz = np.random.default_rng(seed).random((*mask.shape, 3)).astype(np.float32)
    h, w = mask.shape
    ring = np.zeros((h, w), bool)
    ring[:width] = ring[-width:] = ring[:, :width] = ring[:, -width:] = True
    ref = xyz[ring & mask].astype(np.float64)
    np.testing.assert_array_equal(border_points_kernel(xyz, mask, width), ref)
    np.testing.assert_array_equal(border_points_kernel.py_func(xyz, mask, width), ref)


@SETTINGS
@given(mask=masks, radius=st.integers(0, 4), axis=st.sampled_from([0, 1]), outside=st.booleans())
def test_window_kernel_py_func(mask, radius, axis, outside):
    from pcprep.kernels_depth import _window_any

    fast = _window_any(mask, radius, axis, outside)
    np.testing.assert_array_equal(fast, _window_any.py_func(mask, radius, axis, outside))
    size = [1, 1]
    size[axis] = 2 * radius + 1
    op = ndimage.binary_erosion if outside else ndimage.binary_dilation
    ref = op(mask, np.ones(size, bool), border_value=int(outside)) if radius else mask
    np.testing.assert_array_equal(fast, ref)


def test_foreground_kernel_py_func():
    from pcprep.kernels import foreground_kernel

    rng = np.random.default_rng(0)
    xyz = rng.random((20, 30, 3))
    valid = rng.random((20, 30)) < 0.8
    plane = np.array([0.0, 0.0, 1.0, -0.5])
    ref = valid & (np.abs(xyz[..., 2] - 0.5) > 0.1)
    np.testing.assert_array_equal(foreground_kernel(xyz, valid, plane, 0.1), ref)
    np.testing.assert_array_equal(foreground_kernel.py_func(xyz, valid, plane, 0.1), ref)


def test_normalize_depth_refuses_a_foreground_of_another_shape():
    # the kernel does not check bounds: a smaller mask was read past its end
    with pytest.raises(ValueError, match=r"got \(20, 20\) and \(2, 2\)"):
        normalize_depth(np.ones((20, 20)), np.ones((2, 2), bool))


_HEIGHTS = arrays(
    np.float64,
    st.tuples(st.integers(1, 10), st.integers(1, 10)),
    elements=st.floats(-0.1, 0.5, allow_subnormal=False),
)


@SETTINGS
@given(height=_HEIGHTS, seed=st.integers(0, 1000), scale=st.floats(0.01, 100))
# the smallest normal height, scaled to a subnormal one (a random draw found it)
@example(height=np.array([[2.2250738585072014e-308]]), seed=0, scale=0.25)
def test_normalize_height_anchors_the_plane_and_the_top(height, seed, scale):
    fg = np.random.default_rng(seed).random(height.shape) < 0.7
    out, count = normalize_height(height, fg)
    assert count == fg.sum() and (out[~fg] == 0).all() and np.isfinite(out).all()
    if not count:
        return
    above = np.maximum(height[fg], 0)
    if above.max() > 0:
        np.testing.assert_allclose(out[fg], 0.9 - 0.8 * above / above.max(), atol=1e-6)
        assert out[fg].min() == pytest.approx(0.1)
    else:
        np.testing.assert_allclose(out[fg], 0.5)
    # scale-free (while the scaled top stays a normal float: below that it is flat), and the
    # foreground's lowest point does not move the others (a min-max would)
    if above.max() == 0 or above.max() * scale > 1e-300:
        np.testing.assert_allclose(normalize_height(height * scale, fg)[0], out, atol=1e-5)
    lower = height.copy()
    lower[fg & (height == height[fg].min())] = 0.0
    changed = fg & (height != lower)
    np.testing.assert_allclose(
        normalize_height(lower, fg)[0][fg & ~changed], out[fg & ~changed], atol=1e-6
    )


@pytest.mark.parametrize(
    ("step", "name", "image"),
    [
        (lambda a: resize_xyz(a, 2), "xyz", np.ones((0, 4, 3), np.float32)),
        (lambda a: resize_xyz(a, 2), "xyz", np.ones((4, 4), np.float32)),
        (lambda a: resize_xyz(a, 2), "xyz", np.ones((4, 4, 4), np.float32)),
        (lambda a: resize_rgb(a, 2), "rgb", np.ones((4, 0, 3), np.uint8)),
        (lambda a: resize_rgb(a, 2), "rgb", np.ones((4, 4), np.uint8)),
        (lambda a: resize_mask(a, 2), "mask", np.ones((4, 4, 3), bool)),
        (lambda a: resize_mask(a, 2, mode="nearest"), "mask", np.ones((0, 4), bool)),
        (lambda a: area_coverage(a, 2), "mask", np.ones((4, 4, 1), bool)),
        (lambda a: close_mask(a, 1), "mask", np.ones((4, 4, 3), bool)),
        (lambda a: fill_holes(a, 1), "depth", np.ones((4, 4, 3), np.float32)),
    ],
)
def test_steps_refuse_wrong_rank_or_empty_source_in_one_line(step, name, image):
    # the numba kernels do not check bounds: an empty source was read out of bounds (garbage
    # values), another rank failed in numba typing with a many-line message
    with pytest.raises(ValueError, match=rf"^{name} must be [^\n]*{re.escape(str(image.shape))}$"):
        step(image)
