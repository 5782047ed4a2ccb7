"""The memory's parts (threedsr.memory.parts): which channels each search sees, and the fusion
of their distances, checked against a direct formula and with hypothesis properties."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from threedsr.memory.descriptors import group_slices
from threedsr.memory.parts import combine_part_distances, modality_parts

GROUPS = ("surface", "colour", "texture", "interior")


@pytest.mark.parametrize("modalities", ["separate", "separate+joint"])
def test_depth_and_colour_parts_cover_every_channel_once(modalities: str) -> None:
    parts = modality_parts("rgbd", 4, GROUPS, modalities)
    slices = group_slices("rgbd", 4, GROUPS)
    depth = torch.zeros(parts.shape[1], dtype=torch.bool)
    for group in ("surface", "interior"):
        depth[slices[group]] = True
    assert torch.equal(parts[0], depth) and torch.equal(parts[1], ~depth)
    assert parts.shape[0] == (3 if modalities == "separate+joint" else 2)
    assert parts[2:].all()


def test_one_modality_or_joint_gives_no_parts() -> None:
    assert modality_parts("rgbd", 4, GROUPS, "joint") is None
    assert modality_parts("depth", 4, GROUPS, "separate+joint") is None
    assert modality_parts("rgbd", 4, ("surface", "interior"), "separate") is None


_part = st.tuples(st.floats(0, 50), st.floats(0.1, 10), st.floats(0, 30))  # distance, s, m


@settings(max_examples=100, deadline=None)
@given(parts=st.lists(st.lists(_part, min_size=3, max_size=3), min_size=1, max_size=4))
def test_max_fusion_never_falls_when_a_part_is_added_and_ignores_a_duplicate(parts) -> None:
    # parts[p][cell] = (distance, spread, center); a part's spread and center are its first cell's
    d = [torch.tensor([c[0] for c in p]) for p in parts]
    scale = torch.tensor([p[0][1] for p in parts])
    center = torch.tensor([p[0][2] for p in parts])
    fused = combine_part_distances(d, "max", scale, center)
    z = torch.stack([(d[p] - center[p]) / scale[p] for p in range(len(d))]).amax(0)
    torch.testing.assert_close(fused, (z + (center / scale).max()).clamp_min(0))
    # the joint search is one more part: it can only raise a cell's score
    more = combine_part_distances(
        [*d, d[0] * 2], "max", torch.cat([scale, scale[:1]]), torch.cat([center, center[:1]])
    )
    assert (more >= fused - 1e-5).all()
    # a part that repeats another adds no evidence
    same = combine_part_distances(
        [*d, d[-1]], "max", torch.cat([scale, scale[-1:]]), torch.cat([center, center[-1:]])
    )
    torch.testing.assert_close(same, fused)
    summed = combine_part_distances(d, "sum", scale)
    torch.testing.assert_close(summed, sum(d[p] / scale[p] for p in range(len(d))))


def test_fusion_rejects_a_missing_center_and_a_part_count_mismatch() -> None:
    d = [torch.ones(2), torch.ones(2)]
    with pytest.raises(ValueError, match="with a center"):
        combine_part_distances(d, "max", torch.ones(2))
    with pytest.raises(ValueError, match="3 parts"):
        combine_part_distances(d, "sum", torch.ones(3))
