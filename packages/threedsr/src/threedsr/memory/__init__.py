"""The descriptor memory: a k-nearest-neighbour memory of hand-made surface, colour, texture and
interior descriptors of a class's good scans. It fits in minutes on a CPU, with no training."""

from threedsr.memory.config import MemoryConfig
from threedsr.memory.descriptors import DESCRIPTOR_GROUPS, local_descriptors
from threedsr.memory.features import MemoryFeatures, object_cells
from threedsr.memory.fit import fit_memory
from threedsr.memory.knn import nearest_rows
from threedsr.memory.local_scale import local_scales
from threedsr.memory.torch_model import FeatureMemory

__all__ = [
    "DESCRIPTOR_GROUPS",
    "FeatureMemory",
    "MemoryConfig",
    "MemoryFeatures",
    "fit_memory",
    "local_descriptors",
    "local_scales",
    "nearest_rows",
    "object_cells",
]
