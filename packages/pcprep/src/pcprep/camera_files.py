"""A camera's calibration file to a `pcprep.camera.Camera`: `read_camera`.

The format is told by the content, not the file name (``.yaml``, ``.yml``, ``.json``, ``.txt``
all occur for each):

- ROS ``camera_info`` YAML (``camera_calibration``, ``camera_info_manager``) or the same in JSON:
  ``image_width``, ``image_height``, ``camera_matrix: {rows, cols, data}``,
  ``distortion_model``, ``distortion_coefficients: {rows, cols, data}``;
- a ROS ``sensor_msgs/CameraInfo`` message dumped as YAML or JSON (``rostopic echo -n1``,
  ``ros2 topic echo --once``): ``height``, ``width``, ``distortion_model``, ``D`` / ``d``,
  ``K`` / ``k`` (row-major 3x3);
- OpenCV ``FileStorage`` YAML (``%YAML:1.0``, the calibration samples' output):
  ``camera_matrix`` and ``distortion_coefficients`` as ``!!opencv-matrix``, the model told by
  the coefficient count (4 or 5: ``plumb_bob``, 8: ``rational_polynomial``);
- Open3D's ``PinholeCameraIntrinsic`` JSON: ``width``, ``height``, ``intrinsic_matrix``
  (column-major), no distortion; also inside a ``PinholeCameraParameters`` file's ``intrinsic``;
- HALCON's ``area_scan_division`` parameters, as MVTec 3D-AD's
  ``calibration/camera_parameters.json``: ``focus``, ``kappa``, ``sx``, ``sy``, ``cx``, ``cy``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from pcprep.calibration_yaml import parse_calibration_yaml
from pcprep.camera import Camera, Distortion
from pcprep.errors import PcprepError

__all__ = ["read_camera"]

_FORMATS = (
    "ROS camera_info YAML/JSON, a ROS CameraInfo message (YAML/JSON), OpenCV FileStorage YAML, "
    "Open3D PinholeCameraIntrinsic JSON, HALCON/MVTec 3D-AD camera_parameters.json"
)

#: OpenCV names no model: its count of coefficients tells it.
_OPENCV_MODELS = {4: "plumb_bob", 5: "plumb_bob", 8: "rational_polynomial"}


def _drop_zero_extras(coefficients: list[float]) -> list[float]:
    """OpenCV's 12 and 14 coefficients add thin-prism and tilt terms to rational_polynomial's 8,
    which `pcprep.camera` does not model; all zero (OAK-D's ROS driver sends 14) they change
    nothing, so the 8 are the same lens. Non-zero ones stay, for the count check to refuse."""
    if len(coefficients) in (12, 14) and not any(coefficients[8:]):
        return coefficients[:8]
    return coefficients


def _load(path: Path) -> dict:
    if path.is_dir():
        raise PcprepError.at(path, "is a folder, not a camera calibration file")
    if not path.is_file():
        raise PcprepError.at(path, "file not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise PcprepError.at(path, f"not a text file; expected {_FORMATS}") from None
    except OSError as exc:
        problem = " ".join(str(exc).split())[:120] or type(exc).__name__
        raise PcprepError.at(path, f"cannot read it ({problem})") from None
    if not text.strip():
        raise PcprepError.at(path, f"the file is empty; expected {_FORMATS}")
    # JSON is YAML too, but not the subset parse_calibration_yaml reads (multi-line mappings)
    is_json = text.lstrip()[0] in "[{"
    try:
        data = json.loads(text) if is_json else parse_calibration_yaml(text)
    except ValueError as exc:
        kind = "JSON" if is_json else "YAML"
        problem = " ".join(str(exc).split())[:160]
        raise PcprepError.at(
            path, f"not a calibration file pcprep reads ({kind}: {problem}); expected {_FORMATS}"
        ) from None
    if not isinstance(data, dict):
        raise PcprepError.at(path, f"not a calibration file pcprep reads; expected {_FORMATS}")
    return data


def _number(path: Path, value: object, name: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:  # an int beyond float's range
            number = math.inf
        if math.isfinite(number):
            return number
    raise PcprepError.at(path, f"{name} must be a finite number, got {value!r}"[:200])


def _size(path: Path, data: dict, key: str) -> int:
    if key not in data:
        raise PcprepError.at(path, f"missing {key} (the image size in pixels)")
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 2:
        raise PcprepError.at(path, f"{key} must be an integer >= 2, got {value!r}")
    return value


def _numbers(path: Path, value: object, name: str) -> list[float]:
    """A flat list of finite numbers: ``value`` itself, or a ``{rows, cols, data}`` matrix's."""
    if isinstance(value, dict):
        if "data" not in value:
            raise PcprepError.at(path, f"{name} has no data")
        rows, cols, data = value.get("rows"), value.get("cols"), value["data"]
        if isinstance(data, list) and isinstance(rows, int) and isinstance(cols, int):
            if rows * cols != len(data):
                raise PcprepError.at(path, f"{name} is {rows}x{cols} but holds {len(data)} values")
        value = data
    if value is None:
        return []
    if not isinstance(value, list):
        raise PcprepError.at(path, f"{name} must be a list of numbers, got {value!r}")
    return [_number(path, v, name) for v in value]


def _intrinsics(path: Path, k: list[float], name: str) -> tuple[float, float, float, float]:
    """``(fx, fy, cx, cy)`` of a row-major 3x3 camera matrix, checked."""
    if len(k) != 9:
        raise PcprepError.at(path, f"{name} must be a 3x3 matrix (9 values), got {len(k)} values")
    if k[1] != 0.0:
        raise PcprepError.at(
            path, f"{name} has skew {k[1]:g}: skewed pixels are not supported (skew must be 0)"
        )
    if k[3] != 0.0 or k[6:] != [0.0, 0.0, 1.0]:
        raise PcprepError.at(
            path, f"{name} is not a camera matrix [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]: {k}"
        )
    return (*_focal(path, k[0], k[4]), k[2], k[5])


def _focal(path: Path, fx: float, fy: float) -> tuple[float, float]:
    for name, f in (("fx", fx), ("fy", fy)):
        if not (math.isfinite(f) and f > 0.0):
            raise PcprepError.at(path, f"focal length {name} must be positive and finite, got {f}")
    return fx, fy


def _distortion(path: Path, model: object, coefficients: list[float]) -> Distortion | None:
    if model in (None, "", "none") and not coefficients:
        return None  # an uncalibrated ROS camera: no model, no coefficients
    if model not in ("plumb_bob", "rational_polynomial"):
        raise PcprepError.at(
            path,
            f"distortion model {model!r} is not supported (plumb_bob or rational_polynomial)",
        )
    if not coefficients:
        return None
    if model == "rational_polynomial":
        coefficients = _drop_zero_extras(coefficients)
    try:
        return Distortion.checked(model, coefficients)
    except ValueError as exc:
        raise PcprepError.at(path, str(exc)) from None


def _camera(
    path: Path, height: int, width: int, k: tuple[float, ...], distortion: Distortion | None
) -> Camera:
    fx, fy, cx, cy = k
    if not (math.isfinite(cx) and math.isfinite(cy)):
        raise PcprepError.at(path, f"principal point must be finite, got ({cx}, {cy})")
    return Camera((height, width), (fx, fy), (cx, cy), distortion)


def _camera_matrix_file(path: Path, data: dict) -> Camera:
    """ROS ``camera_info`` YAML / JSON, or OpenCV's ``FileStorage`` (which names no model)."""
    height, width = _size(path, data, "image_height"), _size(path, data, "image_width")
    k = _intrinsics(path, _numbers(path, data["camera_matrix"], "camera_matrix"), "camera_matrix")
    coefficients = _numbers(path, data.get("distortion_coefficients"), "distortion_coefficients")
    model = data.get("distortion_model")
    if model is None and coefficients:
        model = _OPENCV_MODELS.get(len(_drop_zero_extras(coefficients)))
        if model is None:
            raise PcprepError.at(
                path,
                f"distortion_coefficients holds {len(coefficients)} values; expected 4 or 5 "
                "(plumb_bob) or 8 (rational_polynomial; 12 or 14 only with zero thin-prism "
                "and tilt terms)",
            )
    return _camera(path, height, width, k, _distortion(path, model, coefficients))


def _camera_info_message(path: Path, data: dict) -> Camera:
    """A ``sensor_msgs/CameraInfo`` message: ROS 1 spells its matrices ``K``, ROS 2 ``k``."""
    height, width = _size(path, data, "height"), _size(path, data, "width")
    k_key = "K" if "K" in data else "k"
    k = _intrinsics(path, _numbers(path, data[k_key], k_key), k_key)
    d_key = "D" if "D" in data else "d"
    coefficients = _numbers(path, data.get(d_key), d_key)
    return _camera(
        path, height, width, k, _distortion(path, data.get("distortion_model"), coefficients)
    )


def _open3d(path: Path, data: dict) -> Camera:
    """Open3D writes its matrix column-major (Eigen's order): transposed here."""
    height, width = _size(path, data, "height"), _size(path, data, "width")
    m = _numbers(path, data["intrinsic_matrix"], "intrinsic_matrix")
    row_major = [m[3 * c + r] for r in range(3) for c in range(3)] if len(m) == 9 else m
    return _camera(path, height, width, _intrinsics(path, row_major, "intrinsic_matrix"), None)


def _halcon(path: Path, data: dict) -> Camera:
    """HALCON's focal length and cell size are metres; kappa is per square metre on the image
    plane, so times focus squared it acts on normalised coordinates (`pcprep.camera`)."""
    kind = data["camera_type"]
    if kind != "area_scan_division":
        raise PcprepError.at(
            path, f"camera_type {kind!r} is not supported (only area_scan_division)"
        )
    height, width = _size(path, data, "image_height"), _size(path, data, "image_width")
    values = {}
    for key in ("focus", "kappa", "sx", "sy", "cx", "cy"):
        if key not in data:
            raise PcprepError.at(path, f"missing {key} (HALCON area_scan_division parameters)")
        values[key] = _number(path, data[key], key)
    for key in ("focus", "sx", "sy"):
        if values[key] <= 0.0:
            raise PcprepError.at(path, f"{key} must be positive, got {values[key]}")
    focus = values["focus"]
    fx, fy = _focal(path, focus / values["sx"], focus / values["sy"])
    kappa = values["kappa"] * focus * focus
    distortion = Distortion("division", (kappa,)) if kappa != 0.0 else None
    return _camera(path, height, width, (fx, fy, values["cx"], values["cy"]), distortion)


def read_camera(path: str | os.PathLike[str]) -> Camera:
    """Read a camera's calibration file (formats: the module's docstring, told by content).

    Returns:
        The `Camera`: ``grid_shape`` ``(H, W)``, ``focal_px`` ``(fx, fy)``, ``principal_point``
        ``(cx, cy)`` (pixel centres at integers), ``distortion`` or None for a pinhole.

    Raises:
        PcprepError: an unreadable file, a format not recognised (the message lists those read),
            a missing or bad image size, a focal length that is not positive, a camera matrix
            that is not 3x3 or has skew, an unsupported lens model or a wrong coefficient count.

    Example:
        >>> import tempfile
        >>> text = '''image_width: 640
        ... image_height: 480
        ... camera_name: left
        ... camera_matrix:
        ...   rows: 3
        ...   cols: 3
        ...   data: [600, 0, 319.5, 0, 601, 239.5, 0, 0, 1]
        ... distortion_model: plumb_bob
        ... distortion_coefficients:
        ...   rows: 1
        ...   cols: 5
        ...   data: [-0.1, 0.02, 0, 0, 0]
        ... '''
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = Path(tmp) / "left.yaml"
        ...     _ = path.write_text(text)
        ...     camera = read_camera(path)
        >>> camera.grid_shape, camera.focal_px, camera.principal_point
        ((480, 640), (600.0, 601.0), (319.5, 239.5))
        >>> camera.distortion
        Distortion(model='plumb_bob', coefficients=(-0.1, 0.02, 0.0, 0.0, 0.0))
    """
    path = Path(path)
    data = _load(path)
    if "camera_type" in data:
        return _halcon(path, data)
    if isinstance(data.get("intrinsic"), dict) and "intrinsic_matrix" in data["intrinsic"]:
        data = data["intrinsic"]  # Open3D's PinholeCameraParameters: intrinsic + extrinsic
    if "intrinsic_matrix" in data:
        return _open3d(path, data)
    if "camera_matrix" in data:
        return _camera_matrix_file(path, data)
    if "K" in data or "k" in data:
        return _camera_info_message(path, data)
    keys = ", ".join(map(str, list(data)[:8]))
    raise PcprepError.at(
        path, f"not a calibration file pcprep reads (keys: {keys or 'none'}); expected {_FORMATS}"
    )
