"""Synthetic industrial scans in the MVTec 3D-AD layout and formats.

``generate_dataset`` writes a whole dataset (the demo's and the integration tests' data);
``render_scene`` returns one scan as arrays.
"""

from depthsim.scenes._dataset import CLASSES, generate_dataset
from depthsim.scenes._defects import DEFECT_MODALITY, GT_IDS
from depthsim.scenes._objects import OBJECT_CLASSES
from depthsim.scenes._render import FIELD_OF_VIEW_M, Scene, focal_length_px, render_scene

__all__ = [
    "CLASSES",
    "DEFECT_MODALITY",
    "FIELD_OF_VIEW_M",
    "GT_IDS",
    "OBJECT_CLASSES",
    "Scene",
    "focal_length_px",
    "generate_dataset",
    "render_scene",
]
