"""``predict --point-clouds``: a scan's valid points with the overlay's colours and the map's
values, as a PLY that another reader (plyfile) reads back exactly."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from threedsr_cli.overlays import blend
from threedsr_cli.point_cloud_map import map_point_cloud, write_map_ply


def _scan(seed: int, h: int, w: int, invalid: float):
    rng = np.random.default_rng(seed)
    xyz = rng.normal(size=(h, w, 3)).astype(np.float32)
    xyz[rng.random((h, w)) < invalid] = 0.0
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    m = rng.random((h, w)).astype(np.float32)
    return xyz, rgb, m


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    invalid=st.sampled_from([0.0, 0.3, 1.0]),
)
def test_the_points_are_the_valid_pixels_in_row_major_order(seed, h, w, invalid):
    xyz, rgb, m = _scan(seed, h, w, invalid)
    pts = map_point_cloud(xyz, rgb, m, 0.2, 0.8)
    valid = (xyz != 0).any(-1)
    assert len(pts) == valid.sum()
    np.testing.assert_array_equal(np.stack([pts[a] for a in "xyz"], -1), xyz[valid])
    np.testing.assert_array_equal(pts["anomaly"], m[valid])
    colour = np.stack([pts[b] for b in ("red", "green", "blue")], -1)
    expected = (blend(rgb, m, 0.2, 0.8) * 255).round().astype(np.uint8)[valid]
    np.testing.assert_array_equal(colour, expected)


def test_below_the_scale_a_point_keeps_the_scans_colour():
    xyz, rgb, m = _scan(0, 4, 5, 0.0)
    pts = map_point_cloud(xyz, rgb, np.zeros_like(m), 0.5, 0.9)
    np.testing.assert_array_equal(
        np.stack([pts[b] for b in ("red", "green", "blue")], -1), rgb.reshape(-1, 3)
    )


def test_a_scan_without_colour_is_painted_over_grey():
    xyz, _, m = _scan(0, 4, 5, 0.0)
    grey = np.full((4, 5, 3), 128, np.uint8)
    np.testing.assert_array_equal(
        map_point_cloud(xyz, None, m, 0.2, 0.8), map_point_cloud(xyz, grey, m, 0.2, 0.8)
    )


def test_shapes_that_disagree_are_named():
    xyz, rgb, m = _scan(0, 4, 5, 0.0)
    with pytest.raises(ValueError, match=r"\(H, W\) = \(5, 4\)"):
        map_point_cloud(xyz, rgb, m.T, 0.0, 1.0)


def test_plyfile_reads_the_file_back(tmp_path):
    plyfile = pytest.importorskip("plyfile")
    xyz, rgb, m = _scan(1, 6, 7, 0.25)
    path = write_map_ply(
        tmp_path / "s_map.ply",
        xyz,
        rgb,
        m,
        0.1,
        0.9,
        description="threedsr memory anomaly map",
        threshold=0.7,
    )
    ply = plyfile.PlyData.read(str(path))
    assert not ply.text and ply.byte_order == "<"
    assert ply.comments == ["threedsr memory anomaly map", "colour scale 0.1 0.9", "threshold 0.7"]
    vertex = ply["vertex"]
    valid = (xyz != 0).any(-1)
    assert vertex.count == valid.sum()
    np.testing.assert_array_equal(vertex["anomaly"], m[valid])
    np.testing.assert_array_equal(np.stack([vertex[a] for a in "xyz"], -1), xyz[valid])
    assert [p.name for p in vertex.properties] == ["x", "y", "z", "red", "green", "blue", "anomaly"]
    assert not list(tmp_path.glob(".*"))  # no temporary file left
