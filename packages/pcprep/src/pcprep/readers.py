"""Readers that turn dataset files into a `Sample`: MVTec 3D-AD, Eyecandies and own scans."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pcprep.camera import Distortion, undistort
from pcprep.errors import PcprepError
from pcprep.fileio import (
    read_array,
    read_mask,
    read_rgb,
    read_simple_yaml,
    read_xyz,
    sanitize_xyz,
)
from pcprep.pointcloud_files import is_point_cloud_file, read_point_cloud
from pcprep.records import Sample
from pcprep.units import check_plausible_distance, scaled_xyz, unit_scale

__all__ = [
    "EYECANDIES_FOCAL_PX",
    "EYECANDIES_TYPES",
    "depth_to_xyz",
    "eyecandies_depth_metres",
    "eyecandies_label",
    "read_eyecandies",
    "read_mvtec3d",
    "read_pair",
]

#: Focal length (pixels) that the Eyecandies tools and M3DM use to back-project depth.
EYECANDIES_FOCAL_PX = 711.11
#: Eyecandies anomaly kinds, in the order they are joined into a defect type (``"bumps+dents"``).
EYECANDIES_TYPES = ("bumps", "dents", "colors", "normals")

_PNG_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def _check_same_size(
    sample_path: Path, other: Path, shape: tuple[int, ...], ref: tuple[int, int]
) -> None:
    if tuple(shape[:2]) != tuple(ref):
        raise PcprepError.at(
            other,
            f"size {shape[0]}x{shape[1]} does not match {sample_path.name} ({ref[0]}x{ref[1]})",
        )


def _find_sibling(folder: Path, stem: str) -> Path | None:
    for ext in _PNG_EXTS:
        cand = folder / f"{stem}{ext}"
        if cand.is_file():
            return cand
    return None


def read_mvtec3d(xyz_path: str | os.PathLike[str], *, depth_unit: str | None = None) -> Sample:
    """Read one MVTec 3D-AD sample from its ``.../<type>/xyz/NNN.tiff``.

    The colour image is the sibling ``../rgb/NNN.png`` (without it the scan has no colour,
    ``Sample.rgb`` None, which only a ``depth`` detector takes) and the mask ``../gt/NNN.png`` (optional;
    values are defect-class ids, binarised with ``> 0``). The defect type is the name of the
    folder above ``xyz/``; ``label`` is 0 for ``good`` and 1 otherwise. Non-square images are fine.

    Args:
        xyz_path: path of the organized point cloud (``(H, W, 3)`` float32, zeros invalid).
        depth_unit: its unit (`DEPTH_UNITS`); default metres, as MVTec 3D-AD writes them.

    Returns:
        The `Sample`.

    Raises:
        PcprepError: a size mismatch, an unreadable / malformed file, or
            points at an implausible distance for the unit (`check_plausible_distance`).
    """
    xyz_path = Path(xyz_path)
    xyz = scaled_xyz(xyz_path, read_xyz(xyz_path), unit_scale(depth_unit))
    sample_dir = xyz_path.parent.parent
    rgb_path = _find_sibling(sample_dir / "rgb", xyz_path.stem)
    rgb = None
    if rgb_path is not None:
        rgb = read_rgb(rgb_path)
        _check_same_size(xyz_path, rgb_path, rgb.shape, xyz.shape[:2])
    defect_type = sample_dir.name
    gt = None
    gt_path = _find_sibling(sample_dir / "gt", xyz_path.stem)
    if gt_path is not None:
        gt = read_mask(gt_path)
        _check_same_size(xyz_path, gt_path, gt.shape, xyz.shape[:2])
    label = 0 if defect_type == "good" else 1
    return Sample(xyz=xyz, rgb=rgb, gt=gt, label=label, defect_type=defect_type, path=xyz_path)


def depth_to_xyz(
    depth: np.ndarray,
    *,
    focal_px: float | tuple[float, float] | None = None,
    principal_point: tuple[float, float] | None = None,
    distortion: Distortion | None = None,
    pixel_size: float = 1.0,
) -> np.ndarray:
    """Organized xyz from a metric depth map (z); zero or non-finite depth gives invalid zeros.

    With ``focal_px`` it back-projects through a pinhole camera (principal point ``(cx, cy)``,
    by default ``(W / 2, H / 2)`` as the Eyecandies tools use; ``distortion`` its lens, each
    pixel's ray undistorted by `pcprep.undistort`; a pixel beyond what a barrel lens reaches
    has no ray and is invalid); without it, x and y are the pixel grid
    times ``pixel_size``, so plane distances are effectively measured along z.

    Shape:
        depth ``(H, W)`` -> ``(H, W, 3)`` float32.

    Examples:
        >>> xyz = depth_to_xyz(np.full((2, 2), 2.0), focal_px=2.0)
        >>> xyz[0, 0].tolist(), xyz[1, 1].tolist()
        ([-1.0, -1.0, 2.0], [0.0, 0.0, 2.0])
    """
    depth = np.asarray(depth, dtype=np.float64)
    h, w = depth.shape
    ok = np.isfinite(depth) & (depth > 0)
    z = np.where(ok, depth, 0.0)
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    if focal_px is None:
        x, y = cols * pixel_size, rows * pixel_size
    else:
        fx, fy = (focal_px, focal_px) if np.isscalar(focal_px) else focal_px
        cx, cy = principal_point if principal_point is not None else (w / 2.0, h / 2.0)
        distortion = Distortion.of(distortion)
        if distortion is None or distortion.is_identity:
            x, y = (cols - cx) * z / fx, (rows - cy) * z / fy
        else:
            rx, ry = undistort((cols - cx) / fx, (rows - cy) / fy, distortion)
            ok &= np.isfinite(rx) & np.isfinite(ry)  # a pixel the lens images no ray onto
            x, y = rx * z, ry * z
    xyz = np.stack([x, y, z], axis=-1).astype(np.float32)
    xyz[~ok] = 0.0
    return xyz


def eyecandies_depth_metres(
    depth_png: str | os.PathLike[str], info_yaml: str | os.PathLike[str]
) -> np.ndarray:
    """Eyecandies 16-bit depth to metres: ``d / 65535 * (max - min) + min`` from ``info_depth.yaml``."""
    raw = read_array(depth_png)
    if raw.ndim != 2 or raw.dtype != np.uint16:
        raise PcprepError.at(
            depth_png, f"expected a single-channel 16-bit depth PNG, got {raw.dtype} {raw.shape}"
        )
    info = read_simple_yaml(info_yaml)
    norm = info.get("normalization")
    try:
        lo, hi = float(norm["min"]), float(norm["max"])  # type: ignore[index]
    except (TypeError, KeyError, ValueError):
        raise PcprepError.at(info_yaml, "missing numeric normalization: {min, max}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and hi >= lo > 0):
        raise PcprepError.at(info_yaml, f"invalid depth normalization min={lo} max={hi}")
    return (raw.astype(np.float64) / 65535.0 * (hi - lo) + lo).astype(np.float32)


def read_eyecandies(
    prefix: str | os.PathLike[str], *, image_index: int = 5, world: bool = False
) -> Sample:
    """Read one Eyecandies sample given its prefix, e.g. ``CandyCane/test_public/data/25``.

    Depth (``<prefix>_depth.png`` + ``<prefix>_info_depth.yaml``) is converted to metres and
    back-projected to an organized xyz in the camera frame (focal 711.11 px, principal point at the
    image centre); ``world=True`` applies ``<prefix>_pose.txt`` instead, as M3DM does. RGB is
    ``<prefix>_image_<image_index>.png`` (5 = global light). ``<prefix>_mask.png`` is the gt.
    The label comes from ``<prefix>_metadata.yaml`` (else from the mask) and the defect type joins
    the anomaly kinds flagged there (``"bumps"``, ``"bumps+dents+colors+normals"``, ...).

    Raises:
        PcprepError: missing or malformed files, or a size mismatch.
    """
    prefix = Path(prefix)
    base = prefix.parent
    stem = prefix.name
    depth_path = base / f"{stem}_depth.png"
    depth = eyecandies_depth_metres(depth_path, base / f"{stem}_info_depth.yaml")
    xyz = depth_to_xyz(depth, focal_px=EYECANDIES_FOCAL_PX)
    if world:
        xyz = _apply_pose(xyz, base / f"{stem}_pose.txt")
    rgb_path = base / f"{stem}_image_{image_index}.png"
    rgb = read_rgb(rgb_path)
    _check_same_size(depth_path, rgb_path, rgb.shape, xyz.shape[:2])
    gt = None
    mask_path = base / f"{stem}_mask.png"
    if mask_path.is_file():
        gt = read_mask(mask_path)
        _check_same_size(depth_path, mask_path, gt.shape, xyz.shape[:2])
    label, defect_type = eyecandies_label(prefix, gt)
    return Sample(xyz=xyz, rgb=rgb, gt=gt, label=label, defect_type=defect_type, path=depth_path)


def eyecandies_label(
    prefix: str | os.PathLike[str], gt: np.ndarray | None = None
) -> tuple[int, str]:
    """``(label, defect_type)`` of an Eyecandies sample from ``<prefix>_metadata.yaml``.

    Without metadata the label comes from the mask (``gt``, else ``<prefix>_mask.png``) and the
    type is ``"anomalous"``; with neither it is ``(0, "unlabeled")``. Several flagged kinds are joined: ``"bumps+dents+colors+normals"``.
    """
    prefix = Path(prefix)
    meta_path = prefix.parent / f"{prefix.name}_metadata.yaml"
    kinds: list[str] = []
    if meta_path.is_file():
        meta = read_simple_yaml(meta_path)
        label = int(bool(meta.get("anomalous", 0)))
        kinds = [k for k in EYECANDIES_TYPES if meta.get(f"anomalous_{k}")]
    else:
        mask_path = prefix.parent / f"{prefix.name}_mask.png"
        if gt is None and mask_path.is_file():
            gt = read_mask(mask_path)
        if gt is None:  # e.g. test_private: nothing says whether it is anomalous
            return 0, "unlabeled"
        label = int(bool(gt.any()))
    if label and not kinds:
        kinds = ["anomalous"]
    return label, ("+".join(kinds) if label else "good")


def _apply_pose(xyz: np.ndarray, pose_path: Path) -> np.ndarray:
    pose = _read_pose(pose_path)
    valid = (xyz != 0).any(-1)
    out = xyz.astype(np.float64) @ pose[:3, :3].T + pose[:3, 3]
    out[~valid] = 0.0
    return out.astype(np.float32)


def _read_pose(path: Path) -> np.ndarray:
    if not path.is_file():
        raise PcprepError.at(path, "file not found")
    try:
        pose = np.loadtxt(path, dtype=np.float64)
    except ValueError as exc:
        raise PcprepError.at(path, f"cannot parse pose ({exc})") from None
    if pose.shape != (4, 4) or not np.isfinite(pose).all():
        raise PcprepError.at(path, f"expected a finite 4x4 pose, got shape {pose.shape}")
    return pose


def read_pair(
    xyz_or_depth_path: str | os.PathLike[str],
    rgb_path: str | os.PathLike[str] | None,
    *,
    gt_path: str | os.PathLike[str] | None = None,
    depth_unit: str | None = None,
    depth_scale: float | None = None,
    focal_px: float | tuple[float, float] | None = None,
    principal_point: tuple[float, float] | None = None,
    grid_shape: tuple[int, int] | None = None,
    distortion: Distortion | None = None,
    pixel_size: float = 1.0,
) -> Sample:
    """Read an own scan: an organized xyz (``(H, W, 3)`` float TIFF/NPY, or an organized PCD /
    PLY point cloud) or a depth map, plus RGB.

    Without ``rgb_path`` (``None``) a point cloud's own colour is the RGB; a scan with neither
    has no colour (``Sample.rgb`` None: only a ``depth`` detector takes it). With both, the
    separate colour image wins. A single-channel file is depth used as z; x and y come from
    `depth_to_xyz` (pixel grid, or a camera: ``focal_px``, ``principal_point`` and the lens's
    ``distortion``). An unorganized cloud is projected onto the camera's ``grid_shape``
    ``(H, W)`` pixels through the same camera (`read_point_cloud`); `pcprep.read_camera`
    reads them all from a calibration file. ``depth_unit`` (``"m"``, ``"mm"``, ``"um"``) is the unit of the
    file, depth or xyz; without it float files are taken as metres and integer depth (16-bit PNG,
    ...) as millimetres, the usual sensor conventions. ``depth_scale`` (metres per stored unit)
    overrides both. Zero and non-finite values are invalid.

    Raises:
        PcprepError: unreadable files, wrong channel count or dtype, a size mismatch, or a scan
            whose median distance is implausible for its unit (`check_plausible_distance`).
    """
    path = Path(xyz_or_depth_path)
    cloud_rgb = None
    if is_point_cloud_file(path):
        cloud = read_point_cloud(
            path,
            grid_shape=grid_shape,
            focal_px=focal_px,
            principal_point=principal_point,
            distortion=distortion,
        )
        arr, cloud_rgb = cloud.xyz, cloud.rgb
    else:
        arr = read_array(path)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 3:
        if arr.shape[-1] != 3:
            raise PcprepError.at(
                path, f"expected (H, W, 3) xyz or (H, W) depth, got shape {arr.shape}"
            )
        # a cloud's xyz is read and checked already; a TIFF / PNG is read again by read_xyz
        own = path.suffix.lower() == ".npy" or is_point_cloud_file(path)
        xyz = _xyz_from_array(path, arr) if own else read_xyz(path)
        scale = unit_scale(depth_unit) if depth_scale is None else depth_scale
        xyz = scaled_xyz(path, xyz, scale)
    elif arr.ndim == 2:
        if np.issubdtype(arr.dtype, np.floating):
            default = 1.0
        elif np.issubdtype(arr.dtype, np.integer) and arr.dtype != np.uint8:
            default = 1e-3
        else:
            raise PcprepError.at(
                path, f"unsupported depth dtype {arr.dtype} (need float or 16/32-bit int)"
            )
        scale = unit_scale(depth_unit, default) if depth_scale is None else depth_scale
        depth = arr.astype(np.float64) * scale
        check_plausible_distance(path, depth, scale, "depth")
        xyz = depth_to_xyz(
            depth,
            focal_px=focal_px,
            principal_point=principal_point,
            distortion=distortion,
            pixel_size=pixel_size,
        )
    else:
        raise PcprepError.at(path, f"expected (H, W, 3) xyz or (H, W) depth, got shape {arr.shape}")
    if rgb_path is None:
        rgb = cloud_rgb
    else:
        rgb = read_rgb(rgb_path)
        _check_same_size(path, Path(rgb_path), rgb.shape, xyz.shape[:2])
    gt = None
    if gt_path is not None:
        gt = read_mask(gt_path)
        _check_same_size(path, Path(gt_path), gt.shape, xyz.shape[:2])
    label = int(gt is not None and bool(gt.any()))
    defect_type = "unlabeled" if gt is None else ("anomalous" if label else "good")
    return Sample(xyz=xyz, rgb=rgb, gt=gt, label=label, defect_type=defect_type, path=path)


def _xyz_from_array(path: Path, arr: np.ndarray) -> np.ndarray:
    if not np.issubdtype(arr.dtype, np.floating):
        raise PcprepError.at(path, f"expected float xyz in metres, got dtype {arr.dtype}")
    return sanitize_xyz(arr)
