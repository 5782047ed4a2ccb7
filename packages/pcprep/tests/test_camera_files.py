"""pcprep.read_camera: each calibration format, told by content, and every refusal."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from pcprep import Camera, Distortion, read_camera
from pcprep.calibration_yaml import parse_calibration_yaml
from pcprep.camera import distort, undistort

from .camera_samples import MVTEC_JSON, OPEN3D_JSON, OPENCV_YAML, write

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


def test_real_mvtec3d_cable_gland_calibration():
    root = os.environ.get("THREEDSR_CABLE_GLAND")
    path = Path(root or ".") / "cable_gland" / "calibration" / "camera_parameters.json"
    if not root or not path.is_file():
        pytest.skip("THREEDSR_CABLE_GLAND does not name a folder with cable_gland/calibration/")
    camera = read_camera(path)
    assert camera.grid_shape == (400, 400)
    assert camera.focal_px[0] == pytest.approx(2758.285, abs=1e-3)
    assert camera.principal_point == pytest.approx((54.0458, 196.07))
    assert camera.distortion.model == "division"
    assert camera.distortion.coefficients[0] == pytest.approx(-2205.03 * 0.0103431**2)
