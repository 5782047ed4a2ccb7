"""The descriptor memory as a module: a bank of good cells and the distance of new cells to it.

Not in the paper or the reference code. At CPU budgets the 3DSR heads see only a few thousand
synthetic anomalies; the memory needs none: it stores what normal looks like and flags what is
far from all of it. Its cells are hand-made surface, colour, texture and interior descriptors
(:mod:`threedsr.memory.descriptors`), which see millimetre dents that a CPU-sized backbone's
codes do not, or the frozen stage-1 encoder's features (RGB alone).

:class:`FeatureMemory` is an ``nn.Module`` whose buffers are the bank and its statistics, so the
exported graph (:mod:`threedsr.graph`) runs this very module. Both an eager and a traced call
search the object's cells only, with the same result: the eager one in cache-sized blocks, the
traced one gathering the cells when it runs and taking the bank in fixed products
(:mod:`threedsr.memory.traced`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from vqcore import DiscreteAutoencoder

from threedsr.memory.features import MemoryFeatures, object_cells
from threedsr.memory.knn import channel_atoms, nearest_rows, split_bank
from threedsr.memory.parts import check_parts, combine_part_distances
from threedsr.memory.traced import (
    MINIMUM_BLOCK,
    PRODUCT_ROWS,
    augmented_banks,
    recording,
    traced_nearest,
)

__all__ = ["FeatureMemory"]


class FeatureMemory(nn.Module):
    """A bank of normal cells; ``forward`` maps an input to each pixel's distance to the bank.

    Args:
        bank: (N, C) normal features, already standardised when ``center``/``scale`` are given.
        setup: the input setup (``rgbd`` | ``depth`` | ``rgb``).
        image_ids: (N,) the training scan each row came from (lets the calibration leave a scan's
            own features out); None when unknown.
        features: what a row is (:class:`MemoryFeatures`); None = descriptors.
        center, scale: (C,) per-channel standardisation applied to queries (descriptors mix
            units: depth slopes, curvatures, colour ratios); None = none.
        local_scale: (N,) each row's local scale
            (:func:`threedsr.memory.local_scale.local_scales`): a query's distance is divided by
            its nearest row's; None = plain distances. With ``parts``: (P, N), one scale per part.
        backbone: the frozen stage-1 backbone, for ``encoder`` features only.
        parts: (P, C) bool, the channels each part searches (``MemoryConfig.modalities``): each
            part is searched on its own channels, and the parts' distances are combined by
            ``part_fusion`` (:meth:`combine_parts`). Parts may share channels
            (``separate+joint``: depth, colour, and every channel). A (C,) int64 part index per
            channel (disjoint parts, how detectors before session 16 store them) is read as
            the same masks. None = one search over every channel.
        part_scale: (P,) each part's spread; required with ``parts``.
        part_center: (P,) each part's typical good-scan maximum; required with
            ``part_fusion="max"``.
        part_fusion: ``sum`` = the parts' distances over their spreads, summed; ``max`` = the
            largest of the parts' z-scores (``MemoryConfig.modality_fusion``).

    Shape:
        - Input: (B, C_in, H, W) model inputs.
        - Output: (B, H, W) distances, 0 on the background when the setup has depth.

    Example:
        >>> mem = FeatureMemory(torch.zeros(3, 2), "rgbd")
        >>> mem.distance(torch.ones(1, 2, 1, 2)).shape
        torch.Size([1, 1, 2])
    """

    bank: Tensor
    center: Tensor | None
    scale: Tensor | None
    local_scale: Tensor | None
    image_ids: Tensor | None
    parts: Tensor | None
    part_scale: Tensor | None
    part_center: Tensor | None

    def __init__(
        self,
        bank: Tensor,
        setup: str,
        image_ids: Tensor | None = None,
        *,
        features: MemoryFeatures | None = None,
        center: Tensor | None = None,
        scale: Tensor | None = None,
        local_scale: Tensor | None = None,
        backbone: DiscreteAutoencoder | None = None,
        parts: Tensor | None = None,
        part_scale: Tensor | None = None,
        part_center: Tensor | None = None,
        part_fusion: str = "sum",
    ) -> None:
        super().__init__()
        if bank.ndim != 2 or bank.shape[0] == 0:
            raise ValueError(f"FeatureMemory: bank must be (N>0, C), got {tuple(bank.shape)}")
        for name, v in (("center", center), ("scale", scale)):
            if v is not None and tuple(v.shape) != (bank.shape[1],):
                raise ValueError(
                    f"FeatureMemory: {name} must be ({bank.shape[1]},), got {tuple(v.shape)}"
                )
        parts = check_parts(parts, part_scale, part_center, part_fusion, bank.shape[1])
        want = (bank.shape[0],) if parts is None else (parts.shape[0], bank.shape[0])
        if local_scale is not None and tuple(local_scale.shape) != want:
            raise ValueError(
                f"FeatureMemory: local_scale must be {want}, got {tuple(local_scale.shape)}"
            )
        self.setup = setup
        self.features = features or MemoryFeatures("descriptors")
        if self.features.kind == "encoder" and backbone is None:
            raise ValueError("FeatureMemory: an encoder-feature memory needs its backbone")
        # Registered only for encoder features: a descriptor memory holds no network at all.
        self.backbone = backbone if self.features.kind == "encoder" else None
        self.register_buffer("bank", bank.float())
        self.register_buffer("image_ids", None if image_ids is None else image_ids.long())
        self.register_buffer("center", None if center is None else center.float())
        self.register_buffer("scale", None if scale is None else scale.float().clamp_min(1e-8))
        self.register_buffer(
            "local_scale", None if local_scale is None else local_scale.float().clamp_min(1e-12)
        )
        self.register_buffer("parts", None if parts is None else parts.bool())
        self.register_buffer(
            "part_scale", None if part_scale is None else part_scale.float().clamp_min(1e-12)
        )
        self.register_buffer(
            "part_center", None if part_center is None else part_center.float().clamp_min(0)
        )
        self.part_fusion = part_fusion
        # The parts' channel atoms, as plain lists: what a traced search indexes with.
        self.atoms = channel_atoms(self.parts)
        # The traced search's banks, derived and not saved: as buffers they are constants of an
        # exported graph, which then holds neither the plain bank nor the work of building them.
        self.minimum_block = MINIMUM_BLOCK  # the padding the augmented banks were built with
        for a, augmented in enumerate(augmented_banks(self.bank, self.atoms[0], MINIMUM_BLOCK)):
            self.register_buffer(f"augmented_{a}", augmented, persistent=False)

    def part_columns(self) -> list[tuple[Tensor | None, Tensor | None]]:
        """(channel indices or None = all, local scale or None) per part."""
        if self.parts is None:
            return [(None, self.local_scale)]
        return [
            (
                self.parts[p].nonzero()[:, 0],
                None if self.local_scale is None else self.local_scale[p],
            )
            for p in range(self.parts.shape[0])
        ]

    def _local_per_part(self) -> Tensor | None:
        """The local scales as (P, N), P = 1 without parts; None without scales."""
        if self.local_scale is None or self.parts is not None:
            return self.local_scale
        return self.local_scale[None]

    def combine_parts(self, distances: list[Tensor]) -> Tensor:
        """One distance from each part's (one per :meth:`part_columns` entry, same shapes):
        :func:`~threedsr.memory.parts.combine_part_distances` with this memory's fusion and
        statistics."""
        if self.parts is None:
            return distances[0]
        return combine_part_distances(
            distances,
            self.part_fusion,
            self.part_scale,  # type: ignore[arg-type]
            self.part_center,
        )

    def forward(
        self, x: Tensor, *, encoder: Tensor | None = None, exclude: Tensor | None = None
    ) -> Tensor:
        """(B, H, W) distance map of inputs ``x``, bilinearly upsampled to the input size. With
        depth, the bank holds object cells only and the background's distance is 0: the
        background is not what the class is inspected for.

        Args:
            x: (B, C_in, H, W) model inputs.
            encoder: ``x``'s Encoder-1 output when the caller already has it (encoder memories).
            exclude: (B,) training-scan id per image whose rows are ignored (leave one scan out).
        """
        f = self.features.extract(self.setup, x, backbone=self.backbone, encoder=encoder)
        on = object_cells(self.setup, x, (f.shape[2], f.shape[3]))
        if recording():
            d = self._traced_distance(f, on)
        else:
            d = self.distance(f, exclude=exclude, where=on)
        return F.interpolate(d[:, None], size=x.shape[2:], mode="bilinear", align_corners=False)[
            :, 0
        ]

    def _queries(self, feats: Tensor) -> Tensor:
        """(B, h*w, C) standardised query rows."""
        b, c, h, w = feats.shape
        if c != self.bank.shape[1]:
            raise ValueError(
                f"FeatureMemory: features have {c} channels, the bank {self.bank.shape[1]}"
            )
        q = feats.float().permute(0, 2, 3, 1).reshape(b, h * w, c)
        if self.center is not None:
            q = q - self.center
        if self.scale is not None:
            q = q / self.scale
        return q

    @torch.no_grad()
    def distance(
        self, feats: Tensor, *, exclude: Tensor | None = None, where: Tensor | None = None
    ) -> Tensor:
        """Euclidean distance of every feature vector to its nearest bank row (divided by that
        row's local scale when the memory has one), the parts' combined (:meth:`combine_parts`).

        Args:
            feats: (B, C, h, w) features.
            exclude: (B,) training-scan id per query image whose bank rows are ignored
                (leave-one-scan-out calibration); None = use the whole bank.
            where: (B, h, w) bool: the cells to search for; the others get distance 0 without
                a search (the background, which is a third to a half of a scan); None = all.

        Shape:
            - Output: (B, h, w).
        """
        d = self.combine_parts(list(self.part_distances(feats, exclude=exclude, where=where)))
        # The unsearched cells stay 0 (max fusion would lift a part's 0 to its typical value).
        return d if where is None else d.masked_fill(~where, 0.0)

    @torch.no_grad()
    def part_distances(
        self, feats: Tensor, *, exclude: Tensor | None = None, where: Tensor | None = None
    ) -> Tensor:
        """:meth:`distance` of each part before they are combined: (P, B, h, w), P = 1 without
        parts, 0 off ``where``. The parts are searched together
        (:func:`~threedsr.memory.knn.nearest_rows`), sharing the products of shared channels."""
        b, _, h, w = feats.shape
        q = self._queries(feats)
        if where is not None and tuple(where.shape) != (b, h, w):
            raise ValueError(
                f"FeatureMemory: where must be ({b}, {h}, {w}), got {tuple(where.shape)}"
            )
        n_parts = 1 if self.parts is None else self.parts.shape[0]
        local = self._local_per_part()
        out = torch.zeros(n_parts, b, h * w, device=feats.device)
        bank = split_bank(self.bank, self.atoms)  # once for every image of the batch
        for i in range(b):
            skip = (
                None if exclude is None or self.image_ids is None else self.image_ids == exclude[i]
            )
            rows = None if where is None else where[i].flatten().nonzero()[:, 0]
            qi = q[i] if rows is None else q[i, rows]
            d, nearest = nearest_rows(qi, bank, skip=skip)
            if self.parts is None:
                d, nearest = d[None], nearest[None]
            if local is not None:
                d = d / local.gather(1, nearest)
            if rows is None:
                out[:, i] = d
            else:
                out[:, i, rows] = d
        return out.view(n_parts, b, h, w)

    def _traced_distance(self, feats: Tensor, where: Tensor | None) -> Tensor:
        """:meth:`distance` as whole-tensor operations a tracer records
        (:mod:`threedsr.memory.traced`): the cells of ``where`` (every cell when None) of every
        image of the batch gathered, searched against fixed blocks of the bank, scattered back."""
        h, w = feats.shape[2], feats.shape[3]
        q = self._queries(feats)
        q = q.reshape(-1, q.shape[2])
        rows = None if where is None else where.reshape(-1).nonzero()[:, 0]
        atoms, of_part = self.atoms
        augmented = [getattr(self, f"augmented_{a}") for a in range(len(atoms))]
        nearest = traced_nearest(
            q if rows is None else q[rows],
            augmented,
            atoms,
            of_part,
            self.minimum_block,
            PRODUCT_ROWS,
        )
        local = self._local_per_part()
        per_part = [
            d.sqrt() if local is None else d.sqrt() / local[p][i]
            for p, (d, i) in enumerate(nearest)
        ]
        d = self.combine_parts(per_part)
        if rows is not None:
            d = torch.zeros(q.shape[0], dtype=d.dtype, device=d.device).scatter(0, rows, d)
        return d.reshape(-1, h, w)

    def state(self) -> dict[str, Any]:
        """Tensors and primitives for a ``weights_only`` checkpoint (the bank in fp16 halves
        the file)."""
        state: dict[str, Any] = {"bank": self.bank.half().cpu(), "features": self.features.state()}
        names = (
            "image_ids",
            "center",
            "scale",
            "local_scale",
            "parts",
            "part_scale",
            "part_center",
        )
        for name in names:
            t = getattr(self, name)
            if t is not None:
                state[name] = (t.to(torch.int32) if name == "image_ids" else t).cpu()
        if self.parts is not None:
            state["part_fusion"] = self.part_fusion
        return state

    @classmethod
    def from_state(
        cls, state: dict[str, Any], setup: str, backbone: DiscreteAutoencoder | None = None
    ) -> FeatureMemory:
        ids = state.get("image_ids")
        return cls(
            state["bank"].float(),
            setup,
            None if ids is None else ids.long(),
            features=MemoryFeatures.from_state(state.get("features")),
            center=state.get("center"),
            scale=state.get("scale"),
            local_scale=state.get("local_scale"),  # absent before session 8: plain distances
            backbone=backbone,
            # absent before session 10: one joint search; (C,) part indices before session 16
            parts=state.get("parts"),
            part_scale=state.get("part_scale"),
            part_center=state.get("part_center"),
            part_fusion=str(state.get("part_fusion", "sum")),  # absent before session 13: summed
        )
