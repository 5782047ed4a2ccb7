"""pcprep.read_camera's refusals, each one line naming the file and the problem, and the YAML
subset it parses (the formats it reads: test_camera_files.py)."""

from __future__ import annotations

import pytest
from pcprep import PcprepError, read_camera
from pcprep.calibration_yaml import parse_calibration_yaml

from .camera_samples import MVTEC_JSON, OPEN3D_JSON, OPENCV_YAML, write

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
