"""pcprep: organized point clouds and depth files to clean anomaly-detection inputs.

Readers for MVTec 3D-AD, Eyecandies and own scans (TIFF / NPY / depth images, PCD / PLY clouds;
unorganized clouds projected onto a grid with `organize_points`), a robust background-plane
removal, the 3DSR reference preprocessing (spec §4) as small pure numba-backed steps, and a
cached parallel dataset preprocessor. numpy / numba / scipy only; no torch.
"""

from pcprep.cache import cache_key, load_prepared, save_prepared
from pcprep.camera import Camera, Distortion, distort, undistort
from pcprep.camera_files import read_camera
from pcprep.dataset import preprocess_dataset, preprocess_refs
from pcprep.errors import PcprepError
from pcprep.fileio import parse_simple_yaml, read_mask, read_rgb, read_simple_yaml, read_xyz
from pcprep.index import (
    DatasetIndex,
    detect_layout,
    enclosing_dataset,
    index_dataset,
    list_categories,
)
from pcprep.organize import organize_points
from pcprep.pipeline import DEPTH_AXES, PLANE_METHODS, check_sample, preprocess
from pcprep.plane import (
    border_points,
    fit_plane_corners,
    fit_plane_lstsq,
    fit_plane_robust,
    foreground_mask,
    plane_distance,
    plane_height,
)
from pcprep.pointcloud_files import (
    POINT_CLOUD_EXT,
    PointCloudFile,
    point_cloud_has_colour,
    read_cloud_points,
    read_point_cloud,
)
from pcprep.readers import (
    EYECANDIES_FOCAL_PX,
    depth_to_xyz,
    eyecandies_depth_metres,
    eyecandies_label,
    read_eyecandies,
    read_mvtec3d,
    read_pair,
)
from pcprep.records import Prepared, Sample
from pcprep.sample_ref import SampleRef
from pcprep.steps import (
    area_coverage,
    close_mask,
    drop_border_components,
    fill_holes,
    normalize_depth,
    normalize_height,
    resize_mask,
    resize_rgb,
    resize_xyz,
)
from pcprep.units import DEPTH_UNITS, PLAUSIBLE_DISTANCE_M, check_plausible_distance

__version__ = "0.1.0"

__all__ = [
    "DEPTH_AXES",
    "DEPTH_UNITS",
    "EYECANDIES_FOCAL_PX",
    "PLANE_METHODS",
    "PLAUSIBLE_DISTANCE_M",
    "POINT_CLOUD_EXT",
    "Camera",
    "DatasetIndex",
    "Distortion",
    "PcprepError",
    "PointCloudFile",
    "Prepared",
    "Sample",
    "SampleRef",
    "area_coverage",
    "border_points",
    "cache_key",
    "check_plausible_distance",
    "check_sample",
    "close_mask",
    "depth_to_xyz",
    "detect_layout",
    "distort",
    "drop_border_components",
    "enclosing_dataset",
    "eyecandies_depth_metres",
    "eyecandies_label",
    "fill_holes",
    "fit_plane_corners",
    "fit_plane_lstsq",
    "fit_plane_robust",
    "foreground_mask",
    "index_dataset",
    "list_categories",
    "load_prepared",
    "normalize_depth",
    "normalize_height",
    "organize_points",
    "parse_simple_yaml",
    "plane_distance",
    "plane_height",
    "point_cloud_has_colour",
    "preprocess",
    "preprocess_dataset",
    "preprocess_refs",
    "read_camera",
    "read_cloud_points",
    "read_eyecandies",
    "read_mask",
    "read_mvtec3d",
    "read_pair",
    "read_point_cloud",
    "read_rgb",
    "read_simple_yaml",
    "read_xyz",
    "resize_mask",
    "resize_rgb",
    "resize_xyz",
    "save_prepared",
    "undistort",
]
