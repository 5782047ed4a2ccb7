"""Write a synthetic dataset in the MVTec 3D-AD layout, deterministically and atomically."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import tifffile

from depthsim._rng import DepthsimError
from depthsim.scenes._defects import DEFECT_MODALITY, GT_IDS
from depthsim.scenes._objects import OBJECT_CLASSES
from depthsim.scenes._png import encode_png
from depthsim.scenes._render import FIELD_OF_VIEW_M, focal_length_px, render_scene

CLASSES: tuple[str, ...] = tuple(OBJECT_CLASSES)
FORMAT_VERSION = 1
_SPLIT_CODES = {"train": 0, "validation": 1, "test": 2}
_TYPE_CODES = {"good": 0} | {t: i + 1 for i, t in enumerate(DEFECT_MODALITY)}


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb") as fh:  # durable before the rename (as vqcore.atomic_write)
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; like open(): the umask's mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_xyz_tiff(path: Path, xyz: np.ndarray) -> None:
    """``(H, W, 3)`` float32 metres as an uncompressed RGB-interleaved TIFF (MVTec 3D-AD style)."""
    _atomic_write(
        path,
        lambda p: tifffile.imwrite(
            p, np.ascontiguousarray(xyz, np.float32), photometric="rgb", metadata=None
        ),
    )


def write_png(path: Path, image: np.ndarray) -> None:
    """uint8 ``(H, W)`` (grey) or ``(H, W, 3)`` (RGB) as PNG."""
    data = encode_png(image)
    _atomic_write(path, lambda p: p.write_bytes(data))


def sample_seed(seed: int, class_name: str, split: str, defect_type: str, index: int) -> list[int]:
    """Seed of one sample: independent of which other classes / how many samples are generated."""
    return [seed, CLASSES.index(class_name), _SPLIT_CODES[split], _TYPE_CODES[defect_type], index]


def generate_dataset(
    root: str | os.PathLike[str],
    *,
    classes: Sequence[str] | None = None,
    size: int = 128,
    n_train: int = 40,
    n_validation: int = 8,
    n_test_per_type: int = 6,
    defect_types: Sequence[str] | None = None,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Generate a synthetic MVTec 3D-AD-layout dataset under ``root``.

    Layout: ``root/<class>/{train,validation}/good/{xyz,rgb}/NNN.{tiff,png}`` and
    ``root/<class>/test/<type>/{xyz,rgb,gt}/NNN.{tiff,png,png}`` (``good`` included, with all-zero
    gt), ``root/<class>/class_ids.json`` and ``root/scenes.json`` (written last). Same arguments,
    byte-identical files.

    Args:
        root: output folder (created; existing files of the same names are replaced).
        classes: subset of :data:`CLASSES` (default: all).
        size: image side in pixels.
        n_train, n_validation: defect-free samples per class.
        n_test_per_type: test samples per type, ``good`` and each defect type.
        defect_types: subset of :data:`DEFECT_MODALITY` (default: all).
        seed: dataset seed.
        progress: called as ``progress(done, total)`` after each sample.

    Returns:
        ``root`` as a Path.

    Example:
        >>> import tempfile
        >>> root = generate_dataset(tempfile.mkdtemp(), classes=["puck"], size=32, n_train=1,
        ...                         n_validation=1, n_test_per_type=1)
        >>> sorted(p.name for p in (root / "puck" / "test").iterdir())
        ['bump', 'crack', 'dent', 'good', 'stain']
    """
    for name, names in (("classes", classes), ("defect_types", defect_types)):
        if isinstance(names, str):  # list("puck") would be refused as the unknown class 'p'
            raise DepthsimError(f"{name}: expected a list of names, got the string {names!r}")
    classes = list(CLASSES if classes is None else classes)
    types = list(DEFECT_MODALITY if defect_types is None else defect_types)
    for c in classes:
        if c not in CLASSES:
            raise DepthsimError(f"classes: unknown class {c!r}; expected some of {list(CLASSES)}")
    for t in types:
        if t not in DEFECT_MODALITY:
            raise DepthsimError(
                f"defect_types: unknown type {t!r}; expected some of {list(DEFECT_MODALITY)}"
            )
    for name, n in (
        ("n_train", n_train),
        ("n_validation", n_validation),
        ("n_test_per_type", n_test_per_type),
    ):
        if not _is_int(n) or n < 0:
            raise DepthsimError(f"{name}: expected a non-negative int, got {n!r}")
    if not _is_int(size) or size < 8:
        raise DepthsimError(f"size: expected an int >= 8, got {size!r}")
    # Checked here, not left to numpy's SeedSequence, whose errors do not name the argument.
    if not _is_int(seed) or seed < 0:
        raise DepthsimError(f"seed: expected a non-negative int, got {seed!r}")
    size, seed = int(size), int(seed)
    n_train, n_validation, n_test_per_type = int(n_train), int(n_validation), int(n_test_per_type)
    root = Path(root)
    jobs = []
    for c in classes:
        jobs += [(c, "train", "good", i) for i in range(n_train)]
        jobs += [(c, "validation", "good", i) for i in range(n_validation)]
        for t in ["good", *types]:
            jobs += [(c, "test", t, i) for i in range(n_test_per_type)]
    for done, (c, split, t, i) in enumerate(jobs, 1):
        scene = render_scene(
            c, size=size, defect=t, rng=np.random.default_rng(sample_seed(seed, c, split, t, i))
        )
        folder = root / c / split / t
        write_xyz_tiff(folder / "xyz" / f"{i:03d}.tiff", scene.xyz)
        write_png(folder / "rgb" / f"{i:03d}.png", scene.rgb)
        if split == "test":
            write_png(folder / "gt" / f"{i:03d}.png", scene.gt)
        if progress is not None:
            progress(done, len(jobs))
    ids = {str(GT_IDS[t]): t for t in types} | {"0": "good"}
    for c in classes:
        _atomic_write(
            root / c / "class_ids.json", lambda p: p.write_text(json.dumps(ids, indent=2) + "\n")
        )
    meta = {
        "generator": "depthsim.scenes",
        "format": "mvtec3d_ad",
        "version": FORMAT_VERSION,
        "seed": seed,
        "size": size,
        "classes": classes,
        "defect_types": {t: DEFECT_MODALITY[t] for t in types},
        "gt_ids": {t: GT_IDS[t] for t in types},
        "counts": {"train": n_train, "validation": n_validation, "test_per_type": n_test_per_type},
        "camera": {
            "model": "pinhole",
            "focal_px": focal_length_px(size),
            "principal_point_px": [(size - 1) / 2, (size - 1) / 2],
            "field_of_view_m": FIELD_OF_VIEW_M,
        },
        "units": "m",
    }
    _atomic_write(root / "scenes.json", lambda p: p.write_text(json.dumps(meta, indent=2) + "\n"))
    return root


def _is_int(value: object) -> bool:
    """An int or numpy integer (what the other depthsim functions accept), never a bool."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
