"""vqcore.check_shape / ShapeError (issue 15): one typed shape check for every module."""

from __future__ import annotations

import pytest
import torch
import vqcore


def test_check_shape_accepts_and_rejects() -> None:
    vqcore.check_shape(torch.zeros(2, 4, 16, 8), ("B", 4, "H", "W"), multiple=8, name="m")
    with pytest.raises(vqcore.ShapeError, match=r"m: expected input \(B, 4, H, W\), got \(2, 3"):
        vqcore.check_shape(torch.zeros(2, 3, 8, 8), ("B", 4, "H", "W"), name="m")
    with pytest.raises(vqcore.ShapeError, match=r"expected input \(B, 4, H, W\)"):
        vqcore.check_shape(torch.zeros(4, 8, 8), ("B", 4, "H", "W"), name="m")
    with pytest.raises(vqcore.ShapeError, match="multiples of 8, got \\(12, 8\\)"):
        vqcore.check_shape(torch.zeros(1, 4, 12, 8), ("B", 4, "H", "W"), multiple=8, name="m")


def test_shape_error_is_a_value_error_raised_by_the_modules() -> None:
    assert issubclass(vqcore.ShapeError, ValueError)  # callers catching ValueError still work
    model = vqcore.build_backbone(vqcore.BackboneConfig.cpu("depth"))
    with pytest.raises(vqcore.ShapeError, match="multiples of 8"):
        model.encode(torch.zeros(1, 1, 12, 12))
    with pytest.raises(vqcore.ShapeError):
        vqcore.VectorQuantizerEMA(8, 4)(torch.zeros(1, 3, 2, 2))
