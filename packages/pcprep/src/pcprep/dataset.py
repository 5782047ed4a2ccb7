"""`preprocess_dataset`: index, read and preprocess a split in parallel, with a disk cache."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pcprep.cache import cache_key, load_prepared, save_prepared
from pcprep.errors import PcprepError
from pcprep.index import index_dataset
from pcprep.pipeline import preprocess
from pcprep.records import Prepared
from pcprep.sample_ref import SampleRef

__all__ = ["preprocess_dataset", "preprocess_refs"]


def _version() -> str:
    # The package's own __version__, not importlib.metadata: a source tree on PYTHONPATH
    # (tools/portable.sh) has no metadata, and its cache keys must still change with the version.
    from pcprep import __version__

    return __version__


def _is_inside(child: Path, parent: Path) -> bool:
    try:
        child.resolve().relative_to(parent.resolve())
    except ValueError:
        return False
    return True


def preprocess_refs(
    refs: list[SampleRef],
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    **params: Any,
) -> list[Prepared]:
    """Preprocess sample references in parallel (threads; the numba kernels release the GIL).

    Args:
        refs: from `index_dataset`.
        cache_dir: where results are cached (``None`` disables caching).
        workers: threads (default ``min(4, os.cpu_count())``).
        progress: called as ``progress(done, total)``: once with 0, then after each sample in
            order, always from the calling thread.
        **params: keyword arguments of `preprocess`.

    Returns:
        `Prepared` results in the order of ``refs``.
    """
    cache = None if cache_dir is None else Path(cache_dir)
    total = len(refs)
    try:
        bound = inspect.signature(preprocess).bind(None, **params)
    except TypeError as exc:
        raise TypeError(f"invalid preprocess parameter: {exc}") from None
    bound.apply_defaults()
    # every parameter with its resolved value: `size=384` and an omitted size share entries
    resolved = {k: v for k, v in bound.arguments.items() if k != "sample"}

    def run(ref: SampleRef) -> Prepared:
        target = None
        if cache is not None:
            key_params = {**resolved, "layout": ref.layout, "read_options": list(ref.options)}
            key = cache_key(ref.files, key_params, _version())
            target = cache / key[:2] / f"{key}.npz"
            hit = load_prepared(target)
            if hit is not None:
                return hit
        result = preprocess(ref.load(), **params)
        if target is not None:
            save_prepared(target, result)
        return result

    n_workers = max(1, workers if workers is not None else min(4, os.cpu_count() or 1))
    results: list[Prepared] = []
    if progress is not None:
        progress(0, total)
    if n_workers == 1 or total <= 1:
        for i, ref in enumerate(refs):
            results.append(run(ref))
            if progress is not None:
                progress(i + 1, total)
        return results
    with ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="pcprep") as pool:
        futures = [pool.submit(run, ref) for ref in refs]
        try:
            # consumed in order, so progress counts a completed prefix and errors come first-file-first
            for i, future in enumerate(futures):
                results.append(future.result())
                if progress is not None:
                    progress(i + 1, total)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return results


def preprocess_dataset(
    root: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str] | None,
    *,
    category: str | None,
    split: str,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    read_options: dict[str, Any] | None = None,
    **params: Any,
) -> list[Prepared]:
    """Index ``root`` (any layout), then read and `preprocess` every sample of a split.

    Results are cached under ``cache_dir`` as ``.npz`` files keyed by the content of every input
    file, the preprocessing parameters and the pcprep version, so editing a file or changing a
    parameter recomputes; files are written atomically. The cache must not be inside the dataset
    (user data is never modified).

    Args:
        root: dataset root.
        cache_dir: cache folder, or ``None`` for no cache.
        category: class name (``None`` for a generic folder of pairs).
        split: ``"train"``, ``"validation"`` or ``"test"``.
        workers: parallel threads.
        progress: ``progress(done, total)`` callback.
        read_options: passed to the reader (e.g. ``{"image_index": 0}`` for Eyecandies).
        **params: keyword arguments of `preprocess` (``size``, ``plane``, ``fg_threshold``, ...).

    Raises:
        PcprepError: indexing or reading problems (naming the file), or a cache inside the dataset.

    Examples:
        >>> import tempfile, numpy as np, tifffile
        >>> from PIL import Image
        >>> with tempfile.TemporaryDirectory() as d:
        ...     scan = Path(d, "scans"); (scan / "xyz").mkdir(parents=True); (scan / "rgb").mkdir()
        ...     z = np.full((32, 32), 0.5, np.float32); z[8:24, 8:24] = 0.48
        ...     yy, xx = np.mgrid[0:32, 0:32] * 1e-3
        ...     tifffile.imwrite(scan / "xyz" / "a.tiff", np.stack([xx, yy, z], -1).astype(np.float32),
        ...                      photometric="minisblack")
        ...     Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(scan / "rgb" / "a.png")
        ...     out = preprocess_dataset(scan, Path(d, "cache"), category=None, split="test", size=16)
        ...     len(out), out[0].depth.shape
        (1, (16, 16))
    """
    root = Path(root)
    if cache_dir is not None and _is_inside(Path(cache_dir), root):
        raise PcprepError.at(cache_dir, f"cache folder must be outside the dataset {root}")
    refs = index_dataset(root, category, split, **(read_options or {}))
    return preprocess_refs(refs, cache_dir, workers=workers, progress=progress, **params)
