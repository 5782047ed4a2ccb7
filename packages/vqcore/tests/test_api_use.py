"""What a notebook user of vqcore meets: training leaves torch's global RNG as it was, wrong
dtypes and shapes are one-line errors naming the argument, and configs refuse unknown names
with VqcoreError (not a TypeError) and take a nested config's fields by their plain names."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import vqcore
from vqcore import BackboneConfig, StageOneConfig, VqcoreError, train_dada


def test_train_dada_leaves_the_callers_random_stream_alone(tmp_path, tiny_stage_one) -> None:
    torch.manual_seed(1234)
    expected = torch.rand(3)  # what the caller's next draw is without training in between
    torch.manual_seed(1234)
    train_dada(tiny_stage_one("depth", tmp_path, iterations=2))
    assert torch.equal(torch.rand(3), expected)


def test_rng_scope_restores_the_cpu_generator() -> None:
    before = torch.random.get_rng_state()
    with vqcore.rng_scope("cpu"):
        torch.manual_seed(0)
        torch.rand(5)
    assert torch.equal(torch.random.get_rng_state(), before)


def test_wrong_input_dtype_is_a_one_line_error_before_any_convolution(tiny_backbone) -> None:
    model = vqcore.build_backbone(tiny_backbone("rgbd"))
    x = torch.rand(1, 4, 16, 16)
    with pytest.raises(
        TypeError, match=r"DADA: expected a torch.float32 input .* got torch.float64"
    ):
        model.encode(x.double())
    with pytest.raises(TypeError, match=r"got torch\.uint8"):
        model(torch.zeros(1, 4, 16, 16, dtype=torch.uint8))
    # Under autocast the model's own casts apply, as before.
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert model.encode(x.bfloat16()).idx_top.shape == (1, 2, 2)
    # A float64 model takes float64 input.
    assert model.double().encode(x.double()).q_bot.dtype == torch.float64


def test_decode_names_both_code_maps_when_they_do_not_fit(tiny_backbone) -> None:
    model = vqcore.build_backbone(tiny_backbone("rgbd")).eval()
    enc = model.encode(torch.rand(2, 4, 32, 32))
    assert model.decode(enc.q_top, enc.q_bot).shape == (2, 4, 32, 32)
    with pytest.raises(vqcore.ShapeError, match=r"DADA.decode: expected q_bot \(B, D, 2h, 2w\)"):
        model.decode(enc.q_bot, enc.q_top)  # swapped
    with pytest.raises(vqcore.ShapeError, match=r"DADA.decode: expected q_top \(B, D=8, h, w\)"):
        model.decode(enc.q_top[:, :4], enc.q_bot)
    with pytest.raises(vqcore.ShapeError, match=r"for q_top \(2, 8, 4, 4\), got \(1, 8, 8, 8\)"):
        model.decode(enc.q_top, enc.q_bot[:1])


def test_stage_one_presets_and_replace_refuse_unknown_names() -> None:
    with pytest.raises(VqcoreError, match=r"StageOneConfig: unknown fields \['iteratons'\]"):
        StageOneConfig.preset("cpu", "rgbd", iteratons=3)
    with pytest.raises(VqcoreError, match=r"unknown fields \['bogus'\]"):
        StageOneConfig.paper("depth", bogus=1)
    with pytest.raises(VqcoreError, match=r"unknown fields \['iteratons'\]"):
        StageOneConfig.cpu("rgbd").replace(iteratons=3)
    with pytest.raises(VqcoreError, match=r"BackboneConfig: unknown fields \['hiden'\]"):
        BackboneConfig.cpu("rgbd").replace(hiden=3)
    with pytest.raises(VqcoreError, match=r"^StageOneConfig\.from_dict: expected a mapping"):
        StageOneConfig.from_dict([1])  # type: ignore[arg-type]


def test_load_backbone_names_an_unknown_setup(tmp_path) -> None:
    # checked before the file: "a 'rgbx' one is required" read as if such backbones existed
    with pytest.raises(VqcoreError, match=r"^setup must be one of \('rgbd', 'depth', 'rgb'\)"):
        vqcore.load_backbone(tmp_path / "missing.pt", setup="rgbx")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"seed": -1}, r"seed must be an integer from 0 to 18446744073709551615, got -1"),
        (
            {"seed": 2**64},
            r"seed must be an integer from 0 to 18446744073709551615, got 18446744073709551616",
        ),
        ({"seed": 1.5}, r"seed must be an int, got 1\.5"),
        ({"iterations": "3"}, r"iterations must be an int, got '3'"),
        ({"batch_size": 2.0}, r"batch_size must be an int, got 2\.0"),
        ({"image_size": True}, r"image_size must be an int, got True"),
    ],
)
def test_stage_one_numbers_of_the_wrong_type_or_range_name_the_field(override, message) -> None:
    # They were accepted and failed inside train_dada with numpy's or torch's TypeError /
    # ValueError, which names no field, after the output folder had been made.
    with pytest.raises(VqcoreError, match=rf"^StageOneConfig: {message}"):
        StageOneConfig.preset("cpu", "rgbd", **override)


def test_stage_one_takes_numpy_ints_and_the_largest_seed() -> None:
    cfg = StageOneConfig.preset("cpu", "rgbd", iterations=np.int64(5), seed=2**64 - 1)
    assert cfg.iterations == 5 and type(cfg.iterations) is int and cfg.seed == 2**64 - 1


def test_a_backbone_field_is_an_override_by_its_plain_name() -> None:
    cfg = StageOneConfig.preset("cpu", "rgbd", hidden=32, iterations=10)
    assert cfg.backbone == BackboneConfig.cpu("rgbd", hidden=32) and cfg.iterations == 10
    assert cfg.replace(num_embeddings=16).backbone == BackboneConfig.cpu(
        "rgbd", hidden=32, num_embeddings=16
    )
    # A whole backbone given explicitly is used as it is.
    small = BackboneConfig.cpu("rgbd", hidden=16)
    assert StageOneConfig.cpu("rgbd", backbone=small).backbone == small
