"""Stage-1 training data: RGB images (a folder or procedural) and simulated depth, unrelated.

Every sample is a pure function of ``(seed, step, index in the global batch)``: resuming, changing
the number of DataLoader workers or the number of DDP ranks never changes what a step sees.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import depthsim
import numpy as np
import torch
from torch.utils.data import Dataset

from .errors import VqcoreError

__all__ = [
    "IMAGE_SUFFIXES",
    "ImageFolderSource",
    "ProceduralRGBSource",
    "RGBSource",
    "StageOneBatches",
    "list_images",
    "to_grayscale",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
_GRAY = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def list_images(root: str | Path) -> list[Path]:
    """Every image file under ``root`` (recursive, sorted; ImageNet-style trees work).

    Raises:
        VqcoreError: ``root`` is missing, not a folder, or holds no image.
    """
    root = Path(root)
    if not root.is_dir():
        raise VqcoreError(f"{root}: RGB image folder does not exist or is not a folder")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise VqcoreError(f"{root}: no images found (looked for {', '.join(IMAGE_SUFFIXES)})")
    return files


def to_grayscale(rgb: np.ndarray) -> np.ndarray:
    """(…, 3) RGB in [0, 1] -> (…) luma (ITU-R 601 weights), float32.

    Example:
        >>> float(to_grayscale(np.ones((1, 1, 3), np.float32))[0, 0])
        1.0
    """
    return np.clip(rgb.astype(np.float32) @ _GRAY, 0.0, 1.0)


class RGBSource:
    """Draws RGB images as (H, W, 3) float32 in [0, 1]."""

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        raise NotImplementedError


class ProceduralRGBSource(RGBSource):
    """Colour textures from :func:`depthsim.procedural_rgb` (no image folder needed)."""

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return depthsim.procedural_rgb(1, (size, size), rng=rng)[0].astype(np.float32)


def _pillow(root: Path) -> tuple[Any, type[Exception]]:
    """PIL's ``Image`` and ``UnidentifiedImageError``, imported only for image folders: the
    procedural source and everything after stage 1 run without pillow."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ModuleNotFoundError:
        raise VqcoreError(
            f"{root}: reading an RGB image folder needs pillow, which is not installed "
            "(pip install pillow)"
        ) from None
    return Image, UnidentifiedImageError


class ImageFolderSource(RGBSource):
    """Random images (uniform, with replacement) from a folder tree, resized without cropping.

    As in the reference: the aspect ratio is not preserved, values are divided by 255, no
    normalisation or augmentation.

    Args:
        root: folder searched recursively for images.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.files = list_images(self.root)
        _pillow(self.root)  # fail before training starts, not in a DataLoader worker

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        Image, UnidentifiedImageError = _pillow(self.root)
        path = self.files[int(rng.integers(len(self.files)))]
        try:
            with Image.open(path) as img:
                img = img.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
                arr = np.asarray(img, dtype=np.float32)
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            raise VqcoreError(f"{path}: cannot read image ({type(exc).__name__}: {exc})") from exc
        return arr / 255.0


class StageOneBatches(Dataset[torch.Tensor]):
    """Deterministic stage-1 batches; item ``step`` is this rank's slice of global batch ``step``.

    Args:
        setup: ``rgbd`` -> (B, 4, S, S) [D, R, G, B]; ``depth`` -> (B, 1, S, S); ``rgb`` -> (B, 3, S, S).
        rgb_source: where RGB comes from (also the grayscale-as-depth ablation's images).
        image_size: side S.
        batch_size: global batch size.
        seed: base seed.
        affine: depth simulator's affine map (the paper's "no affine" ablation when False).
        depth_source: ``perlin`` (simulator) or ``grayscale`` (a grayscale image, unrelated to the
            RGB of the same sample: the paper's "no Perlin" ablation).
        rank: this process's rank; world_size: number of ranks sharing the global batch.

    Example:
        >>> data = StageOneBatches("rgbd", ProceduralRGBSource(), image_size=16, batch_size=2)
        >>> batch = data[0]
        >>> batch.shape, bool((batch[:, 0] >= 0).all())
        (torch.Size([2, 4, 16, 16]), True)
    """

    def __init__(
        self,
        setup: str,
        rgb_source: RGBSource,
        *,
        image_size: int,
        batch_size: int,
        seed: int = 0,
        affine: bool = True,
        depth_source: Literal["perlin", "grayscale"] = "perlin",
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size % world_size:
            raise VqcoreError(
                f"batch_size {batch_size} is not divisible by the number of processes {world_size}"
            )
        self.setup = setup
        self.rgb_source = rgb_source
        self.image_size = image_size
        self.batch_size = batch_size
        self.seed = seed
        self.affine = affine
        self.depth_source = depth_source
        self.rank = rank
        self.world_size = world_size
        self.local_batch = batch_size // world_size

    def __len__(self) -> int:  # a stream indexed by step
        return 2**62

    def sample_indices(self) -> Sequence[int]:
        start = self.rank * self.local_batch
        return range(start, start + self.local_batch)

    def _rng(self, step: int, index: int, stream: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, step, index, stream])

    def _depth(self, step: int, index: int) -> np.ndarray:
        s = self.image_size
        rng = self._rng(step, index, 1)
        if self.depth_source == "grayscale":
            return to_grayscale(self.rgb_source.sample(rng, s))
        return depthsim.simulate_depth_batch(1, (s, s), rng=rng, affine=self.affine)[0]

    def sample(self, step: int, index: int) -> np.ndarray:
        """Sample ``index`` of global batch ``step`` as (C, S, S) float32."""
        parts = []
        if self.setup in ("rgbd", "depth"):
            parts.append(self._depth(step, index)[None])
        if self.setup in ("rgbd", "rgb"):
            rgb = self.rgb_source.sample(self._rng(step, index, 0), self.image_size)
            parts.append(np.transpose(rgb, (2, 0, 1)))
        return np.ascontiguousarray(np.concatenate(parts, axis=0), dtype=np.float32)

    def __getitem__(self, step: int) -> torch.Tensor:
        return torch.from_numpy(np.stack([self.sample(step, i) for i in self.sample_indices()]))
