"""Small pure preprocessing steps; `pcprep.preprocess` composes them.

All take and return arrays (no file access) and never produce NaN.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from pcprep.kernels import (
    area_mask_kernel,
    box_close,
    fill_holes_kernel,
    normalize_kernel,
    resize_bilinear_kernel,
    resize_nearest_xyz_kernel,
)

__all__ = [
    "area_coverage",
    "close_mask",
    "drop_border_components",
    "fill_holes",
    "normalize_depth",
    "normalize_height",
    "parse_size",
    "resize_mask",
    "resize_rgb",
    "resize_xyz",
]


def parse_size(size: int | tuple[int, int]) -> tuple[int, int]:
    """``384 -> (384, 384)``; ``(h, w)`` is kept. Sizes must be positive integers.

    Examples:
        >>> parse_size(384), parse_size((256, 320))
        ((384, 384), (256, 320))
    """
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        h = w = int(size)
    else:
        try:
            h, w = (int(v) for v in size)  # type: ignore[union-attr]
        except (TypeError, ValueError):
            raise ValueError(f"size must be an int or (h, w), got {size!r}") from None
    if h < 1 or w < 1:
        raise ValueError(f"size must be positive, got {size!r}")
    return h, w


def _source_image(image: np.ndarray, name: str, layout: str) -> np.ndarray:
    """``image`` as an array of ``layout`` (``(H, W)``, ``(H, W, 3)`` or ``(H, W, C)``), not empty.

    The numba kernels do not check bounds: an empty source would be read out of bounds (the
    result held whatever memory was there) and another rank fails in numba's typing with a
    many-line message.
    """
    image = np.asarray(image)
    ndim = 2 if layout == "(H, W)" else 3
    if image.ndim != ndim or (layout == "(H, W, 3)" and image.shape[2] != 3) or 0 in image.shape:
        raise ValueError(f"{name} must be a non-empty {layout} array, got shape {image.shape}")
    return image


def resize_xyz(xyz: np.ndarray, size: int | tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Nearest-neighbour resize of an organized cloud (OpenCV's index rule, for parity).

    Shape:
        ``(H, W, 3)`` -> ``(S_h, S_w, 3)`` float32 and a ``(S_h, S_w)`` bool valid mask
        (finite and not all-zero; invalid points come out as zeros).

    Examples:
        >>> xyz = np.zeros((4, 4, 3), np.float32); xyz[2:, 2:] = 1.0
        >>> out, valid = resize_xyz(xyz, 2)
        >>> valid.tolist()
        [[False, False], [False, True]]
    """
    h, w = parse_size(size)
    xyz = _source_image(xyz, "xyz", "(H, W, 3)")
    return resize_nearest_xyz_kernel(np.ascontiguousarray(xyz), h, w)


def resize_rgb(rgb: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Bilinear resize (OpenCV INTER_LINEAR rule) of a uint8 image to float32 in ``[0, 1]``.

    Shape:
        ``(H, W, 3)`` uint8 -> ``(S_h, S_w, 3)`` float32.
    """
    h, w = parse_size(size)
    rgb = _source_image(rgb, "rgb", "(H, W, C)")
    if rgb.dtype == np.uint8:
        scale, upper = np.float32(1.0 / 255.0), np.float32(1.0)
    else:
        scale, upper = np.float32(1.0), np.float32(np.inf)
    return resize_bilinear_kernel(np.ascontiguousarray(rgb), h, w, scale, upper)


def resize_mask(mask: np.ndarray, size: int | tuple[int, int], *, mode: str = "area") -> np.ndarray:
    """Resize a binary mask to float32 ``{0, 1}`` without fractional labels.

    ``mode="area"`` (default) marks a target pixel anomalous when at least half of its footprint
    on the source grid is anomalous (exact box overlap, works for up- and down-sampling);
    ``mode="nearest"`` uses the same index rule as `resize_xyz`.

    Examples:
        >>> m = np.zeros((4, 4), bool); m[:2, :2] = True
        >>> resize_mask(m, 2).tolist()
        [[1.0, 0.0], [0.0, 0.0]]
    """
    h, w = parse_size(size)
    mask = _source_image(mask, "mask", "(H, W)").astype(bool)
    if mode == "nearest":
        rows = np.minimum(np.floor(np.arange(h) * mask.shape[0] / h).astype(int), mask.shape[0] - 1)
        cols = np.minimum(np.floor(np.arange(w) * mask.shape[1] / w).astype(int), mask.shape[1] - 1)
        return mask[rows[:, None], cols[None, :]].astype(np.float32)
    if mode != "area":
        raise ValueError(f"mode must be 'area' or 'nearest', got {mode!r}")
    if not mask.any():
        return np.zeros((h, w), np.float32)
    cover = area_coverage(mask, (h, w))
    return (cover >= 0.5 - 1e-9).astype(np.float32)


def area_coverage(mask: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Fraction (float64 in [0, 1]) of each target pixel's footprint covered by a binary mask.

    Examples:
        >>> area_coverage(np.array([[1, 0], [0, 0]], bool), 1).tolist()
        [[0.25]]
    """
    h, w = parse_size(size)
    mask = np.ascontiguousarray(_source_image(mask, "mask", "(H, W)"), dtype=bool)
    row_idx, row_w = _overlap(h, mask.shape[0])
    col_idx, col_w = _overlap(w, mask.shape[1])
    return area_mask_kernel(mask, row_idx, row_w, col_idx, col_w)


def _overlap(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray]:
    """Source cells (``(n_out, span)`` indices) each output cell overlaps on ``[0, n_in]`` and the
    normalised overlap lengths."""
    step = n_in / n_out
    lo_edge = np.arange(n_out) * step
    first = np.floor(lo_edge).astype(np.int64)
    span = int(np.ceil(step)) + 1  # an output cell touches at most this many input cells
    idx = np.minimum(first[:, None] + np.arange(span)[None, :], n_in - 1)
    lo = np.maximum(lo_edge[:, None], idx)
    hi = np.minimum(lo_edge[:, None] + step, idx + 1)
    weights = np.clip(hi - lo, 0.0, None)
    weights[:, 1:][idx[:, 1:] == idx[:, :-1]] = 0.0  # clamped duplicates at the far edge
    weights /= weights.sum(axis=1, keepdims=True)
    return idx, weights


def close_mask(mask: np.ndarray, iterations: int = 3) -> np.ndarray:
    """Binary closing with a 3x3 square, ``iterations`` times (``cv2.morphologyEx`` semantics).

    Examples:
        >>> m = np.zeros((5, 5), bool); m[1:4, 1:4] = True; m[2, 2] = False
        >>> bool(close_mask(m, 1)[2, 2])
        True
    """
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be an (H, W) array, got shape {mask.shape}")
    return box_close(np.ascontiguousarray(mask, dtype=bool), int(iterations))


def normalize_depth(
    z: np.ndarray, foreground: np.ndarray, *, low: float = 0.1, high: float = 0.9
) -> tuple[np.ndarray, int]:
    """Per-image min-max of ``z`` over the foreground's non-zero pixels to ``[low, high]``.

    Background and missing (zero) pixels become 0. A constant foreground maps to the midpoint.

    Returns:
        ``(depth, n_pixels)``: the float32 map and how many pixels were normalised (0 means
        the foreground held no measurement; the map is then all zeros).

    Examples:
        >>> d, n = normalize_depth(np.array([[0.5, 0.6], [0.7, 0.0]]), np.ones((2, 2), bool))
        >>> d.astype(float).round(2).tolist(), n
        ([[0.1, 0.5], [0.9, 0.0]], 3)
    """
    z = np.asarray(z)
    foreground = np.asarray(foreground, dtype=bool)
    if z.ndim != 2 or foreground.shape != z.shape:
        raise ValueError(
            f"z and foreground must be one (H, W) shape, got {z.shape} and {foreground.shape}"
        )
    if z.dtype not in (np.float32, np.float64):
        z = z.astype(np.float64)
    # a strided view such as xyz[..., 2] is read in place (no copy)
    depth, count = normalize_kernel(z, foreground, float(low), float(high))
    return depth, int(count)


def normalize_height(
    height: np.ndarray, foreground: np.ndarray, *, low: float = 0.1, high: float = 0.9
) -> tuple[np.ndarray, int]:
    """Heights above the support plane over the foreground to ``[low, high]``: the plane itself
    maps to ``high`` and the scan's highest point to ``low`` (nearer the camera is lower, as in
    `normalize_depth`).

    Anchored at the plane rather than at the foreground's lowest point, which is arbitrary: on
    Eyecandies the closing adds belt pixels (height 0) to about half the scans and none to the
    others, whose lowest point is the cane's side 20-40 % of its height up. Heights below the
    plane count as 0. Background and non-finite pixels become 0; a foreground with nothing above
    the plane maps to the midpoint.

    Returns:
        ``(depth, n_pixels)`` as `normalize_depth`.

    Examples:
        >>> h = np.array([[0.02, 0.01], [0.5, 0.04]])
        >>> d, n = normalize_height(h, np.array([[1, 1], [0, 1]], bool))
        >>> d.astype(float).round(2).tolist(), n
        ([[0.5, 0.7], [0.0, 0.1]], 3)
    """
    height = np.asarray(height, dtype=np.float64)
    foreground = np.asarray(foreground, dtype=bool)
    if height.ndim != 2 or foreground.shape != height.shape:
        raise ValueError(
            "height and foreground must be one (H, W) shape, "
            f"got {height.shape} and {foreground.shape}"
        )
    keep = foreground & np.isfinite(height)
    count = int(keep.sum())
    depth = np.zeros(height.shape, np.float32)
    if count == 0:
        return depth, 0
    above = np.maximum(height[keep], 0.0)
    top = float(above.max())
    # as normalize_depth: a top so small that (high - low) / top would overflow is flat
    if top > (high - low) * 1e-308:
        depth[keep] = high - (high - low) * above / top
    else:
        depth[keep] = 0.5 * (low + high)
    return depth, count


def fill_holes(depth: np.ndarray, iterations: int = 2) -> np.ndarray:
    """Fill zero pixels with the mean of their non-zero 3x3 neighbours, ``iterations`` passes.

    Non-zero pixels are never changed; a zero pixel with no non-zero neighbour stays 0. Each pass
    reads the previous pass's values, so the foreground grows by at most ``iterations`` pixels.

    Examples:
        >>> d = np.array([[0.0, 0.2], [0.4, 0.0]], np.float32)
        >>> fill_holes(d, 1).astype(float).round(2).tolist()
        [[0.3, 0.2], [0.4, 0.3]]
    """
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    depth = np.asarray(depth)
    if depth.ndim != 2:
        raise ValueError(f"depth must be an (H, W) array, got shape {depth.shape}")
    return fill_holes_kernel(np.ascontiguousarray(depth, dtype=np.float32), int(iterations))


def drop_border_components(mask: np.ndarray) -> np.ndarray:
    """Remove the 8-connected components of ``mask`` that touch the image border.

    Useful when side walls or rails rise off the support plane (Eyecandies' conveyor), at the cost
    of dropping objects that reach the border.

    Examples:
        >>> m = np.zeros((5, 5), bool); m[0, 0] = m[2, 2] = True
        >>> int(drop_border_components(m).sum())
        1
    """
    labels, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if n == 0:
        return np.asarray(mask, dtype=bool).copy()
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    keep = np.ones(n + 1, dtype=bool)
    keep[edge] = False
    keep[0] = False
    return keep[labels]
