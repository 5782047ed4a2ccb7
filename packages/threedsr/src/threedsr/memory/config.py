"""``MemoryConfig``: what the descriptor memory stores and how it measures distance."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from vqcore import ConfigMixin

from threedsr.config_checks import check_int, is_finite_real
from threedsr.errors import ThreedsrError
from threedsr.memory.descriptors import DESCRIPTOR_GROUPS
from threedsr.memory.parts import MODALITIES, PART_FUSIONS

__all__ = ["MemoryConfig"]


@dataclass(frozen=True)
class MemoryConfig(ConfigMixin):
    """The memory of one class's good cells (:mod:`threedsr.memory`).

    The defaults are the tuned CPU memory (package README rows 18-26, 32, 33, 35, 37 and 38;
    :meth:`for_setup` gives each setup its own): hand-made descriptors of all four groups at 1,
    2, 4 and 8 px, depth weighing as much as colour and texture together, and distances in
    units of the local normal spread.

    Args:
        features: ``descriptors`` (hand-made surface, colour, texture and interior
            descriptors, :mod:`threedsr.memory.descriptors`) or ``encoder`` (the frozen stage-1
            backbone's Encoder-1 features at 1/4 resolution: RGB alone has no object mask for
            the descriptors).
        size: most cells kept (a seeded random subset).
        scales: Gaussian scales of the descriptors, in pixels at model resolution.
        groups: descriptor groups (:data:`DESCRIPTOR_GROUPS`); those the setup lacks are skipped.
        weights: one weight per group, spread over its channels; None = every channel weighs 1.
        local_k: > 0: a distance is divided by its nearest stored cell's distance to its
            ``local_k``-th nearest cell of another training scan
            (:mod:`threedsr.memory.local_scale`); 0 = plain distances.
        local_min_scans: with fewer good training scans the local scale is skipped (too noisy:
            cable_gland, 14 / 28 scans: I-AUROC 0.60 / 0.76 against 0.79 / 0.82 plain).
        modalities: ``joint``: one nearest-neighbour search over all descriptor channels;
            ``separate`` (rgbd descriptors): the depth groups (surface, interior) and the colour
            groups (colour, texture) are searched apart, each distance divided by the spread of
            its own per-scan maxima on training scans left out, and the two summed, so that the
            normal variation of one modality (a rare hue) cannot bury a defect of the other
            (a shallow dent). Package README row 35. ``separate+joint``: both, three searches
            (depth, colour, every channel) fused as ``modality_fusion`` says: the joint
            search sees a pairing of shape and colour that no good cell has, though each is
            normal on its own (a cut's rim, a hole's thread). Row 38.
        modality_fusion: how the parts' distances combine: ``sum`` = each over its
            spread, summed (row 35); ``max`` = the largest of the z-scores against each part's
            per-scan maxima on good scans (:meth:`FeatureMemory.combine_parts`), so that the
            quiet modality's normal variation does not dilute the other's evidence. Row 37.

    Example:
        >>> MemoryConfig().local_k, MemoryConfig.for_setup("rgb").features
        (3, 'encoder')
    """

    _error = ThreedsrError

    features: Literal["encoder", "descriptors"] = "descriptors"
    size: int = 100_000
    scales: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)
    groups: tuple[str, ...] = DESCRIPTOR_GROUPS
    weights: tuple[float, ...] | None = (2.0, 1.0, 1.0, 1.0)
    local_k: int = 3
    local_min_scans: int = 40
    modalities: Literal["joint", "separate", "separate+joint"] = "joint"
    modality_fusion: Literal["sum", "max"] = "max"

    def __post_init__(self) -> None:
        def fail(msg: str) -> None:
            raise ThreedsrError(f"MemoryConfig: {msg}")

        if self.features not in ("encoder", "descriptors"):
            fail(f"features must be 'encoder' or 'descriptors', got {self.features!r}")
        check_int("MemoryConfig", "size", self.size, 1)
        check_int("MemoryConfig", "local_k", self.local_k, 0)
        if self.modalities not in MODALITIES:
            fail(f"modalities must be one of {MODALITIES}, got {self.modalities!r}")
        if self.modality_fusion not in PART_FUSIONS:
            fail(f"modality_fusion must be one of {PART_FUSIONS}, got {self.modality_fusion!r}")
        check_int("MemoryConfig", "local_min_scans", self.local_min_scans, 1)
        # NaN passed the comparisons below (every one is False) and reached the descriptors
        if not self.scales or not all(_positive(v) for v in self.scales):
            fail(f"scales must be > 0, got {self.scales}")
        unknown = set(self.groups) - set(DESCRIPTOR_GROUPS)
        if not self.groups or unknown:
            fail(f"groups must be some of {DESCRIPTOR_GROUPS}, got {self.groups}")
        if self.weights is not None and (
            len(self.weights) != len(self.groups) or not all(_positive(w) for w in self.weights)
        ):
            fail(
                f"weights must be one positive number per group of {self.groups}, got {self.weights}"
            )
        object.__setattr__(self, "scales", tuple(float(v) for v in self.scales))
        object.__setattr__(self, "groups", tuple(str(g) for g in self.groups))
        if self.weights is not None:
            object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))

    @classmethod
    def for_setup(cls, setup: str, **overrides: Any) -> MemoryConfig:
        """The default memory of a setup. RGB alone gives no object mask, so the colour
        descriptors would share the bank with the dark support, which a dark stain matches
        (demo: I-AUROC 0.50): RGB stores the backbone's encoder features instead, with plain
        distances. RGB-D searches depth and colour apart (row 35: CandyCane 0.628 -> 0.750,
        cable_gland 0.888 -> 0.928 I-AUROC, memory alone), and all channels together as a third
        search, which sees pairings of shape and colour that no good cell has (row 38), and
        scores a cell by the most abnormal of the three (row 37). Both were chosen on implanted
        defects of validation scans (row 38: five kinds, both development copies)."""
        base: dict[str, Any] = {}
        if setup == "rgb":
            base = dict(features="encoder", size=40_000, local_k=0)
        elif setup == "rgbd":
            base = dict(modalities="separate+joint")
        base.update(overrides)
        return cls(**base)


def _positive(value: Any) -> bool:
    return is_finite_real(value) and value > 0
