"""depthsim's PNG encoder against pillow's decoder, and a dataset written without pillow."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
from depthsim._rng import DepthsimError
from depthsim.scenes._png import encode_png
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

Image = pytest.importorskip("PIL.Image")

_SHAPES = st.one_of(
    st.tuples(st.integers(1, 20), st.integers(1, 20)),
    st.tuples(st.integers(1, 20), st.integers(1, 20), st.just(3)),
)


@given(image=arrays(np.uint8, _SHAPES), level=st.integers(0, 9))
@settings(max_examples=80, deadline=None)
def test_pillow_decodes_every_pixel(image, level):
    with Image.open(io.BytesIO(encode_png(image, level=level))) as decoded:
        decoded.load()
        assert decoded.mode == ("L" if image.ndim == 2 else "RGB")
        np.testing.assert_array_equal(np.asarray(decoded), image)


@pytest.mark.parametrize(
    ("image", "problem"),
    [
        (np.zeros((2, 2), np.uint16), "uint8"),
        (np.zeros((2, 2, 4), np.uint8), "(H, W, 3)"),
        (np.zeros((2,), np.uint8), "(H, W, 3)"),
        (np.zeros((0, 3), np.uint8), "at least one pixel"),
    ],
)
def test_other_images_are_refused(image, problem):
    with pytest.raises(DepthsimError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        encode_png(image)


def test_a_dataset_is_written_without_pillow(tmp_path):
    # `pip install depthsim` does not bring pillow: generating a dataset must not import it.
    code = (
        "import sys; sys.modules['PIL'] = None\n"
        "import depthsim.scenes as s\n"
        f"s.generate_dataset({str(tmp_path)!r}, classes=['puck'], size=32, n_train=1,"
        " n_validation=1, n_test_per_type=1, seed=0)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    rgb = next(tmp_path.glob("puck/train/good/rgb/*.png"))
    with Image.open(rgb) as decoded:
        assert decoded.mode == "RGB" and decoded.size == (32, 32)
