"""From pcprep's `Prepared` records to model tensors, and the per-class training set."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pcprep
import torch
from torch import Tensor

from threedsr.errors import ThreedsrError
from threedsr.packed import Pack, is_pack

__all__ = [
    "TrainData",
    "check_finite_inputs",
    "check_float_dtype",
    "foreground_of",
    "load_split",
    "load_train_data",
    "load_validation",
    "model_input",
    "prepared_inputs",
    "stack_inputs",
    "train_data_from_prepared",
]


def model_input(prepared: Any, setup: str) -> np.ndarray:
    """``(C, S_h, S_w)`` float32 in the backbone's channel order: [D, R, G, B] / [D] / [R, G, B].

    A scan without colour (``prepared.colour`` False: pcprep's placeholder RGB) is refused by the
    setups that read colour, rather than scored as black.

    Example:
        >>> import pcprep
        >>> z = np.full((16, 16), 0.6); z[5:11, 5:11] = 0.58  # a 2 cm box on a table, in metres
        >>> xyz = pcprep.depth_to_xyz(z, focal_px=500.0)
        >>> p = pcprep.preprocess(pcprep.Sample(xyz, None, path="scan.tiff"), size=16)
        >>> model_input(p, "depth").shape
        (1, 16, 16)
        >>> model_input(p, "rgbd")
        Traceback (most recent call last):
        ...
        threedsr.errors.ThreedsrError: scan.tiff: the scan has no colour image; an rgbd detector needs one (a depth detector, setup depth, takes scans without colour)
    """
    if setup in ("rgbd", "rgb") and not getattr(prepared, "colour", True):
        raise ThreedsrError(
            f"{getattr(prepared, 'path', None) or 'a scan'}: the scan has no colour image; an "
            f"{setup} detector needs one (a depth detector, setup depth, takes scans without "
            "colour)"
        )
    depth = np.asarray(prepared.depth, dtype=np.float32)[None]
    rgb = np.moveaxis(np.asarray(prepared.rgb, dtype=np.float32), -1, 0)
    if setup == "rgbd":
        return np.concatenate([depth, rgb], axis=0)
    if setup == "depth":
        return depth
    if setup == "rgb":
        return np.ascontiguousarray(rgb)
    raise ThreedsrError(f"unknown setup {setup!r}")


def prepared_inputs(items: Any, setup: str, name: str = "predict") -> np.ndarray:
    """``(N, C, S_h, S_w)`` model inputs of pcprep `Prepared` records; anything else (a raw
    `Sample`, a list of tensors) is a one-line error saying what to pass instead, not an
    AttributeError from inside :func:`model_input`."""
    items = list(items)
    if not items:
        raise ThreedsrError(f"{name}: empty batch")
    for i, p in enumerate(items):
        if not all(hasattr(p, a) for a in ("depth", "rgb", "foreground")):
            kind = type(p).__name__
            hint = (
                "stack them into one (B, C, H, W) tensor or array"
                if isinstance(p, (np.ndarray, Tensor))
                else "pass raw scans to predict_samples, or detector.prepare(sample) first"
            )
            raise ThreedsrError(
                f"{name}: item {i} is a {kind}, not a pcprep Prepared record; {hint}"
            )
    return np.stack([model_input(p, setup) for p in items])


def check_float_dtype(dtype: Any, name: str = "predict") -> None:
    """Refuse a non-float model input with a one-line `ThreedsrError` naming its dtype.

    Model inputs are floats (depth and colour in [0, 1], as pcprep writes them). Cast to fp32,
    8-bit colour (0-255) or a mask would be scored as if it were such an input, and a complex
    tensor would lose its imaginary part, each giving a map with no error.

    Example:
        >>> check_float_dtype(np.dtype(np.uint8))
        Traceback (most recent call last):
        ...
        threedsr.errors.ThreedsrError: predict: the input is uint8, not a float dtype; model inputs are floats (depth and colour in [0, 1], as pcprep.preprocess writes them)
    """
    floating = (
        dtype.is_floating_point
        if isinstance(dtype, torch.dtype)
        else np.issubdtype(np.dtype(dtype), np.floating)
    )
    if not floating:
        shown = str(dtype).removeprefix("torch.")
        raise ThreedsrError(
            f"{name}: the input is {shown}, not a float dtype; model inputs are floats (depth "
            "and colour in [0, 1], as pcprep.preprocess writes them)"
        )


def check_finite_inputs(x: Tensor | np.ndarray, name: str = "predict") -> None:
    """Refuse NaN or inf in a ``(B, C, H, W)`` model input with a one-line `ThreedsrError`.

    pcprep writes invalid points as background (0). A NaN that reaches the memory's search
    and the smoothing instead spreads over the whole map, and an all-NaN scan even gets a
    finite image score, so a broken input would look like a verdict.

    Example:
        >>> x = np.zeros((2, 4, 32, 32), np.float32); x[1, 0, 3, 5] = np.nan
        >>> check_finite_inputs(x)
        Traceback (most recent call last):
        ...
        threedsr.errors.ThreedsrError: predict: the input holds 1 NaN or inf value(s), the first at item 1, channel 0, pixel (3, 5); invalid points are background (0), as pcprep.preprocess writes them
    """
    finite = torch.isfinite(x) if isinstance(x, Tensor) else np.isfinite(x)
    if bool(finite.all()):
        return
    bad = ~finite
    first = bad.nonzero()[0].tolist() if isinstance(bad, Tensor) else np.argwhere(bad)[0].tolist()
    item, channel, row, col = (int(v) for v in first)
    raise ThreedsrError(
        f"{name}: the input holds {int(bad.sum())} NaN or inf value(s), the first at item "
        f"{item}, channel {channel}, pixel ({row}, {col}); invalid points are background (0), "
        "as pcprep.preprocess writes them"
    )


def foreground_of(prepared: Any) -> np.ndarray:
    """Cells where feature anomalies may go: pcprep's foreground AND valid."""
    return np.asarray(prepared.foreground, dtype=bool) & np.asarray(prepared.valid, dtype=bool)


def stack_inputs(prepared: Sequence[Any], setup: str) -> Tensor:
    """Stack model inputs of same-size records into (N, C, S_h, S_w)."""
    if not prepared:
        raise ThreedsrError("no samples to stack")
    return torch.from_numpy(np.stack([model_input(p, setup) for p in prepared]))


@dataclass
class TrainData:
    """Clean training inputs and their foreground masks (kept on the CPU, batches moved)."""

    x: Tensor  # (N, C, S, S) float32
    foreground: Tensor  # (N, 1, S, S) float32 in {0, 1}

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def for_setup(self, setup: str) -> TrainData:
        """The channels of ``setup`` from ``rgbd`` data ([D, R, G, B]): one preprocessing of a
        class serves the detectors of every setup.

        Example:
            >>> d = TrainData(torch.zeros(2, 4, 8, 8), torch.ones(2, 1, 8, 8))
            >>> d.for_setup("rgb").x.shape[1], d.for_setup("depth").x.shape[1]
            (3, 1)
        """
        channels = {"rgbd": slice(None), "depth": slice(0, 1), "rgb": slice(1, None)}
        if setup not in channels:
            raise ThreedsrError(f"unknown setup {setup!r}")
        if self.x.shape[1] != 4:
            raise ThreedsrError(
                f"for_setup needs rgbd training data ([D, R, G, B]); this has {self.x.shape[1]} "
                "channels"
            )
        return TrainData(self.x[:, channels[setup]].contiguous(), self.foreground)


def train_data_from_prepared(prepared: Sequence[Any], setup: str) -> TrainData:
    """Build :class:`TrainData` from `Prepared` records (one class's train/good samples)."""
    x = stack_inputs(prepared, setup)
    fg = torch.from_numpy(np.stack([foreground_of(p) for p in prepared]).astype(np.float32))[
        :, None
    ]
    return TrainData(x, fg)


def load_split(
    data_root: str,
    category: str,
    split: str,
    params: dict[str, Any],
    *,
    cache_dir: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    read_options: dict[str, Any] | None = None,
) -> list[Any]:
    """Preprocess every sample of ``<root>/<category>/<split>`` with ``params`` (pcprep keywords),
    read with ``read_options`` (pcprep reader keywords: own scans' ``depth_unit``, ...).

    Work is parallel (pcprep threads); with ``cache_dir`` results are cached outside the dataset
    (keyed by file content and parameters). pcprep's ``PcprepError`` (naming the file) propagates.
    ``data_root`` may be a pack (:mod:`threedsr.packed`) made with the same ``params``.
    """
    if is_pack(data_root):
        pack = Pack(data_root)
        pack.check(category, params, read_options)
        prepared = pack.prepared(split, progress)
        if not prepared:
            raise ThreedsrError(f"{data_root}: no samples for split {split!r} in the pack")
        return prepared
    refs = list(pcprep.index_dataset(data_root, category, split, **(read_options or {})))
    if not refs:
        raise ThreedsrError(f"{data_root}: no samples for category {category!r}, split {split!r}")
    return list(pcprep.preprocess_refs(refs, cache_dir, progress=progress, **params))


def load_train_data(config: Any, progress: Callable[[int, int], None] | None = None) -> TrainData:
    """The good samples of ``<data_root>/<category>/train``, preprocessed as ``config`` (a
    :class:`~threedsr.DetectorConfig`) says.

    ``progress(done, total)`` is called as samples are preprocessed (a plain callable; the CLI
    passes its progress bar). Raises :class:`ThreedsrError` when there is no good sample.
    """
    if config.data_root is None or config.category is None:
        raise ThreedsrError(
            "DetectorConfig.data_root and .category are required to load training data"
        )
    prepared = load_split(
        config.data_root,
        config.category,
        "train",
        config.preprocess_kwargs(),
        cache_dir=config.cache_dir,
        progress=progress,
        read_options=config.preprocess.read_options(),
    )
    good = [p for p in prepared if int(getattr(p, "label", 0)) == 0]
    if not good:
        raise ThreedsrError(f"{config.data_root}: no good training samples for {config.category!r}")
    return train_data_from_prepared(good, config.setup)


def load_validation(
    config: Any, progress: Callable[[int, int], None] | None = None
) -> TrainData | None:
    """The good samples of the class's validation split (never trained on: they calibrate the
    display scale and threshold), or None when the dataset has no such split."""
    if config.data_root is None or config.category is None:
        return None
    if is_pack(config.data_root):
        pack = Pack(config.data_root)
        pack.check(config.category, config.preprocess_kwargs(), config.preprocess.read_options())
        good = [p for p in pack.prepared("validation", progress) if int(p.label) == 0]
        return train_data_from_prepared(good, config.setup) if good else None
    try:
        refs = list(
            pcprep.index_dataset(
                config.data_root,
                config.category,
                "validation",
                **config.preprocess.read_options(),
            )
        )
    except pcprep.PcprepError:
        return None  # no validation folder in this layout
    if not refs:
        return None
    prepared = list(
        pcprep.preprocess_refs(
            refs, config.cache_dir, progress=progress, **config.preprocess_kwargs()
        )
    )
    good = [p for p in prepared if int(getattr(p, "label", 0)) == 0]
    return train_data_from_prepared(good, config.setup) if good else None
