"""Packs: every split reads back as pcprep preprocesses the folder (depth and, with the exact
codec, RGB bit for bit), other preprocessing is refused, damage is one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pcprep
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from threedsr import DetectorConfig, Pack, ThreedsrError, is_pack, write_pack
from threedsr.data import load_split, load_validation
from threedsr.packed_codecs import (
    byte_planes,
    colour_planes,
    from_byte_planes,
    from_colour_planes,
    pack_bits,
    read_lines,
    unpack_bits,
)

CATEGORY = "puck"
FIELDS = ("depth", "rgb", "valid", "foreground", "gt", "plane", "native_shape", "label")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from depthsim import scenes

    root = tmp_path_factory.mktemp("data")
    # 80 px scans packed at 64: the resize reads a subset of the native rows and columns
    scenes.generate_dataset(
        root, classes=[CATEGORY], size=80, n_train=3, n_validation=2, n_test_per_type=1, seed=5
    )
    return root


def _params(size: int = 64) -> dict:
    return DetectorConfig(image_size=size).preprocess_kwargs()


@pytest.fixture(scope="module")
def exact_pack(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Pack:
    out = tmp_path_factory.mktemp("packs") / "puck.3dsrpack"
    return write_pack(out, dataset, CATEGORY, _params(), rgb="exact", workers=2)


def _folder(dataset: Path, split: str) -> list[pcprep.Prepared]:
    refs = list(pcprep.index_dataset(dataset, CATEGORY, split))
    return pcprep.preprocess_refs(refs, None, **_params())


@pytest.mark.parametrize("split", ["train", "validation", "test"])
def test_exact_pack_reads_back_bit_for_bit(exact_pack, dataset, split):
    want, got = _folder(dataset, split), Pack(exact_pack.path).prepared(split)
    assert len(got) == len(want) > 0
    for a, b in zip(want, got, strict=True):
        for key in FIELDS:
            x, y = np.asarray(getattr(a, key)), np.asarray(getattr(b, key))
            assert x.dtype == y.dtype and x.shape == y.shape, key
            # bit for bit, not merely equal: -0.0 and NaN payloads would count
            assert x.tobytes() == y.tobytes(), key
        assert a.defect_type == b.defect_type


def test_test_samples_keep_what_eval_and_reports_need(exact_pack, dataset):
    refs = list(pcprep.index_dataset(dataset, CATEGORY, "test"))
    packed = exact_pack.samples["test"]
    assert [str(r.path.relative_to(dataset)) for r in refs] == [str(s.path) for s in packed]
    assert [(r.label, r.defect_type) for r in refs] == [(s.label, s.defect_type) for s in packed]
    for r, s in zip(refs, packed, strict=True):
        want = np.asarray(pcprep.read_mask(r.gt_path)) > 0
        np.testing.assert_array_equal(exact_pack.native_gt(s), want)


def test_uint8_pack_is_smaller_depth_exact_rgb_rounded(exact_pack, dataset, tmp_path):
    small = write_pack(tmp_path / "u.3dsrpack", dataset, CATEGORY, _params(), rgb="uint8")
    assert small.path.stat().st_size < exact_pack.path.stat().st_size
    for a, b in zip(_folder(dataset, "test"), small.prepared("test"), strict=True):
        assert a.depth.tobytes() == b.depth.tobytes()
        assert np.abs(a.rgb - b.rgb).max() <= 0.5 / 255 + 1e-6
        assert not np.array_equal(a.rgb, b.rgb) or a.rgb.shape[0] == 80


def test_load_split_and_validation_read_the_pack(exact_pack, dataset):
    a = load_split(str(dataset), CATEGORY, "train", _params())
    b = load_split(str(exact_pack.path), CATEGORY, "train", _params())
    assert [p.depth.tobytes() for p in a] == [p.depth.tobytes() for p in b]
    config = DetectorConfig(image_size=64, data_root=str(exact_pack.path), category=CATEGORY)
    assert config.preprocess_kwargs() == _params()
    folder = DetectorConfig(image_size=64, data_root=str(dataset), category=CATEGORY)
    va, vb = load_validation(folder), load_validation(config)
    assert va is not None and vb is not None
    assert bool((va.x == vb.x).all()) and bool((va.foreground == vb.foreground).all())


def test_other_preprocessing_or_class_is_refused(exact_pack):
    with pytest.raises(
        ThreedsrError, match=r"size 64 \(asked 96\).*\(threedsr-cli pack --size 96 "
    ):
        load_split(str(exact_pack.path), CATEGORY, "train", _params(96))
    # the hint names the option that differs, and none where no option of pack sets it
    with pytest.raises(ThreedsrError, match=r"\(threedsr-cli pack --depth-unit mm \.\.\.\)$"):
        exact_pack.check(CATEGORY, _params(), {"depth_unit": "mm"})
    other = {**_params(), "fg_threshold": 0.01}
    with pytest.raises(ThreedsrError, match=r"fg_threshold.*those settings$"):
        exact_pack.check(CATEGORY, other)
    with pytest.raises(ThreedsrError, match="holds class 'puck', not 'bagel'"):
        exact_pack.check("bagel", _params())


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda b: b[:-100], "truncated or corrupt"),
        (lambda b: b[:5000] + bytes([b[5000] ^ 1]) + b[5001:], "truncated or corrupt"),
        (lambda b: b"NOTAPACK" + b[8:], "not a threedsr pack"),
        (lambda b: b[:8] + (99).to_bytes(4, "little") + b[12:], "pack format 99"),
        (lambda b: b[:20], "truncated or corrupt"),
    ],
)
def test_damaged_pack_is_one_line(exact_pack, tmp_path, damage, message):
    bad = tmp_path / "bad.3dsrpack"
    bad.write_bytes(damage(exact_pack.path.read_bytes()))
    with pytest.raises(ThreedsrError, match=message) as info:
        Pack(bad)
    assert str(bad) in str(info.value) and "\n" not in str(info.value)


def test_is_pack(exact_pack, dataset):
    assert is_pack(exact_pack.path) and not is_pack(dataset) and not is_pack(None)


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, max_side=9)))
def test_byte_planes_round_trip_any_float(a):
    got = from_byte_planes(byte_planes(a), np.float32, a.shape)
    assert got.tobytes() == a.tobytes()  # NaN, inf and -0.0 included


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.uint8, st.tuples(st.integers(1, 9), st.integers(1, 9), st.just(3))))
def test_colour_planes_and_bits_round_trip(rgb):
    np.testing.assert_array_equal(from_colour_planes(colour_planes(rgb), rgb.shape[:2]), rgb)
    mask = rgb[..., 0] > 127
    np.testing.assert_array_equal(unpack_bits(pack_bits(mask), mask.shape), mask)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(2, 60),
    st.integers(2, 60),
    st.integers(1, 40),
    st.integers(1, 40),
    st.integers(0, 2**32 - 1),
)
def test_read_lines_are_all_the_bilinear_resize_reads(h, w, oh, ow, seed):
    """Zeroing every pixel outside `read_lines` changes nothing in pcprep's resize: the exact
    codec stores only those pixels."""
    img = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    sparse = np.zeros_like(img)
    rows, cols = read_lines(h, oh), read_lines(w, ow)
    sparse[np.ix_(rows, cols)] = img[np.ix_(rows, cols)]
    full = pcprep.resize_rgb(img, (oh, ow))
    assert pcprep.resize_rgb(sparse, (oh, ow)).tobytes() == full.tobytes()
