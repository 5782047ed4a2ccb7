"""A lazily loaded sample of any layout: where its files are and how to read them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pcprep.readers import read_eyecandies, read_mvtec3d, read_pair
from pcprep.records import Sample

__all__ = ["SampleRef"]

#: The reader options each layout takes; another layout's are dropped for it (an unknown one
#: still reaches the reader, which refuses it). A unit is an own-scan option: Eyecandies states
#: its metres in each sample's yaml, so a detector trained on own scans in millimetres reads
#: Eyecandies unchanged.
_READ_OPTIONS = {
    "mvtec3d": ("depth_unit",),
    "eyecandies": ("image_index", "world"),
    "generic": (
        "depth_unit",
        "depth_scale",
        "focal_px",
        "principal_point",
        "grid_shape",
        "distortion",
        "pixel_size",
    ),
}


@dataclass(frozen=True)
class SampleRef:
    """A lazily loaded sample: where its files are and how to read them.

    Attributes:
        layout: ``"mvtec3d"``, ``"eyecandies"`` or ``"generic"``.
        path: the geometry file (xyz TIFF, Eyecandies depth PNG, or own depth/xyz file).
        rgb_path: the colour image (``None``: a point cloud's own colour).
        gt_path: the mask, if any.
        category, split, defect_type, label: what the folder layout says.
        files: every file `load` reads (used for content hashing by the cache).
    """

    layout: str
    path: Path
    rgb_path: Path | None
    gt_path: Path | None
    category: str
    split: str
    defect_type: str
    label: int
    files: tuple[Path, ...] = field(default=())
    options: tuple[tuple[str, object], ...] = field(default=())

    def load(self) -> Sample:
        """Read the sample (raises `PcprepError` naming the file on any problem)."""
        own = _READ_OPTIONS[self.layout]
        others = {k for keys in _READ_OPTIONS.values() for k in keys if k not in own}
        opts = {k: v for k, v in self.options if k not in others}
        if self.layout == "mvtec3d":
            return read_mvtec3d(self.path, **opts)  # type: ignore[arg-type]
        if self.layout == "eyecandies":
            prefix = self.path.with_name(self.path.name[: -len("_depth.png")])
            return read_eyecandies(prefix, **opts)  # type: ignore[arg-type]
        sample = read_pair(self.path, self.rgb_path, gt_path=self.gt_path, **opts)  # type: ignore[arg-type]
        if self.gt_path is None and self.defect_type != "unlabeled":
            sample.defect_type, sample.label = self.defect_type, self.label
        return sample
