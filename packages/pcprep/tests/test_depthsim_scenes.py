"""pcprep on depthsim's synthetic MVTec-layout scans (skipped when depthsim.scenes is absent)."""

from __future__ import annotations

import numpy as np
import pcprep
import pytest


def test_depthsim_scenes_preprocess(tmp_path):
    scenes = pytest.importorskip("depthsim.scenes")
    root = scenes.generate_dataset(tmp_path / "ds", size=96, n_train=3, n_test_per_type=1, seed=0)
    categories = pcprep.list_categories(root)
    assert categories
    for category in categories:
        refs = pcprep.index_dataset(root, category, "test")
        assert {r.label for r in refs} == {0, 1}
        out = pcprep.preprocess_dataset(
            root, tmp_path / "cache", category=category, split="test", size=96, workers=2
        )
        for ref, prep in zip(refs, out, strict=True):
            assert 0.03 < prep.foreground.mean() < 0.6, ref.path
            assert np.isfinite(prep.depth).all() and prep.depth.max() <= 0.9 + 1e-6
            corners = pcprep.preprocess(ref.load(), size=96, plane="corners")
            # the support fills the border, so the robust and corner planes agree
            assert (corners.foreground == prep.foreground).mean() > 0.99
