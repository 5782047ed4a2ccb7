"""Feature memory: the nearest-neighbour distance of a scan's local features to those of the
class's good training scans, a second, training-free anomaly map next to the 3DSR heads'.

Not in the paper or the reference code. At CPU budgets the learned heads see only a few thousand
synthetic anomalies; the memory needs none: it stores what normal looks like and flags what is
far from all of it. Its features are either the frozen stage-1 encoder's (``Encoder-1``, 1/4
resolution) or hand-made surface and colour descriptors (:mod:`threedsr.descriptors`), which
see millimetre dents that the CPU-sized backbone's codes do not. :func:`fuse_maps` combines the
memory with the heads' map after putting both on the scale of good scans (z-scores over their
pixels), so neither dominates by units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor
from vqcore import DiscreteAutoencoder
from vqcore.search import DEFAULT_BLOCK_ELEMENTS, row_chunk

from threedsr.descriptors import LEGACY_GROUPS, group_slices, local_descriptors, setup_groups
from threedsr.knn import local_scales, nearest_rows

__all__ = ["FeatureMemory", "MapCalibration", "MemoryFeatures", "fit_memory", "fuse_maps"]


class MapCalibration(NamedTuple):
    """Mean and standard deviation of a map's pixels on good scans."""

    mean: float
    std: float

    def normalise(self, m: Tensor) -> Tensor:
        return (m - self.mean) / max(self.std, 1e-8)


@dataclass(frozen=True)
class MemoryFeatures:
    """What the memory stores per cell.

    Args:
        kind: ``encoder`` = the backbone's Encoder-1 output (1/4 resolution); ``descriptors`` =
            :func:`threedsr.descriptors.local_descriptors` of the input at Gaussian ``scales``,
            averaged over ``pool`` x ``pool`` cells.
        scales: descriptor scales in pixels at model resolution.
        pool: descriptor cell side in pixels.
        groups: descriptor groups (:data:`threedsr.descriptors.DESCRIPTOR_GROUPS`); those the
            setup's input cannot give are skipped.
        weights: one weight per group in ``groups``, spread evenly over the group's standardised
            channels (each channel gets ``w / sqrt(channels)``), so a group's share of the
            distance does not grow with its channel count; None = every channel weighs 1 (the
            detectors written before groups existed).

    Example:
        >>> MemoryFeatures.from_state(MemoryFeatures("descriptors").state())
        MemoryFeatures(kind='descriptors', scales=(1.0, 2.0, 4.0), pool=2, groups=('surface', 'colour'), weights=None)
    """

    kind: Literal["encoder", "descriptors"] = "encoder"
    scales: tuple[float, ...] = (1.0, 2.0, 4.0)
    pool: int = 2
    groups: tuple[str, ...] = LEGACY_GROUPS
    weights: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("encoder", "descriptors"):
            raise ValueError(
                f"MemoryFeatures: kind must be 'encoder' or 'descriptors', got {self.kind!r}"
            )
        if not self.scales or min(self.scales) <= 0:
            raise ValueError(f"MemoryFeatures: scales must be > 0, got {self.scales}")
        if self.pool < 1:
            raise ValueError(f"MemoryFeatures: pool must be >= 1, got {self.pool}")
        setup_groups("rgbd", self.groups)  # names checked here, not at the first extract
        if self.weights is not None and (
            len(self.weights) != len(self.groups) or min(self.weights) <= 0
        ):
            raise ValueError(
                f"MemoryFeatures: weights must be one positive number per group {self.groups}, "
                f"got {self.weights}"
            )
        object.__setattr__(self, "scales", tuple(float(s) for s in self.scales))
        object.__setattr__(self, "groups", tuple(str(g) for g in self.groups))
        if self.weights is not None:
            object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))

    @torch.no_grad()
    def extract(
        self, backbone: DiscreteAutoencoder, x: Tensor, encoder: Tensor | None = None
    ) -> Tensor:
        """(B, C, h, w) features of inputs ``x``; ``encoder``: their Encoder-1 output when the
        caller already has it."""
        if self.kind == "encoder":
            return backbone.encoder_bottom(x) if encoder is None else encoder
        setup = backbone.config.setup
        d = local_descriptors(x, setup, self.scales, self.groups)
        return F.avg_pool2d(d, self.pool) if self.pool > 1 else d

    def channel_weights(self, setup: str) -> Tensor | None:
        """(C,) weight of each descriptor channel for ``setup``; None = all 1."""
        if self.kind != "descriptors" or self.weights is None:
            return None
        by_group = dict(zip(self.groups, self.weights, strict=True))
        parts = []
        for group, sl in group_slices(setup, len(self.scales), self.groups).items():
            n = sl.stop - sl.start
            parts.append(torch.full((n,), by_group[group] / n**0.5))
        return torch.cat(parts)

    def state(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "scales": list(self.scales),
            "pool": self.pool,
            "groups": list(self.groups),
            "weights": None if self.weights is None else list(self.weights),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any] | None) -> MemoryFeatures:
        """None (checkpoints written before descriptors existed) = encoder features; no
        ``groups`` (before groups existed) = surface and colour, every channel weighing 1."""
        if state is None:
            return cls()
        weights = state.get("weights")
        return cls(
            str(state["kind"]),  # type: ignore[arg-type]
            tuple(state["scales"]),
            int(state["pool"]),
            tuple(state.get("groups") or LEGACY_GROUPS),
            None if weights is None else tuple(weights),
        )


class FeatureMemory:
    """A bank of normal features and the distance of new ones to it.

    Args:
        bank: (N, C) normal features, already standardised when ``center``/``scale`` are given.
        image_ids: (N,) the training scan each row came from (lets the calibration leave a scan's
            own features out); None when unknown.
        chunk: query rows per distance block; None = vqcore's block bound
            (``DEFAULT_BLOCK_ELEMENTS`` distances at once).
        features: what a row is (:class:`MemoryFeatures`).
        center, scale: (C,) per-channel standardisation applied to queries (descriptors mix
            units: depth slopes, curvatures, colour ratios); None = none.
        local_scale: (N,) each row's local scale (:func:`threedsr.knn.local_scales`): a query's
            distance is divided by its nearest row's; None = plain distances.

    Example:
        >>> mem = FeatureMemory(torch.zeros(3, 2))
        >>> mem.distance(torch.ones(1, 2, 1, 2)).shape
        torch.Size([1, 1, 2])
    """

    def __init__(
        self,
        bank: Tensor,
        image_ids: Tensor | None = None,
        *,
        chunk: int | None = None,
        features: MemoryFeatures | None = None,
        center: Tensor | None = None,
        scale: Tensor | None = None,
        local_scale: Tensor | None = None,
    ) -> None:
        if bank.ndim != 2 or bank.shape[0] == 0:
            raise ValueError(f"FeatureMemory: bank must be (N>0, C), got {tuple(bank.shape)}")
        for name, v in (("center", center), ("scale", scale)):
            if v is not None and tuple(v.shape) != (bank.shape[1],):
                raise ValueError(
                    f"FeatureMemory: {name} must be ({bank.shape[1]},), got {tuple(v.shape)}"
                )
        if local_scale is not None and tuple(local_scale.shape) != (bank.shape[0],):
            raise ValueError(
                f"FeatureMemory: local_scale must be ({bank.shape[0]},), got "
                f"{tuple(local_scale.shape)}"
            )
        self.bank = bank.float()
        self.image_ids = image_ids
        self.features = features or MemoryFeatures()
        self.center = None if center is None else center.float()
        self.scale = None if scale is None else scale.float().clamp_min(1e-8)
        self.local_scale = None if local_scale is None else local_scale.float().clamp_min(1e-12)
        self.chunk = chunk or row_chunk(self.bank.shape[0], DEFAULT_BLOCK_ELEMENTS)
        self._copies: dict[str, Tensor] = {}

    @torch.no_grad()
    def distance(
        self, feats: Tensor, *, exclude: Tensor | None = None, where: Tensor | None = None
    ) -> Tensor:
        """Euclidean distance of every feature vector to its nearest bank row (divided by that
        row's local scale when the memory has one).

        Args:
            feats: (B, C, h, w) features.
            exclude: (B,) training-scan id per query image whose bank rows are ignored
                (leave-one-scan-out calibration); None = use the whole bank.
            where: (B, h, w) bool: the cells to search for; the others get distance 0 without
                a search (the background, which is a third to a half of a scan); None = all.

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
        if self.center is not None:
            q = q - self.center.to(q.device)
        if self.scale is not None:
            q = q / self.scale.to(q.device)
        if where is not None and tuple(where.shape) != (b, h, w):
            raise ValueError(
                f"FeatureMemory: where must be ({b}, {h}, {w}), got {tuple(where.shape)}"
            )
        out = torch.zeros(b, h * w, device=feats.device)
        for i in range(b):
            skip = None if exclude is None or ids is None else ids == exclude[i]
            rows = None if where is None else where[i].flatten().nonzero()[:, 0]
            qi = q[i] if rows is None else q[i, rows]
            di, nearest = nearest_rows(qi, bank, skip=skip, chunk=self.chunk)
            if self.local_scale is not None:
                di = di / self._on(feats.device, "local_scale")[nearest]
            if rows is None:
                out[i] = di
            else:
                out[i, rows] = di
        return out.view(b, h, w)

    def _on(self, device: torch.device, name: str = "bank") -> Tensor:
        """The bank (or another per-row tensor) on ``device``, copied once per device."""
        t = getattr(self, name)
        if t.device == device:
            return t
        key = f"{name}@{device}"
        if key not in self._copies:
            self._copies[key] = t.to(device)
        return self._copies[key]

    def state(self) -> dict[str, Tensor]:
        """Tensors for a ``weights_only`` checkpoint (the bank in fp16 halves the file)."""
        state: dict[str, Any] = {"bank": self.bank.half(), "features": self.features.state()}
        if self.image_ids is not None:
            state["image_ids"] = self.image_ids.to(torch.int32)
        if self.center is not None:
            state["center"] = self.center
        if self.scale is not None:
            state["scale"] = self.scale
        if self.local_scale is not None:
            state["local_scale"] = self.local_scale
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> FeatureMemory:
        ids = state.get("image_ids")
        return cls(
            state["bank"].float(),
            None if ids is None else ids.long(),
            features=MemoryFeatures.from_state(state.get("features")),
            center=state.get("center"),
            scale=state.get("scale"),
            local_scale=state.get("local_scale"),  # absent before session 8: plain distances
        )


@torch.no_grad()
def fit_memory(
    backbone: DiscreteAutoencoder,
    x: Tensor,
    *,
    features: MemoryFeatures | None = None,
    max_size: int = 40_000,
    batch_size: int = 8,
    seed: int = 0,
    local_k: int = 0,
    local_min_scans: int = 1,
) -> FeatureMemory:
    """Describe good training scans and keep at most ``max_size`` of their feature vectors (a
    seeded random subset when there are more): the object's cells when the input has depth
    (:func:`object_cells`), every cell for RGB alone. Descriptors are standardised per channel
    with the statistics of all kept cells before subsampling.

    Args:
        backbone: the frozen stage-1 backbone (eval mode).
        x: (N, C, H, W) good training inputs at model resolution.
        features: what to store (:class:`MemoryFeatures`); None = encoder features.
        local_k: > 0: divide distances by the nearest row's local scale, its distance to its
            ``local_k``-th nearest row of another scan (:func:`threedsr.knn.local_scales`);
            0 = plain distances.
        local_min_scans: fewer training scans than this: plain distances even when
            ``local_k`` > 0 (with few scans the scales are too noisy to divide by: cable_gland,
            14 / 28 scans: I-AUROC 0.60 / 0.76 against 0.79 / 0.82 plain; 56: 0.87 against 0.82).
    """
    features = features or MemoryFeatures()
    feats, ids = [], []
    for start in range(0, x.shape[0], batch_size):
        xb = x[start : start + batch_size]
        f = features.extract(backbone, xb)
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
    center = scale = None
    if features.kind == "descriptors":
        center, scale = bank.mean(0), bank.std(0, correction=0).clamp_min(1e-6)
        weights = features.channel_weights(backbone.config.setup)
        if weights is not None:
            # Weighting a standardised channel = dividing its scale: queries get it for free.
            scale = scale / weights
        bank = (bank - center) / scale
    if bank.shape[0] > max_size:
        keep = torch.randperm(bank.shape[0], generator=torch.Generator().manual_seed(seed))
        keep = keep[:max_size].sort().values
        bank, image_ids = bank[keep], image_ids[keep]
    local = None
    if local_k > 0 and x.shape[0] >= local_min_scans:
        # An N x N search: on the inputs' device (a GPU when training runs on one).
        local = local_scales(bank.to(x.device), image_ids.to(x.device), local_k).cpu()
    return FeatureMemory(
        bank, image_ids, features=features, center=center, scale=scale, local_scale=local
    )


def object_cells(backbone: DiscreteAutoencoder, x: Tensor, cells: tuple[int, int]) -> Tensor | None:
    """(B, h, w) bool: feature cells on the object, for setups with depth (pcprep leaves the
    background at depth 0 and puts the object in [0.1, 0.9]); None for RGB alone (no
    foreground is known, every cell counts)."""
    if backbone.config.setup == "rgb":
        return None
    return F.adaptive_avg_pool2d((x[:, :1] > 0.05).float(), cells)[:, 0] > 0.5


def memory_map(
    memory: FeatureMemory,
    backbone: DiscreteAutoencoder,
    x: Tensor,
    *,
    features: Tensor | None = None,
    **kw,
) -> Tensor:
    """(B, H, W) distance map of inputs ``x``, bilinearly upsampled to the input size. With
    depth, the bank holds object features only and the background's distance is 0: the
    background is not what the class is inspected for. ``features``: ``x``'s Encoder-1 output
    when the caller already has it (a detector forward computes it; unused by descriptors)."""
    f = memory.features.extract(backbone, x, features)
    on = object_cells(backbone, x, tuple(f.shape[2:]))
    d = memory.distance(f, where=on, **kw)
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
