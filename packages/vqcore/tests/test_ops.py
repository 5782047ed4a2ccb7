from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from vqcore import code_usage, interleave_groups, split_groups


def test_interleave_two_tensors_puts_modalities_together():
    a = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 4, 1, 1)  # a_d = [1, 2], a_rgb = [3, 4]
    b = torch.tensor([10.0, 20.0]).view(1, 2, 1, 1)  # b_d = [10], b_rgb = [20]
    assert interleave_groups(a, b).flatten().tolist() == [1.0, 2.0, 10.0, 3.0, 4.0, 20.0]


@settings(max_examples=25, deadline=None)
@given(
    ca=st.integers(1, 4),
    cb=st.integers(1, 4),
    groups=st.integers(1, 3),
)
def test_interleave_is_a_channel_permutation_respecting_groups(ca: int, cb: int, groups: int):
    a = torch.randn(2, ca * groups, 3, 2)
    b = torch.randn(2, cb * groups, 3, 2)
    out = interleave_groups(a, b, groups=groups)
    assert out.shape == (2, (ca + cb) * groups, 3, 2)
    for g, part in enumerate(split_groups(out, groups)):
        torch.testing.assert_close(part[:, :ca], a[:, g * ca : (g + 1) * ca])
        torch.testing.assert_close(part[:, ca:], b[:, g * cb : (g + 1) * cb])


def test_split_groups_rejects_bad_shapes():
    with pytest.raises(ValueError, match="divisible"):
        split_groups(torch.zeros(1, 3, 2, 2), 2)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        split_groups(torch.zeros(3, 2, 2), 2)


def test_code_usage_uniform_and_single():
    p, used = code_usage(torch.arange(8), 16)
    assert float(p) == pytest.approx(8.0, rel=1e-5) and int(used) == 8
    p, used = code_usage(torch.zeros(50, dtype=torch.long), 16)
    assert float(p) == pytest.approx(1.0, rel=1e-5) and int(used) == 1
