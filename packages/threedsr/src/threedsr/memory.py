"""Feature memory: the nearest-neighbour distance of the backbone's encoder features to those of
the class's good training scans, a second, training-free anomaly map next to the 3DSR heads'.

Not in the paper or the reference code. At CPU budgets the learned heads see only a few thousand
synthetic anomalies; the memory needs none: it stores what normal looks like through the same
frozen stage-1 encoder (``Encoder-1`` features, 1/4 resolution) and flags what is far from all of
it. :func:`fuse_maps` combines it with the heads' map after putting both on the scale of good
scans (z-scores over their pixels), so neither dominates by units.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor
from vqcore.search import DEFAULT_BLOCK_ELEMENTS, row_chunk, squared_distances

__all__ = ["FeatureMemory", "MapCalibration", "fit_memory", "fuse_maps"]


class MapCalibration(NamedTuple):
    """Mean and standard deviation of a map's pixels on good scans."""

    mean: float
    std: float

    def normalise(self, m: Tensor) -> Tensor:
        return (m - self.mean) / max(self.std, 1e-8)


class FeatureMemory:
    """A bank of normal encoder features and the distance of new ones to it.

    Args:
        bank: (N, C) normal features.
        image_ids: (N,) the training scan each row came from (lets the calibration leave a scan's
            own features out); None when unknown.
        chunk: query rows per distance block; None = vqcore's block bound
            (``DEFAULT_BLOCK_ELEMENTS`` distances at once).

    Example:
        >>> mem = FeatureMemory(torch.zeros(3, 2))
        >>> mem.distance(torch.ones(1, 2, 1, 2)).shape
        torch.Size([1, 1, 2])
    """

    def __init__(
        self, bank: Tensor, image_ids: Tensor | None = None, *, chunk: int | None = None
    ) -> None:
        if bank.ndim != 2 or bank.shape[0] == 0:
            raise ValueError(f"FeatureMemory: bank must be (N>0, C), got {tuple(bank.shape)}")
        self.bank = bank.float()
        self.image_ids = image_ids
        self.chunk = chunk or row_chunk(self.bank.shape[0], DEFAULT_BLOCK_ELEMENTS)
        self._copies: dict[str, Tensor] = {}

    @torch.no_grad()
    def distance(self, feats: Tensor, *, exclude: Tensor | None = None) -> Tensor:
        """Euclidean distance of every feature vector to its nearest bank row.

        Args:
            feats: (B, C, h, w) features.
            exclude: (B,) training-scan id per query image whose bank rows are ignored
                (leave-one-scan-out calibration); None = use the whole bank.

        Shape:
            - Output: (B, h, w).
        """
        b, c, h, w = feats.shape
        if c != self.bank.shape[1]:
            raise ValueError(
                f"FeatureMemory: features have {c} channels, the bank {self.bank.shape[1]}"
            )
        bank = self._on(feats.device)
        ids = None if self.image_ids is None else self.image_ids.to(feats.device)
        q = feats.float().permute(0, 2, 3, 1).reshape(b, h * w, c)
        out = torch.empty(b, h * w, device=feats.device)
        for i in range(b):
            skip = None if exclude is None or ids is None else ids == exclude[i]
            for s in range(0, h * w, self.chunk):
                # vqcore's nearest-code search, with the bank as the codebook.
                d2 = squared_distances(q[i, s : s + self.chunk], bank)
                if skip is not None:
                    d2[:, skip] = float("inf")
                out[i, s : s + self.chunk] = d2.amin(1).sqrt()
        return out.view(b, h, w)

    def _on(self, device: torch.device) -> Tensor:
        """The bank on ``device``, copied once per device."""
        if self.bank.device == device:
            return self.bank
        key = str(device)
        if key not in self._copies:
            self._copies[key] = self.bank.to(device)
        return self._copies[key]

    def state(self) -> dict[str, Tensor]:
        """Tensors for a ``weights_only`` checkpoint (the bank in fp16 halves the file)."""
        state = {"bank": self.bank.half()}
        if self.image_ids is not None:
            state["image_ids"] = self.image_ids.to(torch.int32)
        return state

    @classmethod
    def from_state(cls, state: dict[str, Tensor]) -> FeatureMemory:
        ids = state.get("image_ids")
        return cls(state["bank"].float(), None if ids is None else ids.long())


@torch.no_grad()
def encoder_features(backbone: torch.nn.Module, x: Tensor) -> Tensor:
    """The features the memory stores: the backbone's Encoder-1 output (1/4 resolution)."""
    return backbone.encoder_bottom(x)


@torch.no_grad()
def fit_memory(
    backbone: torch.nn.Module,
    x: Tensor,
    *,
    max_size: int = 40_000,
    batch_size: int = 8,
    seed: int = 0,
) -> FeatureMemory:
    """Encode good training scans and keep at most ``max_size`` of their feature vectors (a
    seeded random subset when there are more): the object's cells when the input has depth
    (:func:`object_cells`), every cell for RGB alone.

    Args:
        backbone: the frozen stage-1 backbone (eval mode).
        x: (N, C, H, W) good training inputs at model resolution.
    """
    feats, ids = [], []
    for start in range(0, x.shape[0], batch_size):
        xb = x[start : start + batch_size]
        f = encoder_features(backbone, xb)
        b, c, h, w = f.shape
        rows = f.permute(0, 2, 3, 1).reshape(-1, c)
        scan = torch.arange(start, start + b, device=f.device).repeat_interleave(h * w)
        keep = object_cells(backbone, xb, (h, w))
        if keep is not None:
            rows, scan = rows[keep.flatten()], scan[keep.flatten()]
        feats.append(rows.cpu())
        ids.append(scan.cpu())
    bank, image_ids = torch.cat(feats), torch.cat(ids)
    if bank.shape[0] == 0:
        raise ValueError("fit_memory: the training scans have no foreground")
    if bank.shape[0] > max_size:
        keep = torch.randperm(bank.shape[0], generator=torch.Generator().manual_seed(seed))
        keep = keep[:max_size].sort().values
        bank, image_ids = bank[keep], image_ids[keep]
    return FeatureMemory(bank, image_ids)


def object_cells(backbone: torch.nn.Module, x: Tensor, cells: tuple[int, int]) -> Tensor | None:
    """(B, h, w) bool: feature cells on the object, for setups with depth (pcprep leaves the
    background at depth 0 and puts the object in [0.1, 0.9]); None for RGB alone (no
    foreground is known, every cell counts)."""
    if getattr(backbone.config, "setup", "rgb") == "rgb":
        return None
    return F.adaptive_avg_pool2d((x[:, :1] > 0.05).float(), cells)[:, 0] > 0.5


def memory_map(
    memory: FeatureMemory,
    backbone: torch.nn.Module,
    x: Tensor,
    *,
    features: Tensor | None = None,
    **kw,
) -> Tensor:
    """(B, H, W) distance map of inputs ``x``, bilinearly upsampled to the input size. With
    depth, the bank holds object features only and the background's distance is 0: the
    background is not what the class is inspected for. ``features``: ``x``'s Encoder-1 output
    when the caller already has it (a detector forward computes it)."""
    f = encoder_features(backbone, x) if features is None else features
    d = memory.distance(f, **kw)
    on = object_cells(backbone, x, tuple(f.shape[2:]))
    if on is not None:
        d = d * on
    return F.interpolate(d[:, None], size=x.shape[2:], mode="bilinear", align_corners=False)[:, 0]


def fuse_maps(
    heads_map: Tensor,
    memory: Tensor,
    heads_cal: MapCalibration,
    memory_cal: MapCalibration,
    weight: float,
) -> Tensor:
    """``weight * z(memory) + (1 - weight) * z(heads)``, each z-scored with good scans' pixel
    statistics, then squashed by a logistic so the fused map stays in (0, 1) like a probability
    map (thresholds and colour scales keep working)."""
    z = weight * memory_cal.normalise(memory) + (1.0 - weight) * heads_cal.normalise(heads_map)
    return torch.sigmoid(z)
