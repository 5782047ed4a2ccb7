"""Label the 8-connected ground-truth regions of a batch and collect the anomalous scores.

Replaces ``scipy.ndimage.label`` plus boolean indexing with one numba pass over the mask in
raster order (the mask is read in its own dtype, anomalous where ``> 0``, so no boolean copy of
it is made): each run of anomalous pixels in a row gets a provisional label and is joined
(union-find) to the runs of the previous row that touch it, diagonals included. The pass restarts
at every image, so regions never cross images. Only anomalous pixels read their score.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["count_positive", "gather_positive", "scan_regions"]


@njit(cache=True, nogil=True, inline="always")
def _find(parent: np.ndarray, x: int) -> int:
    while parent[x] != x:
        parent[x] = parent[parent[x]]  # path halving
        x = parent[x]
    return x


@njit(cache=True, nogil=True)
def count_positive(mask: np.ndarray) -> np.ndarray:
    """Per-image number of anomalous pixels (``mask > 0``) of a (n, H, W) batch.

    Args:
        mask: (n, H, W) ground truth of any numeric dtype.

    Returns:
        (n,) int64 counts.
    """
    n = mask.shape[0]
    flat = mask.reshape(n, -1)
    counts = np.zeros(n, np.int64)
    for i in range(n):
        c = 0
        for j in range(flat.shape[1]):
            c += flat[i, j] > 0
        counts[i] = c
    return counts


@njit(cache=True, nogil=True)
def gather_positive(mask: np.ndarray, maps: np.ndarray, n_pos: int) -> np.ndarray:
    """The scores of the anomalous pixels (``mask > 0``), flat arrays, in order.

    Args:
        mask: (N,) ground truth of any numeric dtype.
        maps: (N,) scores.
        n_pos: number of anomalous pixels.

    Returns:
        (n_pos,) scores, dtype of ``maps``.
    """
    out = np.empty(n_pos, maps.dtype)
    k = 0
    for i in range(mask.shape[0]):
        if mask[i] > 0:
            out[k] = maps[i]
            k += 1
    return out


@njit(cache=True, nogil=True)
def scan_regions(mask: np.ndarray, maps: np.ndarray, n_pos: int):
    """Anomalous scores and region ids of a (n, H, W) batch.

    Args:
        mask: (n, H, W) of any numeric dtype, anomalous where ``> 0``; C-contiguous.
        maps: (n, H, W) scores; C-contiguous.
        n_pos: number of anomalous pixels in ``mask``.

    Returns:
        ``(pos, region, n_regions)``: the anomalous scores in raster order, the region id
        (0 .. n_regions - 1) of each, and the number of regions.
    """
    n, h, w = mask.shape
    pos = np.empty(n_pos, maps.dtype)
    region = np.empty(n_pos, np.int32)
    parent = np.empty(max(n_pos, 1), np.int32)
    prev_start = np.empty(w, np.int64)
    prev_end = np.empty(w, np.int64)
    prev_lab = np.empty(w, np.int32)
    cur_start = np.empty(w, np.int64)
    cur_end = np.empty(w, np.int64)
    cur_lab = np.empty(w, np.int32)
    n_runs = 0
    i_pos = 0
    for img in range(n):
        n_prev = 0
        for y in range(h):
            n_cur = 0
            k0 = 0
            x = 0
            while x < w:
                if not mask[img, y, x] > 0:
                    x += 1
                    continue
                x0 = x
                lab = n_runs
                parent[lab] = lab
                n_runs += 1
                while x < w and mask[img, y, x] > 0:
                    pos[i_pos] = maps[img, y, x]
                    region[i_pos] = lab
                    i_pos += 1
                    x += 1
                # previous-row runs [ps, pe) touch this run [x0, x) when ps <= x and pe >= x0
                while k0 < n_prev and prev_end[k0] < x0:
                    k0 += 1
                k = k0
                while k < n_prev and prev_start[k] <= x:
                    ra = _find(parent, lab)
                    rb = _find(parent, prev_lab[k])
                    if ra != rb:
                        if ra < rb:
                            parent[rb] = ra
                        else:
                            parent[ra] = rb
                    k += 1
                cur_start[n_cur] = x0
                cur_end[n_cur] = x
                cur_lab[n_cur] = lab
                n_cur += 1
            for k in range(n_cur):
                prev_start[k] = cur_start[k]
                prev_end[k] = cur_end[k]
                prev_lab[k] = cur_lab[k]
            n_prev = n_cur
    # roots are the smallest label of their set, so one ascending sweep numbers the regions
    compact = np.full(max(n_runs, 1), -1, np.int32)
    n_regions = 0
    for r in range(n_runs):
        root = _find(parent, r)
        if compact[root] < 0:
            compact[root] = n_regions
            n_regions += 1
        compact[r] = compact[root]
    for p in range(n_pos):
        region[p] = compact[region[p]]
    return pos, region, n_regions
