"""Dataset layouts: MVTec 3D-AD, Eyecandies and a generic folder of rgb + xyz/depth pairs."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

from pcprep.errors import PcprepError
from pcprep.pairs import generic_pairs, has_generic_pairs
from pcprep.readers import eyecandies_label
from pcprep.sample_ref import SampleRef

__all__ = [
    "LAYOUTS",
    "DatasetIndex",
    "detect_layout",
    "enclosing_dataset",
    "index_dataset",
    "list_categories",
]

LAYOUTS = ("mvtec3d", "eyecandies", "generic")
_LAYOUT_NAMES = {"mvtec3d": "an MVTec 3D-AD", "eyecandies": "an Eyecandies"}
_SPLITS_MVTEC = {"train": "train", "validation": "validation", "val": "validation", "test": "test"}
_SPLITS_GENERIC = {
    "train": ("train",),
    "validation": ("validation", "val"),
    "val": ("val", "validation"),
    "test": ("test",),
}
_SPLITS_EYE = {
    "train": "train",
    "validation": "val",
    "val": "val",
    "test": "test_public",
    "test_public": "test_public",
    "test_private": "test_private",
}


def _subdirs(path: Path) -> list[Path]:
    try:
        return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []


def detect_layout(root: str | os.PathLike[str]) -> str:
    """Which layout ``root`` holds: ``"mvtec3d"``, ``"eyecandies"`` or ``"generic"``."""
    root = Path(root)
    if not root.is_dir():
        raise PcprepError.at(root, "dataset root is not a folder")
    for cls in _subdirs(root):
        if any((cls / s / "data").is_dir() for s in ("train", "val", "test_public")):
            return "eyecandies"
        # Own scans often keep train/ flat (rgb/ + xyz/) and sort only test/ by type: the
        # type folders look like MVTec 3D-AD, but MVTec never holds pairs in a split itself.
        if any(has_generic_pairs(cls / s) for s in ("train", "validation", "test")):
            return "generic"
        # MVTec 3D-AD's xyz/ folders hold TIFFs; the same tree of clouds (xyz/NNN.pcd, their
        # colour inside) or depth maps is own scans sorted as MVTec sorts them
        if any(
            any((t / "xyz").glob("*.tiff"))
            for s in ("train", "validation", "test")
            for t in _subdirs(cls / s)
        ):
            return "mvtec3d"
    return "generic"


class DatasetIndex:
    """Index of a dataset root (layout auto-detected unless given).

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     DatasetIndex(d).layout
        'generic'
    """

    def __init__(
        self, root: str | os.PathLike[str], *, layout: str | None = None, **read_options: object
    ):
        self.root = Path(root)
        self.layout = detect_layout(self.root) if layout is None else layout
        self._layout_detected = layout is None
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        self.read_options = tuple(sorted(read_options.items()))

    def categories(self) -> list[str]:
        """Category (class) names, sorted."""
        if self.layout == "eyecandies":
            return [
                c.name
                for c in _subdirs(self.root)
                if any((c / s / "data").is_dir() for s in ("train", "val", "test_public"))
            ]
        if self.layout == "mvtec3d":
            return [
                c.name
                for c in _subdirs(self.root)
                if any((c / s).is_dir() for s in ("train", "validation", "test"))
            ]
        if has_generic_pairs(self.root):
            return [self.root.name]
        # <class>/[<split>/][<type>/]: pairs up to two folders below a class
        return [
            c.name
            for c in _subdirs(self.root)
            if has_generic_pairs(c)
            or any(
                has_generic_pairs(s) or any(has_generic_pairs(t) for t in _subdirs(s))
                for s in _subdirs(c)
            )
        ]

    def refs(self, category: str | None, split: str) -> list[SampleRef]:
        """Sample references of ``category`` / ``split`` (``train``, ``validation``, ``test``)."""
        builder: Callable[[str | None, str], Iterator[SampleRef]] = {
            "mvtec3d": self._mvtec,
            "eyecandies": self._eyecandies,
            "generic": self._generic,
        }[self.layout]
        if self.layout == "generic" and self._layout_detected:
            self._refuse_a_class_folder()
        refs = list(builder(category, split))
        if not refs:
            where = self.root if category is None else self.root / category
            expected = {
                "mvtec3d": "<split>/<type>/xyz/*.tiff with rgb/ siblings",
                "eyecandies": "<split>/data/NN_depth.png",
                "generic": "rgb/ + xyz/ or depth/ folders, or NAME_rgb.* + NAME_xyz.*/NAME_depth.*",
            }[self.layout]
            raise PcprepError.at(
                where, f"no samples for split {split!r} ({self.layout} layout: expected {expected})"
            )
        return refs

    def _refuse_a_class_folder(self) -> None:
        # One class of MVTec 3D-AD or Eyecandies has no layout of its own: read as own scans,
        # its splits would become classes and `train` would read as a defect type.
        parent = enclosing_dataset(self.root)
        if parent is not None and parent.layout != "generic":
            raise PcprepError.at(
                self.root,
                f"one class of {_LAYOUT_NAMES[parent.layout]} dataset; index the dataset's root: "
                f"DatasetIndex({str(parent.root)!r}).refs({self.root.name!r}, split)",
            )

    def _category_dir(self, category: str | None) -> Path:
        if category is None:
            raise PcprepError.at(self.root, f"a category is needed ({self.layout} layout)")
        folder = self.root / category
        if not folder.is_dir():
            known = ", ".join(self.categories()) or "none"
            raise PcprepError.at(folder, f"unknown category {category!r} (known: {known})")
        return folder

    def _mvtec(self, category: str | None, split: str) -> Iterator[SampleRef]:
        split_dir = self._category_dir(category) / _split(split, _SPLITS_MVTEC, self.root)
        for type_dir in _subdirs(split_dir):
            xyz_dir = type_dir / "xyz"
            if not xyz_dir.is_dir():
                continue
            xyzs = sorted(xyz_dir.glob("*.tif*"))
            stems = {p.stem for p in xyzs}
            for img in sorted((type_dir / "rgb").glob("*")):
                if img.suffix in (".png", ".jpg") and not img.name.startswith("."):
                    if img.stem not in stems:  # a lost point cloud must not drop its scan
                        raise PcprepError.at(img, f"no point cloud {img.stem}.tiff in {xyz_dir}")
            for xyz in xyzs:
                rgb = next(
                    (
                        type_dir / "rgb" / f"{xyz.stem}{e}"
                        for e in (".png", ".jpg")
                        if (type_dir / "rgb" / f"{xyz.stem}{e}").is_file()
                    ),
                    None,
                )
                # Without it the scan has no colour (a depth-only sensor in this layout): it
                # stays in its split, and only a depth detector takes it.
                gt = type_dir / "gt" / f"{xyz.stem}.png"
                gt_path = gt if gt.is_file() else None
                files = tuple(f for f in (xyz, rgb, gt_path) if f is not None)
                yield SampleRef(
                    "mvtec3d",
                    xyz,
                    rgb,
                    gt_path,
                    str(category),
                    split,
                    type_dir.name,
                    int(type_dir.name != "good"),
                    files,
                    self.read_options,
                )

    def _eyecandies(self, category: str | None, split: str) -> Iterator[SampleRef]:
        data = self._category_dir(category) / _split(split, _SPLITS_EYE, self.root) / "data"
        image_index = dict(self.read_options).get("image_index", 5)
        for depth in sorted(data.glob("*_depth.png")):
            stem = depth.name[: -len("_depth.png")]
            rgb = data / f"{stem}_image_{image_index}.png"
            if not rgb.is_file():
                raise PcprepError.at(depth, f"no colour image {rgb.name} next to it")
            gt = data / f"{stem}_mask.png"
            extra = [data / f"{stem}_{n}" for n in ("info_depth.yaml", "metadata.yaml", "pose.txt")]
            gt_path = gt if gt.is_file() else None
            files = tuple(p for p in (depth, rgb, gt_path, *extra) if p is not None and p.is_file())
            label, defect = eyecandies_label(data / stem)
            yield SampleRef(
                "eyecandies",
                depth,
                rgb,
                gt_path,
                str(category),
                split,
                defect,
                label,
                files,
                self.read_options,
            )

    def _generic(self, category: str | None, split: str) -> Iterator[SampleRef]:
        if category is None or (category == self.root.name and not (self.root / category).is_dir()):
            base = self.root
        else:
            base = self._category_dir(category)
        names = _SPLITS_GENERIC.get(split, (split,))
        split_dir = next((base / n for n in names if (base / n).is_dir()), None)
        if split_dir is None and any((base / n).is_dir() for n in _SPLITS_GENERIC):
            # A class split into folders that lacks this split has no samples of it: its other
            # splits are not defect types (the training scans would calibrate as validation).
            return
        folders = [split_dir or base]
        if _subdirs(folders[0]) and not has_generic_pairs(folders[0]):
            folders = _subdirs(folders[0])  # one sub-folder per defect type
        for folder in folders:
            defect = folder.name if folder not in (base, split_dir) else "unlabeled"
            for geo, rgb, gt in generic_pairs(folder):
                label = int(defect not in ("good", "unlabeled"))
                files = tuple(f for f in (geo, rgb, gt) if f is not None)
                yield SampleRef(
                    "generic",
                    geo,
                    rgb,
                    gt,
                    category or self.root.name,
                    split,
                    defect,
                    label,
                    files,
                    self.read_options,
                )


def enclosing_dataset(folder: str | os.PathLike[str]) -> DatasetIndex | None:
    """The index of the dataset that holds ``folder`` as one of its classes, else ``None``.

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     Path(d, "CandyCane", "train", "data").mkdir(parents=True)
        ...     enclosing_dataset(Path(d, "CandyCane")).layout
        'eyecandies'
    """
    folder = Path(folder).absolute()
    if folder.parent == folder:
        return None
    try:
        parent = DatasetIndex(folder.parent)
        return parent if folder.name in parent.categories() else None
    except (OSError, PcprepError):
        return None


def _split(split: str, table: dict[str, str], root: Path) -> str:
    if split not in table:
        raise PcprepError.at(root, f"unknown split {split!r} (use one of {sorted(set(table))})")
    return table[split]


def index_dataset(
    root: str | os.PathLike[str], category: str | None, split: str, **read_options: object
) -> list[SampleRef]:
    """`SampleRef`s of one category and split; the layout is auto-detected.

    Layouts: MVTec 3D-AD (``<root>/<class>/{train,validation,test}/<type>/{xyz,rgb,gt}/``),
    Eyecandies (``<root>/<Class>/{train,val,test_public}/data/NN_*``; ``validation`` and ``test``
    map to ``val`` and ``test_public``), or a generic folder of pairs (``rgb/`` + ``xyz/`` or
    ``depth/`` subfolders, or flat ``<stem>_rgb.png`` + ``<stem>_xyz.tiff``/``<stem>_depth.png``;
    an organized ``.pcd`` / ``.ply`` cloud with colour may stand without its rgb;
    optionally under ``<category>/[<split>/][<type>/]``; ``validation`` may be ``val/``; a class
    without split folders serves every split, one with them only the splits it holds).

    Raises:
        PcprepError: unknown category or split, an empty folder, or an xyz without its rgb.
    """
    return DatasetIndex(root, **read_options).refs(category, split)


def list_categories(root: str | os.PathLike[str]) -> list[str]:
    """Category names found under ``root`` (any layout)."""
    return DatasetIndex(root).categories()
