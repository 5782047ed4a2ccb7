"""pcprep.read_camera: each calibration format, told by content; every refusal, one line naming
the file and the problem; the YAML subset it parses."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pcprep import Camera, Distortion, PcprepError, read_camera
from pcprep.calibration_yaml import parse_calibration_yaml
from pcprep.camera import distort, undistort

# As ROS camera_calibration writes ost.yaml (camera_info_manager's format).
ROS_CAMERA_INFO = """\
image_width: 640
image_height: 480
camera_name: narrow_stereo
camera_matrix:
  rows: 3
  cols: 3
  data: [628.7268, 0, 308.1392, 0, 629.4411, 242.8125, 0, 0, 1]
distortion_model: plumb_bob
distortion_coefficients:
  rows: 1
  cols: 5
  data: [0.087833, -0.157312, -0.000223, -0.001186, 0]
rectification_matrix:
  rows: 3
  cols: 3
  data: [1, 0, 0, 0, 1, 0, 0, 0, 1]
projection_matrix:
  rows: 3
  cols: 4
  data: [634.7, 0, 306.9, 0, 0, 637.5, 242.2, 0, 0, 0, 1, 0]
"""

# rostopic echo -n1 /camera/camera_info (ROS 1): flow lists, upper-case matrices, a trailing ---.
ROS1_MESSAGE = """\
header:
  seq: 1523
  stamp:
    secs: 1712345678
    nsecs: 123456789
  frame_id: "camera_color_optical_frame"
height: 720
width: 1280
distortion_model: "rational_polynomial"
D: [0.5, -2.5, 0.0001, -0.0002, 1.4, 0.4, -2.3, 1.3]
K: [912.5, 0.0, 646.2, 0.0, 911.9, 364.1, 0.0, 0.0, 1.0]
R: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
P: [912.5, 0.0, 646.2, 0.0, 0.0, 911.9, 364.1, 0.0, 0.0, 0.0, 1.0, 0.0]
binning_x: 0
binning_y: 0
roi:
  x_offset: 0
  y_offset: 0
  height: 0
  width: 0
  do_rectify: False
---
""".replace(":\n", ": \n")  # rostopic echo leaves a blank after a key with nested fields

# ros2 topic echo --once (ROS 2): lower-case keys, block lists at the key's own indentation.
ROS2_MESSAGE = """\
header:
  stamp:
    sec: 1712345678
    nanosec: 5000
  frame_id: camera_optical
height: 480
width: 848
distortion_model: plumb_bob
d:
- -0.05
- 0.06
- 0.0003
- -0.0004
- -0.02
k:
- 421.5
- 0.0
- 424.0
- 0.0
- 421.0
- 240.5
- 0.0
- 0.0
- 1.0
r:
- 1.0
- 0.0
- 0.0
- 0.0
- 1.0
- 0.0
- 0.0
- 0.0
- 1.0
binning_x: 0
binning_y: 0
roi:
  x_offset: 0
  y_offset: 0
  height: 0
  width: 0
  do_rectify: false
---
"""


# OpenCV's calibration sample (FileStorage): data lists spanning lines, OpenCV's "1." numbers.
OPENCV_YAML = """\
%YAML:1.0
---
calibration_time: "Fri 05 Apr 2024 10:00:00 CEST"
nr_of_frames: 25
image_width: 640
image_height: 480
board_width: 9
board_height: 6
square_size: 50.
# flags:  +fix_aspectRatio +fix_principal_point +zero_tangent_dist
flags: 14
camera_matrix: !!opencv-matrix
   rows: 3
   cols: 3
   dt: d
   data: [ 6.5746697944293521e+02, 0., 3.1950000000000000e+02, 0.,
       6.5746697944293521e+02, 2.3950000000000000e+02, 0., 0., 1. ]
distortion_coefficients: !!opencv-matrix
   rows: 5
   cols: 1
   dt: d
   data: [ -4.1802327176423804e-01, 5.0715244063187526e-01, 0., 0.,
       -5.7843597214487474e-01 ]
avg_reprojection_error: 3.9259195040450801e-01
"""

OPEN3D_JSON = {
    "height": 480,
    "intrinsic_matrix": [525.0, 0.0, 0.0, 0.0, 526.0, 0.0, 319.5, 239.5, 1.0],
    "width": 640,
}

MVTEC_JSON = {
    "camera_type": "area_scan_division",
    "focus": 0.0103431,
    "kappa": -2205.03,
    "sx": 3.74983e-06,
    "sy": 3.75e-06,
    "cx": 54.0458,
    "cy": 196.07,
    "image_width": 400,
    "image_height": 400,
}


def write(tmp_path: Path, name: str, content: str | dict | list) -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content, indent=2))
    return path


def test_ros_camera_info_yaml(tmp_path):
    camera = read_camera(write(tmp_path, "ost.yaml", ROS_CAMERA_INFO))
    assert camera == Camera(
        (480, 640),
        (628.7268, 629.4411),
        (308.1392, 242.8125),
        Distortion("plumb_bob", (0.087833, -0.157312, -0.000223, -0.001186, 0.0)),
    )


def test_ros_camera_info_as_json_is_the_same_camera(tmp_path):
    as_json = parse_calibration_yaml(ROS_CAMERA_INFO)
    assert read_camera(write(tmp_path, "cam.json", as_json)) == read_camera(
        write(tmp_path, "ost.yaml", ROS_CAMERA_INFO)
    )


def test_ros1_camera_info_message(tmp_path):
    camera = read_camera(write(tmp_path, "info.txt", ROS1_MESSAGE))
    assert camera.grid_shape == (720, 1280)
    assert camera.focal_px == (912.5, 911.9) and camera.principal_point == (646.2, 364.1)
    assert camera.distortion.model == "rational_polynomial"
    assert camera.distortion.coefficients == (0.5, -2.5, 0.0001, -0.0002, 1.4, 0.4, -2.3, 1.3)


def test_ros2_camera_info_message_block_lists(tmp_path):
    camera = read_camera(write(tmp_path, "info.yaml", ROS2_MESSAGE))
    assert camera == Camera(
        (480, 848),
        (421.5, 421.0),
        (424.0, 240.5),
        Distortion("plumb_bob", (-0.05, 0.06, 0.0003, -0.0004, -0.02)),
    )


def test_camera_info_message_as_json(tmp_path):
    message = parse_calibration_yaml(ROS2_MESSAGE)
    assert read_camera(write(tmp_path, "info.json", message)) == read_camera(
        write(tmp_path, "info.yaml", ROS2_MESSAGE)
    )


def test_uncalibrated_camera_info_has_no_distortion(tmp_path):
    text = "height: 480\nwidth: 640\ndistortion_model: ''\nD: []\nK: [500, 0, 320, 0, 500, 240, 0, 0, 1]\n"
    assert read_camera(write(tmp_path, "info.yaml", text)).distortion is None


@pytest.mark.parametrize("directive", ["%YAML:1.0", "%YAML 1.0"])
def test_opencv_filestorage(tmp_path, directive):
    text = OPENCV_YAML.replace("%YAML:1.0", directive)
    camera = read_camera(write(tmp_path, "out_camera_data.yml", text))
    assert camera.grid_shape == (480, 640)
    assert camera.focal_px == (6.5746697944293521e02, 6.5746697944293521e02)
    assert camera.principal_point == (319.5, 239.5)
    assert camera.distortion == Distortion(
        "plumb_bob",
        (-4.1802327176423804e-01, 5.0715244063187526e-01, 0.0, 0.0, -0.57843597214487474),
    )


@pytest.mark.parametrize(
    ("count", "model"), [(4, "plumb_bob"), (5, "plumb_bob"), (8, "rational_polynomial")]
)
def test_opencv_model_from_coefficient_count(tmp_path, count, model):
    values = ", ".join(["0.01"] * count)
    text = OPENCV_YAML.split("distortion_coefficients")[0] + (
        f"distortion_coefficients: !!opencv-matrix\n   rows: 1\n   cols: {count}\n   dt: d\n"
        f"   data: [ {values} ]\n"
    )
    distortion = read_camera(write(tmp_path, "calib.yml", text)).distortion
    assert distortion == Distortion(model, (0.01,) * count)


def test_zero_thin_prism_and_tilt_terms_are_dropped(tmp_path):
    eight = [0.5, -2.5, 0.0001, -0.0002, 1.4, 0.4, -2.3, 1.3]
    message = ROS1_MESSAGE.replace(", 1.3]", ", 1.3, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]")
    assert read_camera(write(tmp_path, "oakd.yaml", message)).distortion.coefficients == tuple(
        eight
    )
    values = ", ".join(map(str, eight + [0.0] * 4))
    text = OPENCV_YAML.split("distortion_coefficients")[0] + (
        f"distortion_coefficients: !!opencv-matrix\n   rows: 12\n   cols: 1\n   dt: d\n"
        f"   data: [ {values} ]\n"
    )
    assert read_camera(write(tmp_path, "calib.yml", text)).distortion == Distortion(
        "rational_polynomial", tuple(eight)
    )


def test_open3d_intrinsic_is_column_major(tmp_path):
    camera = read_camera(write(tmp_path, "intrinsic.json", OPEN3D_JSON))
    assert camera == Camera((480, 640), (525.0, 526.0), (319.5, 239.5), None)
    # write_pinhole_camera_parameters nests the same under "intrinsic"
    nested = {"class_name": "PinholeCameraParameters", "extrinsic": [1.0] * 16}
    nested["intrinsic"] = OPEN3D_JSON
    assert read_camera(write(tmp_path, "params.json", nested)) == camera


def test_mvtec3d_halcon_division(tmp_path):
    camera = read_camera(write(tmp_path, "camera_parameters.json", MVTEC_JSON))
    focus = MVTEC_JSON["focus"]
    assert camera.grid_shape == (400, 400)
    assert camera.focal_px == pytest.approx((focus / 3.74983e-06, focus / 3.75e-06))
    assert camera.principal_point == (54.0458, 196.07)
    assert camera.distortion.model == "division"
    assert camera.distortion.coefficients == pytest.approx((-2205.03 * focus**2,))
    no_lens = read_camera(write(tmp_path, "pinhole.json", {**MVTEC_JSON, "kappa": 0.0}))
    assert no_lens.distortion is None


def test_distort_undistort_round_trip_with_a_camera_read_from_file(tmp_path):
    camera = read_camera(write(tmp_path, "ost.yaml", ROS_CAMERA_INFO))
    (h, w), (fx, fy), (cx, cy) = camera.grid_shape, camera.focal_px, camera.principal_point
    v, u = np.mgrid[0:h:7, 0:w:7].astype(np.float64)
    x, y = (u - cx) / fx, (v - cy) / fy
    xd, yd = distort(*undistort(x, y, camera.distortion), camera.distortion)
    np.testing.assert_allclose(xd, x, atol=1e-9)
    np.testing.assert_allclose(yd, y, atol=1e-9)


def test_real_mvtec3d_calibrations(real_data):
    root = real_data / "mvtec3d_ad"
    tire = read_camera(root / "tire" / "calibration" / "camera_parameters.json")
    assert tire.grid_shape == (800, 600) and tire.principal_point == (376.046, 423.07)
    camera = read_camera(root / "cable_gland" / "calibration" / "camera_parameters.json")
    assert camera.grid_shape == (400, 400)
    assert camera.focal_px[0] == pytest.approx(2758.285, abs=1e-3)
    assert camera.principal_point == pytest.approx((54.0458, 196.07))
    assert camera.distortion.model == "division"
    assert camera.distortion.coefficients[0] == pytest.approx(-2205.03 * 0.0103431**2)


# --- refusals: each one line naming the file and the problem; the YAML subset ---

CAMERA_INFO = "height: 480\nwidth: 640\ndistortion_model: plumb_bob\nD: [0, 0, 0, 0, 0]\n"
K = "K: [500, 0, 320, 0, 500, 240, 0, 0, 1]\n"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("height: 480\nwidth: 640\nK: [1, 2, 3]\n", "K must be a 3x3 matrix"),
        (
            CAMERA_INFO + "K: [500, 0.5, 320, 0, 500, 240, 0, 0, 1]\n",
            "skewed pixels are not supported",
        ),
        (CAMERA_INFO + "K: [500, 0, 320, 0, 500, 240, 0, 0, 2]\n", "K is not a camera matrix"),
        (CAMERA_INFO + "K: [0, 0, 320, 0, 500, 240, 0, 0, 1]\n", "fx must be positive"),
        (CAMERA_INFO + "K: [500, 0, 320, 0, -5, 240, 0, 0, 1]\n", "fy must be positive"),
        (CAMERA_INFO + "K: [500, 0, 320, 0, .inf, 240, 0, 0, 1]\n", "K must be a finite number"),
        (CAMERA_INFO + "K: [500, 0, .nan, 0, 500, 240, 0, 0, 1]\n", "K must be a finite number"),
        (CAMERA_INFO + "K: [500, 0, 1" + "0" * 400 + ", 0, 5, 2, 0, 0, 1]\n", "K must be a finite"),
        ("width: 640\n" + K, "missing height"),
        ("height: 480.5\nwidth: 640\n" + K, "height must be an integer >= 2, got 480.5"),
        ("height: 1\nwidth: 640\n" + K, "height must be an integer >= 2, got 1"),
        ("height: 480\nwidth: '640'\n" + K, "width must be an integer >= 2"),
        (
            K + "height: 480\nwidth: 640\nD: [0.1, 0.2]\ndistortion_model: plumb_bob\n",
            "plumb_bob distortion takes 4 or 5",
        ),
        (
            K + "height: 480\nwidth: 640\nD: [0.1, 0.2, 0, 0]\ndistortion_model: equidistant\n",
            "distortion model 'equidistant' is not supported",
        ),
        (
            "image_width: 640\nimage_height: 480\ncamera_matrix:\n  rows: 3\n  cols: 3\n  data: [1, 0, 1, 0, 1, 1, 0, 0]\n",
            "camera_matrix is 3x3 but holds 8 values",
        ),
        (
            OPENCV_YAML.replace("rows: 5", "rows: 14").replace(
                "-5.7843597214487474e-01", ", ".join(["0"] * 9 + ["0.001"])
            ),
            "holds 14 values; expected 4 or 5",
        ),
        (
            "height: 4\nwidth: 4\ndistortion_model: rational_polynomial\n"
            + "D: [1, 2, 0, 0, 3, 4, 5, 6, 0.1, 0, 0, 0]\n"
            + K,
            "rational_polynomial distortion takes 8 finite coefficients",
        ),
    ],
)
def test_bad_camera_values(tmp_path, text, problem):
    path = write(tmp_path, "bad_camera.yaml", text)
    with pytest.raises(PcprepError, match=r"bad_camera\.yaml: .*") as info:
        read_camera(path)
    assert problem in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (
            {**MVTEC_JSON, "camera_type": "area_scan_polynomial"},
            "camera_type 'area_scan_polynomial' is not supported",
        ),
        (
            {**MVTEC_JSON, "camera_type": "area_scan_telecentric_division"},
            "'area_scan_telecentric_division' is not supported",
        ),
        ({**MVTEC_JSON, "sx": 0}, "sx must be positive"),
        ({k: v for k, v in MVTEC_JSON.items() if k != "kappa"}, "missing kappa"),
        ({k: v for k, v in MVTEC_JSON.items() if k != "image_width"}, "missing image_width"),
        (
            {**OPEN3D_JSON, "intrinsic_matrix": [525, 0, 0, 3, 526, 0, 319.5, 239.5, 1]},
            "skewed pixels are not supported",
        ),
        ({**OPEN3D_JSON, "width": 0}, "width must be an integer >= 2, got 0"),
        ({"fx": 500, "fy": 500}, "not a calibration file pcprep reads (keys: fx, fy)"),
        ([1, 2, 3], "not a calibration file pcprep reads"),
    ],
)
def test_bad_json(tmp_path, content, problem):
    path = write(tmp_path, "calib.json", content)
    with pytest.raises(PcprepError, match=r"calib\.json: ") as info:
        read_camera(path)
    assert problem in str(info.value)


def test_unrecognised_and_unreadable_files(tmp_path):
    with pytest.raises(PcprepError, match=r"empty\.yaml: the file is empty; expected ROS"):
        read_camera(write(tmp_path, "empty.yaml", "\n  \n"))
    with pytest.raises(PcprepError, match=r"missing\.yaml: file not found"):
        read_camera(tmp_path / "missing.yaml")
    with pytest.raises(PcprepError, match=r": is a folder"):
        read_camera(tmp_path)
    binary = tmp_path / "scan.tiff"
    binary.write_bytes(b"II*\x00\x08\x00\x00\x00\xff\xfe\x00\x81")
    with pytest.raises(PcprepError, match=r"scan\.tiff: not a text file; expected ROS camera_info"):
        read_camera(binary)
    for name, text in [
        ("notes.yaml", "focal: 500\nsize: 640x480\n"),
        ("broken.json", '{"width": 640,'),
        ("list.yaml", "- 1\n- 2\n"),
        ("anchor.yaml", "K: &k [1, 2]\n"),
    ]:
        with pytest.raises(
            PcprepError, match=rf"{name}: not a calibration file pcprep reads.*HALCON"
        ) as info:
            read_camera(write(tmp_path, name, text))
        assert "\n" not in str(info.value)


def test_yaml_subset():
    text = "a: 'it''s'  # comment\nb: \"x # y\"\nc: {p: [1, 2], q: .5}\nd: [\n  1,\n  2,\n]\ne:\n  - 3\n"
    assert parse_calibration_yaml(text) == {
        "a": "it's",
        "b": "x # y",
        "c": {"p": [1, 2], "q": 0.5},
        "d": [1, 2],
        "e": [3],
    }
    with pytest.raises(ValueError, match="line 2: inconsistent indentation"):
        parse_calibration_yaml("a: 1\n  b: 2\n")
    with pytest.raises(ValueError, match="line 1: only scalars"):
        parse_calibration_yaml("- a: 1\n")
