"""Batch drivers over the per-item kernels: parallel and serial twins, and the choice between them.

Every driver loops over items whose random parameters were drawn up front by the caller, so each
item is computed by exactly the same arithmetic whatever the thread count or driver.
"""

from __future__ import annotations

import os
import threading
import types
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from numba import njit, prange

from depthsim._kernels import minmax_affine_into, noise_item_into, perlin_into, threshold_abs_into

if TYPE_CHECKING:
    from numba.core.dispatcher import Dispatcher

# Each batch driver exists twice: a parallel one for large batches and a serial one for small work,
# where a thread-pool launch costs more than it saves (badly so on shared cores). Both are compiled
# from one Python body whose item loop is ``prange`` (numba runs it as ``range`` without
# ``parallel=True``; plain Python does too, so ``.py_func`` runs the body). ``_twins`` compiles
# two copies of the body under different names: numba's on-disk cache is keyed by qualified name
# and line, so one function object compiled both ways would let one variant load the other's
# cached machine code.


def _twins(
    body: Callable[..., None], parallel_name: str, serial_name: str
) -> tuple[Dispatcher, Dispatcher]:
    """``(parallel, serial)`` cached numba drivers compiled from the one Python function ``body``."""

    def named(name: str, doc: str | None) -> Callable[..., None]:
        fn = types.FunctionType(
            body.__code__, body.__globals__, name, body.__defaults__, body.__closure__
        )
        fn.__qualname__ = name
        fn.__module__ = body.__module__
        fn.__doc__ = doc
        fn.__annotations__ = dict(body.__annotations__)
        return fn

    serial_doc = f"Serial twin of :func:`{parallel_name}` (the same body, one thread)."
    return (
        njit(cache=True, parallel=True)(named(parallel_name, body.__doc__)),
        njit(cache=True)(named(serial_name, serial_doc)),
    )


def _perlin_batch(
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


def _simulate_depth(
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


def _anomaly_mask(
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


perlin_batch_kernel, perlin_batch_serial = _twins(
    _perlin_batch, "perlin_batch_kernel", "perlin_batch_serial"
)
simulate_depth_kernel, simulate_depth_serial = _twins(
    _simulate_depth, "simulate_depth_kernel", "simulate_depth_serial"
)
anomaly_mask_kernel, anomaly_mask_serial = _twins(
    _anomaly_mask, "anomaly_mask_kernel", "anomaly_mask_serial"
)


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
