"""Calibration files shared by the read_camera tests: OpenCV's FileStorage sample, Open3D's
intrinsic JSON, MVTec 3D-AD's HALCON parameters, and a writer."""

from __future__ import annotations

import json
from pathlib import Path

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
