"""Exact normal-score ranks of the distinct anomalous scores, in parallel cache-sized chunks.

Every exact metric needs, for each distinct anomalous score ``u[k]`` (ascending), how many normal
scores lie below it (``less[k]``) and at or below it (``less_eq[k]``). Both counts are additive
over any split of the normal scores, so the normal scores are cut into chunks of ``CHUNK``
values; each worker thread gathers a chunk into a reused buffer (skipping anomalous pixels),
sorts it with numpy's SIMD sort (which releases the GIL) and merges it with ``u``, adding its
counts into per-thread totals. Compared with sorting all normal scores at once this avoids
allocating (and page-faulting) a copy of every normal score, keeps each sort near the L3 cache
and runs one chunk per core; the result is the same integers.

A "bucketed" variant (value buckets over ``[u[0], u[-1]]`` with a binary search inside the
bucket, no sort at all) was measured and rejected: with ~1.2 M distinct anomalous scores among
62 M normal ones (benchmark workload) every normal score needs a search among the anomalous
scores, a chain of cache misses or branch mispredictions that cost 15-65 ns per score (even
with a counting-sort partition first), against about 8 ns per score for the gather, the SIMD
sort and a linear merge (single thread; see docs/bench/admetrics.md).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit

__all__ = ["CHUNK", "gather_normal", "merge_accumulate", "neg_ranks_chunked"]

# 8 M scores (32 MiB of float32) per task: fewer tasks mean fewer merges with ``u`` (each walks
# all of it), longer ones sort a little slower per score; 2^23-2^24 measured best at 64 M pixels
CHUNK = 1 << 23

NegSource = np.ndarray | tuple[np.ndarray, np.ndarray]


@njit(cache=True, nogil=True)
def gather_normal(
    mask: np.ndarray,
    use_mask: bool,
    values: np.ndarray,
    start: int,
    stop: int,
    floor: float,
    out: np.ndarray,
) -> tuple[int, int]:
    """Copy the normal scores ``>= floor`` of ``values[start:stop]`` into ``out``.

    Args:
        mask: (n,) flat ground truth of any numeric dtype, anomalous where ``mask > 0``; read
            only when ``use_mask`` (otherwise every score is normal).
        use_mask: whether ``mask`` applies.
        values: (n,) flat scores.
        start, stop: the range to read.
        floor: normal scores below it are only counted (``-inf``: keep all).
        out: buffer of at least ``stop - start`` entries.

    Returns:
        ``(kept, below)``: scores written to ``out[:kept]``, normal scores below ``floor``.
    """
    k = 0
    below = 0
    for i in range(start, stop):
        if use_mask and mask[i] > 0:  # masks are blobs: this branch predicts well
            continue
        v = values[i]
        # no branch on the floor (a coin flip when it is a quantile): always store, advance
        # only when kept; k <= i - start, so the store stays inside ``out``
        out[k] = v
        keep = v >= floor
        k += keep
        below += not keep
    return k, below


@njit(cache=True, nogil=True)
def merge_accumulate(
    sorted_values: np.ndarray, u: np.ndarray, less: np.ndarray, less_eq: np.ndarray
) -> None:
    """Add, for ascending distinct ``u``, the counts of ``sorted_values`` below and at-or-below
    each ``u[k]`` into ``less[k]`` and ``less_eq[k]`` (one linear merge)."""
    n = sorted_values.shape[0]
    j = 0
    for k in range(u.shape[0]):
        target = u[k]
        while j < n and sorted_values[j] < target:
            j += 1
        less[k] += j
        while j < n and sorted_values[j] == target:
            j += 1
        less_eq[k] += j


Piece = tuple[int, int, int]  # (source index, start, stop)


def _tasks(sizes: Sequence[int], chunk: int) -> list[list[Piece]]:
    """Cut the concatenated sources into tasks of at most ``chunk`` scores (small sources are
    packed together, so the number of tasks, each costing one merge with ``u``, stays
    ``ceil(total / chunk)``)."""
    tasks: list[list[Piece]] = []
    current: list[Piece] = []
    room = chunk
    for s, n in enumerate(sizes):
        a = 0
        while a < n:
            b = min(n, a + room)
            current.append((s, a, b))
            room -= b - a
            a = b
            if room == 0:
                tasks.append(current)
                current, room = [], chunk
    if current:
        tasks.append(current)
    return tasks


def neg_ranks_chunked(
    sources: Sequence[NegSource],
    u: np.ndarray,
    *,
    floor: float = -np.inf,
    chunk: int = CHUNK,
    workers: int | None = None,
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """For distinct ascending ``u``: (#normal < u, #normal <= u, #normal), exactly.

    Args:
        sources: normal scores, each a flat array of normal scores or a pair
            ``(flat mask, flat scores)`` whose normal scores are those where ``mask > 0`` is
            False. Scores are compared in their own dtypes (float32 widens to float64 exactly).
        u: (K,) distinct anomalous scores, ascending, all ``>= floor``.
        floor: normal scores below it are counted, not sorted (they are below every ``u``);
            a high floor saves most of the work when only high thresholds matter.
        chunk: scores per task (raised to K, so that merges cost O(total) altogether).
        workers: threads; default one per CPU, at most one per task.

    Returns:
        ``(less, less_eq, n_neg, n_below)``: int64 arrays of shape (K,), the number of normal
        scores and how many of them are below ``floor``.

    Example:
        >>> import numpy as np
        >>> less, less_eq, n, _ = neg_ranks_chunked([np.array([0.1, 0.5, 0.5, 0.9])],
        ...                                         np.array([0.5, 0.9]))
        >>> less.tolist(), less_eq.tolist(), n
        ([1, 3], [3, 4], 4)
    """
    arrays = [s[1] if isinstance(s, tuple) else s for s in sources]
    total = sum(a.shape[0] for a in arrays)
    chunk = max(chunk, u.shape[0], 1)
    n_workers = max(1, min(workers or os.cpu_count() or 1, -(-total // chunk)))
    # equal tasks, a multiple of the workers: no worker is left with one extra task at the end
    n_tasks = n_workers * -(-total // (n_workers * chunk))
    chunk = max(1, -(-total // n_tasks))
    tasks = _tasks([a.shape[0] for a in arrays], chunk)
    dtype = np.result_type(*arrays, np.float32)
    buf_size = min(chunk, total)
    no_mask = np.zeros(1, np.bool_)
    floor = float(floor)

    # tasks are handed out one at a time (next() on a count is atomic under the GIL), so a
    # worker that the OS preempts does not hold back a fixed share of the work
    counter = itertools.count()

    def work(worker: int) -> tuple[np.ndarray, np.ndarray, int, int]:
        less = np.zeros(u.shape[0], np.int64)
        less_eq = np.zeros(u.shape[0], np.int64)
        buf = np.empty(buf_size, dtype)
        kept = below = 0
        while (t := next(counter)) < len(tasks):
            task = tasks[t]
            end = 0
            for s, a, b in task:
                source = sources[s]
                if isinstance(source, tuple):
                    k, n_low = gather_normal(source[0], True, source[1], a, b, floor, buf[end:])
                else:
                    k, n_low = gather_normal(no_mask, False, source, a, b, floor, buf[end:])
                end += k
                below += n_low
            part = buf[:end]
            part.sort()  # numpy's SIMD sort; releases the GIL, so workers run in parallel
            merge_accumulate(part, u, less, less_eq)
            kept += end
        return less, less_eq, kept, below

    if n_workers == 1:
        results = [work(0)]
    else:
        with ThreadPoolExecutor(n_workers) as pool:
            results = list(pool.map(work, range(n_workers)))
    below = sum(r[3] for r in results)
    less = np.sum([r[0] for r in results], axis=0, dtype=np.int64) + below
    less_eq = np.sum([r[1] for r in results], axis=0, dtype=np.int64) + below
    return less, less_eq, sum(r[2] for r in results) + below, below
