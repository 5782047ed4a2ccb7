"""Input normalisation: tensors/lists -> numpy, shape checks, label and score validation, the
metrics' parameters, and the pixels a pixel metric needs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from .errors import AdmetricsError

__all__ = [
    "as_numpy",
    "check_finite",
    "check_fpr_limit",
    "check_num_thresholds",
    "image_arrays",
    "iter_batches",
    "require_pixels",
    "score_array",
]


def as_numpy(x: Any, name: str) -> np.ndarray:
    """Array-like or tensor (any device, grad or not) -> numpy array, without importing torch."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu().numpy()
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise AdmetricsError(f"{name}: cannot convert to an array ({exc})") from None
    if arr.dtype == object:
        raise AdmetricsError(f"{name}: ragged or non-numeric input (got an object array)")
    return arr


def _as_scores(arr: np.ndarray, name: str) -> np.ndarray:
    """Scores keep float32/float64 as is (exactness); narrower types widen losslessly."""
    kind = arr.dtype.kind
    if kind == "f":
        if arr.dtype.itemsize < 4:
            return arr.astype(np.float32)
        if arr.dtype.itemsize > 8:
            raise AdmetricsError(f"{name}: dtype {arr.dtype} is not supported, use float32/float64")
        return arr
    if kind in "biu":
        return arr.astype(np.float64)
    raise AdmetricsError(f"{name}: expected real numeric scores, got dtype {arr.dtype}")


def check_finite(values: np.ndarray, name: str) -> tuple[float, float]:
    """Raise on NaN/inf; return (min, max). min/max propagate NaN, so two reductions suffice."""
    if values.size == 0:
        return (np.inf, -np.inf)
    lo = float(values.min())
    hi = float(values.max())
    if not (np.isfinite(lo) and np.isfinite(hi)):
        bad = "NaN" if np.isnan(lo) or np.isnan(hi) else "infinite"
        raise AdmetricsError(f"{name}: contains {bad} scores; every score must be finite")
    return lo, hi


def score_array(x: Any, name: str) -> np.ndarray:
    """1-D finite float scores."""
    arr = _as_scores(as_numpy(x, name), name)
    if arr.ndim != 1:
        raise AdmetricsError(f"{name}: expected shape (N,), got {arr.shape}")
    check_finite(arr, name)
    return arr


def label_array(x: Any, name: str) -> np.ndarray:
    """1-D boolean labels from bool or numeric values that are exactly 0 or 1."""
    arr = as_numpy(x, name)
    if arr.ndim != 1:
        raise AdmetricsError(f"{name}: expected shape (N,), got {arr.shape}")
    if arr.dtype == bool:
        return arr
    if arr.dtype.kind not in "biuf":
        raise AdmetricsError(f"{name}: expected 0/1 or bool labels, got dtype {arr.dtype}")
    positive = arr == 1
    if not np.all(positive | (arr == 0)):
        bad = arr[~(positive | (arr == 0))][0]
        raise AdmetricsError(f"{name}: labels must be 0 or 1 (or bool), found {bad!r}")
    return positive


def image_arrays(labels: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validated (labels bool (N,), scores float (N,)) of equal, non-zero length."""
    lab = label_array(labels, "labels")
    sc = score_array(scores, "scores")
    if lab.shape != sc.shape:
        raise AdmetricsError(f"labels has shape {lab.shape} but scores has shape {sc.shape}")
    if lab.size == 0:
        raise AdmetricsError("labels/scores: empty input")
    return lab, sc


def _as_image_stack(arr: np.ndarray, name: str) -> np.ndarray:
    """(H, W) | (N, H, W) | (N, 1, H, W) -> (N, H, W)."""
    if arr.ndim == 2:
        return arr[None]
    if arr.ndim == 3:
        return arr
    if arr.ndim == 4 and arr.shape[1] == 1:
        return arr[:, 0]
    raise AdmetricsError(
        f"{name}: expected (H, W), (N, H, W) or (N, 1, H, W), got shape {arr.shape}"
    )


def _as_single_image(arr: np.ndarray, name: str, index: int) -> np.ndarray:
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise AdmetricsError(f"{name}[{index}]: expected (H, W) or (1, H, W), got {arr.shape}")
    return arr


def _check_mask_dtype(arr: np.ndarray, name: str) -> None:
    if arr.dtype.kind not in "biuf":
        raise AdmetricsError(f"{name}: expected bool or numeric masks, got dtype {arr.dtype}")


def _as_list(x: Any, name: str) -> list[Any]:
    if isinstance(x, (list, tuple)):
        return list(x)
    return list(_as_image_stack(as_numpy(x, name), name))


def iter_batches(masks: Any, maps: Any) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (masks (n, H, W), maps (n, H, W)) pairs with matching shapes.

    Arrays/tensors come out as a single batch; lists or tuples of images (which may differ in
    size, e.g. native resolutions) come out one image at a time. Map dtypes are preserved for
    float32/float64 so that no two distinct scores merge.
    """
    if isinstance(masks, (list, tuple)) or isinstance(maps, (list, tuple)):
        mask_list = _as_list(masks, "masks")
        map_list = _as_list(maps, "maps")
        if len(mask_list) != len(map_list):
            raise AdmetricsError(f"got {len(mask_list)} masks but {len(map_list)} maps")
        if not mask_list:
            raise AdmetricsError("masks/maps: empty input (no images)")
        for i, (m, s) in enumerate(zip(mask_list, map_list, strict=True)):
            m2 = _as_single_image(as_numpy(m, "masks"), "masks", i)
            s2 = _as_single_image(_as_scores(as_numpy(s, "maps"), "maps"), "maps", i)
            _check_mask_dtype(m2, "masks")
            if m2.shape != s2.shape:
                raise AdmetricsError(
                    f"image {i}: mask shape {m2.shape} does not match map shape {s2.shape}"
                )
            if m2.size == 0:
                raise AdmetricsError(f"image {i}: empty image of shape {m2.shape}")
            yield m2[None], s2[None]
        return
    m3 = _as_image_stack(as_numpy(masks, "masks"), "masks")
    s3 = _as_image_stack(_as_scores(as_numpy(maps, "maps"), "maps"), "maps")
    _check_mask_dtype(m3, "masks")
    if m3.shape != s3.shape:
        raise AdmetricsError(
            f"masks have shape (N, H, W) = {m3.shape} but maps have shape {s3.shape}"
        )
    if m3.size == 0:
        raise AdmetricsError(f"masks/maps: empty input of shape {m3.shape}")
    yield m3, s3


def require_pixels(n_neg: int, n_pos: int, what: str) -> None:
    if n_pos == 0:
        raise AdmetricsError(f"{what} is undefined: no anomalous pixel (every mask is empty)")
    if n_neg == 0:
        raise AdmetricsError(f"{what} is undefined: no normal pixel (every mask is full)")


def check_fpr_limit(fpr_limit: float) -> float:
    try:
        limit = float(fpr_limit)
    except (TypeError, ValueError):
        limit = float("nan")
    if not (0.0 < limit <= 1.0):
        raise AdmetricsError(f"fpr_limit must be in (0, 1], got {fpr_limit!r}")
    return limit


def check_num_thresholds(num_thresholds: int | None) -> int | None:
    if num_thresholds is None:
        return None
    try:
        bad = (
            isinstance(num_thresholds, bool)
            or int(num_thresholds) != num_thresholds
            or num_thresholds < 2
        )
    except (TypeError, ValueError):
        bad = True
    if bad:
        raise AdmetricsError(
            f"num_thresholds must be None (exact) or an int >= 2, got {num_thresholds!r}"
        )
    return int(num_thresholds)
