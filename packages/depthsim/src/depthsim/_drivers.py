"""Batch drivers over the per-item kernels: parallel and serial twins, and the choice between them.

Every driver loops over items whose random parameters were drawn up front by the caller, so each
item is computed by exactly the same arithmetic whatever the thread count or driver.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

import numpy as np
from numba import njit, prange

from depthsim._kernels import minmax_affine_into, noise_item_into, perlin_into, threshold_abs_into

# Each batch driver exists twice: a parallel one for large batches and a serial one for small work,
# where a thread-pool launch costs more than it saves (badly so on shared cores). They are separate
# definitions on purpose: numba's on-disk cache is keyed by function name and line, so one Python
# function compiled both ways would let one variant load the other's cached machine code. Both
# call the same per-item functions, so their results are identical.


@njit(cache=True, parallel=True)
def perlin_batch_kernel(
    out: np.ndarray,
    gcos: np.ndarray,
    gsin: np.ndarray,
    ry: np.ndarray,
    rx: np.ndarray,
    scale: float,
    add: bool,
) -> None:
    """``out[k]`` (+)= scale * noise(gradients k, lattice ry[k] x rx[k]) for every item, in parallel."""
    for k in prange(out.shape[0]):
        perlin_into(out[k], gcos[k], gsin[k], ry[k], rx[k], scale, add)


@njit(cache=True)
def perlin_batch_serial(
    out: np.ndarray,
    gcos: np.ndarray,
    gsin: np.ndarray,
    ry: np.ndarray,
    rx: np.ndarray,
    scale: float,
    add: bool,
) -> None:
    """Serial twin of :func:`perlin_batch_kernel`."""
    for k in range(out.shape[0]):
        perlin_into(out[k], gcos[k], gsin[k], ry[k], rx[k], scale, add)


@njit(cache=True, parallel=True)
def simulate_depth_kernel(
    out: np.ndarray,
    gcos: np.ndarray,
    gsin: np.ndarray,
    ry: np.ndarray,
    rx: np.ndarray,
    angle: np.ndarray,
    alpha: np.ndarray,
    beta: np.ndarray,
    affine: bool,
) -> None:
    """Spec 2.2 per item: noise, rotation, min-max to P, optional affine D = alpha P + beta."""
    for k in prange(out.shape[0]):
        noise_item_into(out[k], gcos[k], gsin[k], ry[k], rx[k], angle[k])
        minmax_affine_into(out[k], alpha[k], beta[k], affine)


@njit(cache=True)
def simulate_depth_serial(
    out: np.ndarray,
    gcos: np.ndarray,
    gsin: np.ndarray,
    ry: np.ndarray,
    rx: np.ndarray,
    angle: np.ndarray,
    alpha: np.ndarray,
    beta: np.ndarray,
    affine: bool,
) -> None:
    """Serial twin of :func:`simulate_depth_kernel`."""
    for k in range(out.shape[0]):
        noise_item_into(out[k], gcos[k], gsin[k], ry[k], rx[k], angle[k])
        minmax_affine_into(out[k], alpha[k], beta[k], affine)


@njit(cache=True, parallel=True)
def anomaly_mask_kernel(
    out: np.ndarray,
    gcos: np.ndarray,
    gsin: np.ndarray,
    ry: np.ndarray,
    rx: np.ndarray,
    angle: np.ndarray,
    threshold: np.ndarray,
) -> None:
    """Spec 3.3 per item: noise, rotation, then 1 where |noise| > threshold[k] else 0."""
    for k in prange(out.shape[0]):
        noise_item_into(out[k], gcos[k], gsin[k], ry[k], rx[k], angle[k])
        threshold_abs_into(out[k], threshold[k])


@njit(cache=True)
def anomaly_mask_serial(
    out: np.ndarray,
    gcos: np.ndarray,
    gsin: np.ndarray,
    ry: np.ndarray,
    rx: np.ndarray,
    angle: np.ndarray,
    threshold: np.ndarray,
) -> None:
    """Serial twin of :func:`anomaly_mask_kernel`."""
    for k in range(out.shape[0]):
        noise_item_into(out[k], gcos[k], gsin[k], ry[k], rx[k], angle[k])
        threshold_abs_into(out[k], threshold[k])


PARALLEL_MIN_PIXELS = 1 << 19
"""Below this many output pixels (or for a single item) the serial driver is used."""


_POOL_LOCK = threading.Lock()
_parallel_allowed = True


def _after_fork_in_child() -> None:
    """A child forked after numba started its thread pool must not use it: GNU OpenMP, numba's
    usual layer on Linux, terminates the process ("fork() called from a process already using GNU
    OpenMP"), e.g. in DataLoader workers. Such a child runs the serial drivers (same values)."""
    global _POOL_LOCK, _parallel_allowed
    _POOL_LOCK = threading.Lock()
    try:
        from numba.np.ufunc import parallel as numba_parallel

        started = bool(getattr(numba_parallel, "_is_initialized", True))
    except ImportError:  # pragma: no cover - numba internals moved: stay on the safe side
        started = True
    if started:
        _parallel_allowed = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def use_parallel(out: np.ndarray) -> bool:
    """Whether a batch ``out`` (n, H, W) is worth a parallel launch (and allowed in this process)."""
    return _parallel_allowed and out.shape[0] > 1 and out.size >= PARALLEL_MIN_PIXELS


def run_batch(
    parallel: Callable[..., None], serial: Callable[..., None], out: np.ndarray, *args: object
) -> None:
    """Fill ``out`` with the parallel driver when worth it and the thread pool is free.

    numba's default ``workqueue`` threading layer aborts when two Python threads launch parallel
    kernels at once; a caller that finds the pool busy runs the serial twin instead (same values).
    """
    if use_parallel(out) and _POOL_LOCK.acquire(blocking=False):
        try:
            parallel(out, *args)
        finally:
            _POOL_LOCK.release()
    else:
        serial(out, *args)
