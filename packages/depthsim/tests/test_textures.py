from __future__ import annotations

import depthsim
import numpy as np


def test_shape_range_determinism():
    x = depthsim.procedural_rgb(6, (48, 64), rng=0)
    assert x.shape == (6, 48, 64, 3) and x.dtype == np.float32
    assert np.isfinite(x).all() and x.min() >= 0 and x.max() <= 1
    assert np.array_equal(x, depthsim.procedural_rgb(6, (48, 64), rng=0))
    assert not np.array_equal(x, depthsim.procedural_rgb(6, (48, 64), rng=1))


def test_variety_of_colours_and_structure():
    x = depthsim.procedural_rgb(48, 64, rng=3).astype(np.float64)
    means = x.mean(axis=(1, 2))
    assert means.std(axis=0).min() > 0.05  # images differ in every channel's mean colour
    chroma = (x.max(-1) - x.min(-1)).mean(axis=(1, 2))
    assert chroma.min() < 0.1 < chroma.max()  # dull and saturated images both occur
    edges = np.abs(np.diff(x, axis=2)).mean(axis=(1, 2, 3))
    assert edges.max() > 3 * np.median(edges)  # some are sharp-edged, most smoother
    assert np.all(x.std(axis=(1, 2)).max(-1) > 0.01)  # no flat image
