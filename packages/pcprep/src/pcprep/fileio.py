"""Low-level readers for TIFF / PNG / NPY arrays, PCD / PLY point clouds (through
`pcprep.pointcloud_files`) and Eyecandies' tiny YAML files.

Every failure becomes a one-line `PcprepError` naming the file; user files are only read.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import tifffile

from pcprep.errors import PcprepError

__all__ = [
    "parse_simple_yaml",
    "read_array",
    "read_image",
    "read_mask",
    "read_rgb",
    "read_simple_yaml",
    "read_xyz",
]

_TIFF = {".tif", ".tiff"}
_CLOUDS = {".pcd", ".ply"}  # pcprep.pointcloud_files.POINT_CLOUD_EXT (which imports this module)


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode an image file (PNG, JPEG, ...) fully into an array, without conversion."""
    path = Path(path)
    if path.is_dir():
        raise PcprepError.at(path, "is a folder, not an image file")
    if not path.is_file():
        raise PcprepError.at(path, "file not found")
    # Imported here: TIFF point clouds and NPY arrays read without pillow.
    try:
        from PIL import Image, UnidentifiedImageError
    except ModuleNotFoundError:
        raise PcprepError.at(
            path,
            "reading PNG / JPEG images needs pillow, which is not installed (pip install pillow)",
        ) from None
    try:
        with Image.open(path) as im:
            im.load()  # decode now so truncated files fail here, not later
            if im.mode == "P":
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            elif im.mode in ("I;16", "I;16B", "I;16L"):
                return np.asarray(im, dtype=np.uint16).copy()
            return np.asarray(im).copy()
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
        raise PcprepError.at(path, f"cannot decode image ({_short(exc)})") from None


_TRUNCATED = ("failed to read", "corrupted IFD", "invalid offset", "unexpected end")


def _read_tiff(path: Path) -> np.ndarray:
    """tifffile's log lines are silenced (the error says it all); a file cut short says so."""
    logger = logging.getLogger("tifffile")
    disabled, logger.disabled = logger.disabled, True
    try:
        arr = np.asarray(tifffile.imread(path))
    except Exception as exc:  # tifffile raises many types for corrupt files
        text = _short(exc)
        if path.stat().st_size == 0:
            raise PcprepError.at(path, "cannot read TIFF (the file is empty)") from None
        if any(t in text for t in _TRUNCATED):
            raise PcprepError.at(path, f"truncated TIFF, cannot read it ({text})") from None
        raise PcprepError.at(path, f"cannot read TIFF ({text})") from None
    finally:
        logger.disabled = disabled
    if arr.size == 0:
        raise PcprepError.at(path, "truncated TIFF, cannot read it (no image data)")
    return arr


def read_array(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a TIFF, a ``.npy``, an organized PCD / PLY cloud (its xyz) or any image file."""
    path = Path(path)
    if path.is_dir():
        raise PcprepError.at(path, "is a folder, not a file")
    if not path.is_file():
        raise PcprepError.at(path, "file not found")
    suffix = path.suffix.lower()
    if suffix in _CLOUDS:
        from pcprep.pointcloud_files import read_point_cloud  # it imports this module

        return read_point_cloud(path).xyz
    if suffix in _TIFF:
        return _read_tiff(path)
    if suffix == ".npy":
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise PcprepError.at(path, f"cannot read .npy ({_short(exc)})") from None
    return read_image(path)


def read_xyz(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an organized point cloud file as ``(H, W, 3)`` float32; non-finite points become zeros.

    Raises:
        PcprepError: unreadable file, wrong channel count or a non-float dtype.
    """
    arr = read_array(path)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise PcprepError.at(path, f"expected an (H, W, 3) point cloud, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise PcprepError.at(path, f"expected float xyz in metres, got dtype {arr.dtype}")
    if min(arr.shape[:2]) < 2:
        raise PcprepError.at(path, f"point cloud too small: {arr.shape[0]}x{arr.shape[1]}")
    return sanitize_xyz(arr)


def sanitize_xyz(xyz: np.ndarray) -> np.ndarray:
    """float32 copy where points with any non-finite coordinate are set to the invalid (0, 0, 0)."""
    out = np.array(xyz, dtype=np.float32, copy=True)
    bad = ~np.isfinite(out).all(axis=-1)
    if bad.any():
        out[bad] = 0.0
    return out


def read_rgb(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a colour image as ``(H, W, 3)`` uint8 (gray is replicated, alpha dropped, 16 bit
    scaled), or the colour of a PCD / PLY point cloud."""
    if Path(path).suffix.lower() in _CLOUDS:
        from pcprep.pointcloud_files import read_point_cloud  # it imports this module

        rgb = read_point_cloud(path).rgb
        if rgb is None:
            raise PcprepError.at(path, "the point cloud has no colour (rgb / red green blue)")
        return rgb
    arr = read_image(path)
    if arr.dtype == np.uint16:
        arr = ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)
    elif arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype != np.uint8:
        raise PcprepError.at(path, f"unsupported colour image dtype {arr.dtype}")
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    elif arr.ndim == 3 and arr.shape[-1] == 4:
        arr = arr[..., :3]
    elif arr.ndim == 3 and arr.shape[-1] == 2:  # gray + alpha
        arr = np.repeat(arr[..., :1], 3, axis=-1)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise PcprepError.at(path, f"expected an RGB image, got shape {arr.shape}")
    return np.ascontiguousarray(arr)


def read_mask(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a ground-truth mask as ``(H, W)`` bool: any non-zero value is anomalous.

    MVTec 3D-AD stores defect-class ids (252..255), so binarising with ``> 0`` is required.
    """
    arr = read_image(path)
    if arr.ndim == 3:
        arr = arr[..., :3].max(axis=-1) if arr.shape[-1] in (3, 4) else arr[..., 0]
    if arr.ndim != 2:
        raise PcprepError.at(path, f"expected a single-channel mask, got shape {arr.shape}")
    return arr > 0


def _scalar(text: str) -> object:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    low = text.lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if low in ("null", "~", ""):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_simple_yaml(text: str, *, source: str | os.PathLike[str] | None = None) -> dict:
    """Parse the block-mapping subset of YAML that Eyecandies writes (nested ``key: value``).

    Args:
        text: the document.
        source: file name used in error messages.

    Returns:
        Nested dicts of int / float / bool / str / None scalars.

    Raises:
        PcprepError: for anything outside that subset (lists, flow style, bad indentation).

    Examples:
        >>> parse_simple_yaml("normalization:\\n  max: 4.9\\n  min: 2.3\\n")
        {'normalization': {'max': 4.9, 'min': 2.3}}
    """
    root: dict = {}
    stack: list[tuple[int, dict]] = [(-1, root)]
    pending: tuple[int, dict, str] | None = None  # a "key:" line waiting for its children
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line.strip() or line.strip() in ("---", "..."):
            continue
        if "\t" in line[: len(line) - len(line.lstrip())]:
            raise PcprepError.at(source, f"line {lineno}: tab indentation is not YAML")
        indent = len(line) - len(line.lstrip(" "))
        body = line.strip()
        key, sep, value = body.partition(":")
        flow = value.strip()[:1] in ("[", "{", "&", "*", "|", ">", "!")
        if (
            not sep
            or not key
            or body.startswith(("-", "[", "{"))
            or (value and value[0] != " ")
            or flow
        ):
            raise PcprepError.at(source, f"line {lineno}: unsupported YAML {body!r}")
        if pending is not None:
            p_indent, p_parent, p_key = pending
            if indent > p_indent:
                child: dict = {}
                p_parent[p_key] = child
                stack.append((p_indent, child))
            else:
                p_parent[p_key] = None
            pending = None
        while stack and indent <= stack[-1][0]:
            stack.pop()
        if not stack:
            raise PcprepError.at(source, f"line {lineno}: inconsistent indentation")
        parent = stack[-1][1]
        key = str(_scalar(key))
        if value.strip():
            parent[key] = _scalar(value)
        else:
            pending = (indent, parent, key)
    if pending is not None:
        pending[1][pending[2]] = None
    return root


def read_simple_yaml(path: str | os.PathLike[str]) -> dict:
    """Read a small YAML file with `parse_simple_yaml` (error messages name ``path``)."""
    path = Path(path)
    if not path.is_file():
        raise PcprepError.at(path, "file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PcprepError.at(path, f"cannot read text ({_short(exc)})") from None
    return parse_simple_yaml(text, source=path)
