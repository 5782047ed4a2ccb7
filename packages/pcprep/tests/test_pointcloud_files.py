"""PCD / PLY readers: hand-written files of every kind, files that plyfile and pypcd4 write
(skipped where they are not installed), random grids, and one-line errors for malformed files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pcprep import PcprepError, read_cloud_points, read_point_cloud, read_rgb, read_xyz
from pcprep.fileio import read_array
from pcprep.lzf import lzf_decompress, lzf_decompress_kernel
from pcprep.ply_file import walk_ascii_rows, walk_binary_rows
from pcprep.pointcloud_files import point_cloud_has_colour

PCD_DATA = ("ascii", "binary", "binary_compressed")
PLY_FORMATS = ("ascii", "binary_little_endian", "binary_big_endian")


def _scan(rows: int = 4, cols: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    xyz = rng.uniform(-0.2, 0.2, (rows, cols, 3)).astype(np.float32)
    xyz[..., 2] += 0.6
    xyz[1, 2] = np.nan
    xyz[0, -1, 0] = np.inf
    rgb = rng.integers(0, 256, (rows, cols, 3), dtype=np.uint8)
    return xyz, rgb


def _expected(xyz: np.ndarray) -> np.ndarray:
    out = xyz.copy()
    out[~np.isfinite(out).all(-1)] = 0
    return out


@pytest.mark.parametrize("data", PCD_DATA)
@pytest.mark.parametrize("rgb_type", ["F", "U"])
def test_pcd_hand_written(cloud_bytes, tmp_path: Path, data: str, rgb_type: str) -> None:
    xyz, rgb = _scan()
    path = tmp_path / "scan.pcd"
    path.write_bytes(cloud_bytes.pcd_bytes(xyz, rgb, data, rgb_type=rgb_type))
    cloud = read_point_cloud(path)
    np.testing.assert_array_equal(cloud.xyz, _expected(xyz))
    np.testing.assert_array_equal(cloud.rgb, rgb)
    assert cloud.xyz.dtype == np.float32 and cloud.rgb.dtype == np.uint8
    # the generic readers see the same cloud as a TIFF's callers would
    np.testing.assert_array_equal(read_xyz(path), cloud.xyz)
    np.testing.assert_array_equal(read_array(path), cloud.xyz)
    np.testing.assert_array_equal(read_rgb(path), rgb)
    assert point_cloud_has_colour(path)


def test_pcd_doubles_and_no_colour(cloud_bytes, tmp_path: Path) -> None:
    xyz, _ = _scan()
    path = tmp_path / "scan.pcd"
    path.write_bytes(cloud_bytes.pcd_bytes(xyz.astype(np.float64), None, "binary", xyz_type="F8"))
    cloud = read_point_cloud(path)
    np.testing.assert_array_equal(cloud.xyz, _expected(xyz))
    assert cloud.rgb is None and not point_cloud_has_colour(path)
    with pytest.raises(PcprepError, match=r"scan\.pcd: the point cloud has no colour"):
        read_rgb(path)


@pytest.mark.parametrize("fmt", PLY_FORMATS)
@pytest.mark.parametrize("grid", ["num_cols", "phoxi"])
def test_ply_hand_written(cloud_bytes, tmp_path: Path, fmt: str, grid: str) -> None:
    xyz, rgb = _scan()
    path = tmp_path / "scan.ply"
    path.write_bytes(cloud_bytes.ply_bytes(xyz, rgb, fmt, grid=grid))
    cloud = read_point_cloud(path)
    np.testing.assert_array_equal(cloud.xyz, _expected(xyz))
    np.testing.assert_array_equal(cloud.rgb, rgb)
    np.testing.assert_array_equal(read_rgb(path), rgb)


def test_ply_float_colour_in_0_1(cloud_bytes, tmp_path: Path) -> None:
    xyz, rgb = _scan()
    path = tmp_path / "scan.ply"
    path.write_bytes(cloud_bytes.ply_bytes(xyz, rgb, float_colour=True))
    np.testing.assert_array_equal(read_point_cloud(path).rgb, rgb)


def test_ply_range_grid_and_pcl_camera(tmp_path: Path) -> None:
    # PCL's PLYWriter: invalid points omitted, each grid cell lists its vertex (or none)
    head = (
        b"ply\nformat binary_little_endian 1.0\ncomment PCL generated\nobj_info num_cols 2\n"
        b"obj_info num_rows 2\nelement vertex 3\nproperty float x\nproperty float y\n"
        b"property float z\nelement face 0\nproperty list uchar int vertex_indices\n"
        b"element range_grid 4\nproperty list uchar int vertex_indices\nend_header\n"
    )
    verts = np.array([[0, 0, 1], [1, 0, 1], [1, 1, 1]], "<f4").tobytes()
    cells = b"".join(bytes([len(c)]) + np.array(c, "<i4").tobytes() for c in ([0], [], [1], [2]))
    path = tmp_path / "pcl.ply"
    path.write_bytes(head + verts + cells)
    xyz = read_point_cloud(path).xyz
    assert xyz.reshape(4, 3).tolist() == [[0, 0, 1], [0, 0, 0], [1, 0, 1], [1, 1, 1]]
    # PCL's default (use_camera): every point, the grid in the camera element's viewport
    camera = [f"property float c{i}\n".encode() for i in range(17)]
    head = (
        b"ply\nformat ascii 1.0\nelement vertex 4\nproperty float x\nproperty float y\n"
        b"property float z\nelement face 0\nproperty list uint int vertex_indices\n"
        b"element camera 1\n" + b"".join(camera) + b"property int viewportx\n"
        b"property int viewporty\nproperty float k1\nproperty float k2\nend_header\n"
    )
    body = b"0 0 1\n1 0 1\nnan nan nan\n1 1 1\n" + b"0 " * 17 + b"2 2 0 0\n"
    path.write_bytes(head + body)
    xyz = read_point_cloud(path).xyz
    assert xyz.shape == (2, 2, 3) and xyz[1, 0].tolist() == [0, 0, 0]


# ---------------------------------------------------------------- independent references


def test_pypcd4_files(tmp_path: Path) -> None:
    pypcd4 = pytest.importorskip("pypcd4")
    rows, cols = 40, 50
    # a smooth surface compresses, so pypcd4 keeps binary_compressed (else it falls back)
    v, u = np.mgrid[0:rows, 0:cols].astype(np.float32) / 100
    xyz = np.stack([u, v, 0.6 + 0 * u], -1).reshape(-1, 3)
    xyz[7] = np.nan
    rgb = np.zeros((rows * cols, 3), np.uint8)
    rgb[:, 0] = 200
    rgb[::3, 2] = 17
    packed = pypcd4.PointCloud.encode_rgb(rgb)
    for enc in pypcd4.Encoding:
        if enc.value == "binaryscompressed":
            continue
        for colour in (packed, packed.view(np.uint32)):
            pc = pypcd4.PointCloud.from_points(
                [xyz[:, 0], xyz[:, 1], xyz[:, 2], colour],
                ("x", "y", "z", "rgb"),
                (np.float32, np.float32, np.float32, colour.dtype),
            )
            meta = pc.metadata.model_copy(update={"width": cols, "height": rows})
            path = tmp_path / f"{enc.value}.pcd"
            pypcd4.PointCloud(meta, pc.pc_data).save(path, encoding=enc)
            assert f"DATA {enc.value}".encode() in path.read_bytes()[:400]
            cloud = read_point_cloud(path)
            np.testing.assert_allclose(cloud.xyz.reshape(-1, 3), _expected(xyz), atol=1e-9)
            if enc.value != "ascii" or colour.dtype == np.uint32:  # its ASCII floats: %.10f
                np.testing.assert_array_equal(cloud.rgb.reshape(-1, 3), rgb)


@pytest.mark.filterwarnings("ignore:loadtxt. input contained no data")  # plyfile, an empty face
@pytest.mark.parametrize("fmt", PLY_FORMATS)
def test_plyfile_files(cloud_bytes, tmp_path: Path, fmt: str) -> None:
    plyfile = pytest.importorskip("plyfile")
    xyz, rgb = _scan(6, 7)
    n = xyz.shape[0] * xyz.shape[1]
    table = np.empty(n, [(a, "f8") for a in "xyz"] + [(c, "u1") for c in ("red", "green", "blue")])
    for i, a in enumerate("xyz"):
        table[a] = xyz[..., i].reshape(n)
    for i, c in enumerate(("red", "green", "blue")):
        table[c] = rgb[..., i].reshape(n)
    faces = np.empty(2, [("vertex_indices", "O")])
    faces["vertex_indices"] = [np.array([0, 1, 2], "i4"), np.array([3, 4, 5, 6], "i4")]
    order = {"ascii": "=", "binary_little_endian": "<", "binary_big_endian": ">"}[fmt]
    data = plyfile.PlyData(
        [plyfile.PlyElement.describe(table, "vertex"), plyfile.PlyElement.describe(faces, "face")],
        text=fmt == "ascii",
        byte_order=order,
        obj_info=["num_cols 7", "num_rows 6"],
    )
    path = tmp_path / "scan.ply"
    data.write(str(path))
    cloud = read_point_cloud(path)
    np.testing.assert_array_equal(cloud.xyz, _expected(xyz))
    np.testing.assert_array_equal(cloud.rgb, rgb)
    # and plyfile reads our hand-written files as we do
    path.write_bytes(cloud_bytes.ply_bytes(xyz, rgb, fmt))
    back = plyfile.PlyData.read(str(path))["vertex"]
    np.testing.assert_array_equal(back["red"].reshape(6, 7), rgb[..., 0])


def test_lzf_against_liblzf() -> None:
    lzf = pytest.importorskip("lzf")  # python-neo-lzf (pypcd4's dependency): liblzf itself
    rng = np.random.default_rng(1)
    for size in (33, 1000, 70000):
        data = rng.integers(0, 3, size, dtype=np.uint8).tobytes() + bytes(size)
        packed = lzf.compress(data)  # None when it would not shrink
        assert lzf_decompress(packed, len(data)).tobytes() == data
        dst = np.empty(len(data), np.uint8)  # the kernel's plain-Python twin
        assert lzf_decompress_kernel.py_func(np.frombuffer(packed, np.uint8), dst) == len(data)
        assert dst.tobytes() == data


def test_lzf_kernel_back_references_and_corruption() -> None:
    # 3 literals, then a back reference of length 3 + 2 = 5 at distance 1 (overlapping copy)
    src = np.frombuffer(bytes([2]) + b"abc" + bytes([0x60, 0]), np.uint8)
    for kernel in (lzf_decompress_kernel, lzf_decompress_kernel.py_func):
        dst = np.empty(8, np.uint8)
        assert kernel(src, dst) == 8 and dst.tobytes() == b"abcccccc"
        assert kernel(src[:-1], np.empty(8, np.uint8)) == -1  # reference cut off
        assert kernel(np.frombuffer(bytes([0x20, 5]), np.uint8), np.empty(4, np.uint8)) == -1
    assert lzf_decompress(src.tobytes(), 9) is None


def test_list_walkers_in_python() -> None:
    # two rows of (uchar count, int items), the second empty; big-endian
    buf = np.frombuffer(bytes([1, 0, 0, 0, 5, 0]), np.uint8)
    is_list = np.array([True])
    sizes, items = np.array([1]), np.array([4])
    for walk in (walk_binary_rows, walk_binary_rows.py_func):
        cells = np.zeros(2, np.int64)
        assert walk(buf, 0, 2, is_list, sizes, items, True, 0, cells) == 6
        assert cells.tolist() == [5, -1]
        assert walk(buf, 0, 3, is_list, sizes, items, True, 0, np.zeros(3, np.int64)) == -1
    for walk in (walk_ascii_rows, walk_ascii_rows.py_func):
        cells = np.zeros(2, np.int64)
        values = np.array([1.0, 5.0, 0.0])
        assert walk(values, 0, 2, is_list, 0, cells) == 3 and cells.tolist() == [5, -1]


# ---------------------------------------------------------------- properties

_SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@st.composite
def _grids(draw):
    rows, cols = draw(st.integers(2, 6)), draw(st.integers(2, 6))
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    xyz = rng.normal(0, 1, (rows, cols, 3)).astype(np.float32)
    bad = rng.random((rows, cols)) < draw(st.floats(0, 0.5))
    xyz[bad, rng.integers(0, 3)] = np.nan
    rgb = rng.integers(0, 256, (rows, cols, 3), dtype=np.uint8) if draw(st.booleans()) else None
    return xyz, rgb


@_SETTINGS
@given(grid=_grids(), data=st.sampled_from(PCD_DATA), rgb_type=st.sampled_from("FU"))
def test_pcd_property(cloud_bytes, tmp_path: Path, grid, data: str, rgb_type: str) -> None:
    xyz, rgb = grid
    path = tmp_path / "p.pcd"
    path.write_bytes(cloud_bytes.pcd_bytes(xyz, rgb, data, rgb_type=rgb_type))
    cloud = read_point_cloud(path)
    np.testing.assert_array_equal(cloud.xyz, _expected(xyz))
    assert (cloud.rgb is None) == (rgb is None)
    if rgb is not None:
        np.testing.assert_array_equal(cloud.rgb, rgb)


@_SETTINGS
@given(grid=_grids(), fmt=st.sampled_from(PLY_FORMATS), phoxi=st.booleans(), faces=st.booleans())
def test_ply_property(cloud_bytes, tmp_path: Path, grid, fmt: str, phoxi: bool, faces: bool):
    xyz, rgb = grid
    path = tmp_path / "p.ply"
    grid_words = "phoxi" if phoxi else "num_cols"
    path.write_bytes(cloud_bytes.ply_bytes(xyz, rgb, fmt, grid=grid_words, faces=faces))
    cloud = read_point_cloud(path)
    np.testing.assert_array_equal(cloud.xyz, _expected(xyz))
    if rgb is not None:
        np.testing.assert_array_equal(cloud.rgb, rgb)


# ---------------------------------------------------------------- malformed files


def _pcd(cloud_bytes, data="binary"):
    xyz, rgb = _scan()
    return cloud_bytes.pcd_bytes(xyz, rgb, data)


def _ply(cloud_bytes, fmt="binary_little_endian", **kw):
    xyz, rgb = _scan()
    return cloud_bytes.ply_bytes(xyz, rgb, fmt, **kw)


MALFORMED = {
    "pcd binary truncated": (".pcd", lambda b: _pcd(b)[:-5], "truncated PCD: binary data"),
    "pcd ascii truncated": (".pcd", lambda b: _pcd(b, "ascii")[:-30], "truncated PCD: ASCII"),
    "pcd compressed truncated": (
        ".pcd",
        lambda b: _pcd(b, "binary_compressed")[:-9],
        "truncated PCD: binary_compressed",
    ),
    "pcd compressed corrupt": (
        ".pcd",
        lambda b: _pcd(b, "binary_compressed").replace(
            b"DATA binary_compressed\n", b"DATA binary_compressed\n\x00\x00\x00\x00", 1
        )[:-4],
        "binary_compressed",
    ),
    "pcd unknown DATA": (
        ".pcd",
        lambda b: _pcd(b).replace(b"DATA binary", b"DATA zstd"),
        "unknown DATA 'zstd'",
    ),
    "pcd no DATA": (".pcd", lambda b: b"VERSION 0.7\nFIELDS x y z\n", "without a DATA line"),
    "pcd no z": (
        ".pcd",
        lambda b: _pcd(b, "ascii").replace(b"FIELDS x y z", b"FIELDS x y w"),
        "PCD without an z field",
    ),
    "pcd points disagree": (
        ".pcd",
        lambda b: _pcd(b).replace(b"POINTS 20", b"POINTS 21"),
        "POINTS 21 disagrees with WIDTH x HEIGHT 5x4",
    ),
    "pcd unorganized": (
        ".pcd",
        lambda b: _pcd(b).replace(b"WIDTH 5\nHEIGHT 4", b"WIDTH 20\nHEIGHT 1"),
        "unorganized point cloud (HEIGHT 1, WIDTH 20): the detector needs an organized grid",
    ),
    "pcd ascii garbage": (
        ".pcd",
        lambda b: _pcd(b, "ascii").replace(b"\n0.", b"\nabc", 1),
        "holds a non-number",
    ),
    "pcd binary header": (".pcd", lambda b: b"\x89PNG\r\n\x1a\n\xff\xfe", "not"),
    "pcd size mismatch": (
        ".pcd",
        lambda b: _pcd(b).replace(b"SIZE 4 4 4", b"SIZE 4 4"),
        "FIELDS but",
    ),
    "ply truncated": (".ply", lambda b: _ply(b, faces=False)[:-7], "truncated PLY"),
    "ply truncated in faces": (".ply", lambda b: _ply(b)[:-3], "inside element face"),
    "ply ascii truncated": (".ply", lambda b: _ply(b, "ascii", faces=False)[:-40], "truncated PLY"),
    "ply count disagrees": (
        ".ply",
        lambda b: _ply(b, faces=False).replace(b"element vertex 20", b"element vertex 19"),
        "after its last element",
    ),
    "ply unknown format": (
        ".ply",
        lambda b: _ply(b).replace(b"binary_little_endian", b"binary_middle_endian"),
        "unknown format",
    ),
    "ply no end_header": (
        ".ply",
        lambda b: b"ply\nformat ascii 1.0\nelement vertex 1\n",
        "without end_header",
    ),
    "ply no z": (
        ".ply",
        lambda b: _ply(b).replace(b"property float z\n", b"property float w\n"),
        "without property z",
    ),
    "ply no vertex": (
        ".ply",
        lambda b: b"ply\nformat ascii 1.0\nelement face 0\nproperty list uchar int v\nend_header\n",
        "without an element vertex",
    ),
    "ply unorganized": (
        ".ply",
        lambda b: _ply(b, grid="none"),
        "unorganized point cloud (20 vertices, no grid in its header",
    ),
    "ply grid disagrees": (
        ".ply",
        lambda b: _ply(b).replace(b"num_cols 5", b"num_cols 6"),
        "20 points disagree with its 6x4 grid",
    ),
    "ply not ply": (".ply", lambda b: b"solid stl\n", "not a PLY file"),
    "ply unknown type": (
        ".ply",
        lambda b: _ply(b).replace(b"double nx", b"quad nx"),
        "unknown property",
    ),
    "empty": (".pcd", lambda b: b"", "the file is empty"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_files_give_one_line_naming_the_file(cloud_bytes, tmp_path, name) -> None:
    suffix, make, expected = MALFORMED[name]
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(make(cloud_bytes))
    for read in (read_point_cloud, read_xyz, read_array):
        with pytest.raises(PcprepError) as info:
            read(path)
        message = str(info.value)
        assert "\n" not in message and message.startswith(f"{path}: "), message
        assert expected in message, message


def test_missing_and_folder(tmp_path: Path) -> None:
    with pytest.raises(PcprepError, match="file not found"):
        read_point_cloud(tmp_path / "none.pcd")
    (tmp_path / "dir.ply").mkdir()
    with pytest.raises(PcprepError, match="is a folder"):
        read_point_cloud(tmp_path / "dir.ply")


def test_read_cloud_points_in_file_order_organized_or_not(cloud_bytes, tmp_path) -> None:
    xyz = np.arange(24, dtype=np.float32).reshape(2, 4, 3)
    xyz[1, 1] = np.nan
    path = tmp_path / "scan.pcd"
    path.write_bytes(cloud_bytes.pcd_bytes(xyz, None, "ascii"))
    points, colours = read_cloud_points(path)
    np.testing.assert_array_equal(points, xyz.reshape(-1, 3))  # NaN kept, as stored
    assert points.dtype == np.float32 and colours is None
    # an unorganized cloud, which read_point_cloud refuses: its points and colours as stored
    rgb = np.arange(24, dtype=np.uint8).reshape(1, 8, 3)
    path.write_bytes(cloud_bytes.pcd_bytes(xyz.reshape(1, 8, 3), rgb, "binary_compressed"))
    points, colours = read_cloud_points(path)
    np.testing.assert_array_equal(points, xyz.reshape(-1, 3))
    np.testing.assert_array_equal(colours, rgb.reshape(-1, 3))
    with pytest.raises(PcprepError, match="unorganized"):
        read_point_cloud(path)
    with pytest.raises(PcprepError, match="file not found"):
        read_cloud_points(tmp_path / "none.ply")
