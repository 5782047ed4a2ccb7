"""What a notebook user of threedsr meets (issue: API QA): the documented interfaces work with
either backend, bad inputs and options are one-line ThreedsrErrors naming the argument (not
AttributeErrors or NaN maps), and training leaves torch's global RNG as the caller had it."""

from __future__ import annotations

import numpy as np
import pcprep
import pytest
import torch
from pcprep.synthetic import synthetic_scan
from threedsr import (
    Detector,
    DetectorConfig,
    MapCalibration,
    ThreeDSR,
    ThreedsrError,
    box_filter,
    choose_threshold,
    detector_info,
    evaluate,
    export_detector,
    fit_memory,
    flagged_at,
    gaussian_filter,
    predict_samples,
    train_detector,
    upsample_map,
)
from threedsr.dsr.train import load_backbone
from threedsr_testutil import plain_memory_detector, synthetic_class, tiny_backbone, tiny_config


@pytest.fixture(scope="module")
def memory_detector() -> Detector:
    return plain_memory_detector()


def raw_scans(n: int) -> list[pcprep.Sample]:
    return [
        synthetic_scan((80, 96), bump_height=0.02, noise=0.0003, rng=k).sample for k in range(n)
    ]


def test_predict_samples_and_choose_threshold_run_an_onnx_detector(tmp_path) -> None:
    # The README says predict_samples works with an OnnxDetector: it read detector.batch_size,
    # which OnnxDetector lacked (AttributeError) unless batch_size was passed.
    pytest.importorskip("onnxruntime")
    from threedsr import OnnxDetector

    cfg = tiny_config("rgbd")
    torch.manual_seed(3)
    det = Detector(cfg, network=ThreeDSR(tiny_backbone("rgbd"), cfg.model))
    export_detector(det, tmp_path / "d.onnx", dynamic_batch=True)
    onnx_det = OnnxDetector(tmp_path / "d.onnx", threads=1)
    scans = raw_scans(3)
    calls: list[tuple[int, int | None]] = []
    got = predict_samples(onnx_det, scans, progress=lambda d, t: calls.append((d, t)))
    ref = predict_samples(det, scans)
    assert calls[-1] == (3, 3) and [g.native_map.shape for g in got] == [(80, 96)] * 3
    np.testing.assert_allclose([g.score for g in got], [r.score for r in ref], atol=1e-4)
    assert choose_threshold(onnx_det, scans) == pytest.approx(max(r.score for r in ref), abs=1e-4)
    with pytest.raises(ThreedsrError, match=r"expects \(B, 4, 64, 64\) with B >= 1.*got \(0, 4"):
        onnx_det.predict(np.zeros((0, 4, 64, 64), np.float32))
    with pytest.raises(ThreedsrError, match="item 0 is a Sample, not a pcprep Prepared record"):
        onnx_det.predict(scans[:1])
    bad = np.zeros((2, 4, 64, 64), np.float32)
    bad[1, 2, 7, 9] = np.inf
    with pytest.raises(
        ThreedsrError, match=r"d\.onnx: .*1 NaN or inf.*item 1, channel 2, pixel \(7, 9\)"
    ):
        onnx_det.predict(bad)


def test_an_export_given_for_a_checkpoint_and_a_file_for_out_are_named(
    memory_detector, tmp_path
) -> None:
    det = memory_detector
    export_detector(det, tmp_path / "d.pt", fmt="torchscript")
    # Was "unreadable checkpoint (... not from a trusted source)" for the user's own export.
    with pytest.raises(ThreedsrError, match=r"d\.pt: is an exported model, not a detector"):
        detector_info(tmp_path / "d.pt")
    with pytest.raises(ThreedsrError, match="is an exported model"):
        Detector.load(tmp_path / "d.pt")
    # Was pathlib's FileExistsError, raised after the whole evaluation had run.
    with pytest.raises(ThreedsrError, match=r"d\.pt: is a file; out= is the folder"):
        evaluate(det, tmp_path / "no-data", "c", out=tmp_path / "d.pt")


def test_predict_refuses_what_it_cannot_read_with_one_line(memory_detector: Detector) -> None:
    det = memory_detector
    with pytest.raises(ThreedsrError, match=r"predict: empty batch, got \(0, 4, 64, 64\)"):
        det.predict(torch.zeros(0, 4, 64, 64))  # was torch.cat's "expected a non-empty list"
    scans = raw_scans(1)
    with pytest.raises(
        ThreedsrError, match=r"item 0 is a Sample.*pass raw scans to predict_samples"
    ):
        det.predict(scans)  # was AttributeError: 'Sample' object has no attribute 'depth'
    with pytest.raises(ThreedsrError, match=r"item 0 is a Tensor.*one \(B, C, H, W\) tensor"):
        det.predict([torch.rand(4, 64, 64)])
    # An all-NaN scan got a finite score, and one NaN pixel made the whole map NaN.
    with pytest.raises(ThreedsrError, match=r"16384 NaN or inf.*item 0, channel 0, pixel \(0, 0\)"):
        det.predict(torch.full((1, 4, 64, 64), float("nan")))
    nan_pixel = torch.rand(2, 4, 64, 64, dtype=torch.float64)
    nan_pixel[1, 3, 10, 20] = float("nan")
    with pytest.raises(
        ThreedsrError, match=r"predict: .* 1 NaN.*item 1, channel 3, pixel \(10, 20\)"
    ):
        det.predict(nan_pixel)
    # What the README shows: Prepared records, float64 and non-contiguous tensors all work.
    prepared = [det.prepare(s) for s in scans]
    x = torch.rand(2, 64, 64, 4, dtype=torch.float64).permute(0, 3, 1, 2)
    assert det.predict(prepared).scores.shape == (1,)
    torch.testing.assert_close(det.predict(x).maps, det.predict(x.float().contiguous()).maps)


def test_predict_refuses_inputs_it_would_score_wrongly(memory_detector: Detector) -> None:
    det = memory_detector
    x = synthetic_class("rgbd", n=2, seed=2).x
    # Each was cast to fp32 and scored: 8-bit colour as if in [0, 1] (every score 1.0), a mask,
    # a complex tensor without its imaginary part (a warning at most).
    for bad, name in (
        ((x.numpy() * 255).astype(np.uint8), "uint8"),
        (x.to(torch.int64), "int64"),
        (x > 0.5, "bool"),
        (x.to(torch.complex64), "complex64"),
        (np.empty((1, 4, 64, 64), dtype=object), "object"),  # was torch's TypeError
    ):
        with pytest.raises(ThreedsrError, match=f"predict: the input is {name}, not a float"):
            det.predict(bad)
    # Another size was scored with the 64 px detector's pixel scales, against its threshold;
    # its export and OnnxDetector refuse it.
    for shape in ((1, 4, 128, 128), (1, 4, 32, 32), (1, 4, 64, 96)):
        with pytest.raises(ThreedsrError, match=r"expected \(B, 4, H=64, W=64\)"):
            det.predict(torch.rand(shape))
    # One record, or None, raised "object is not iterable".
    prepared = det.prepare(raw_scans(1)[0])
    for bad, what in ((prepared, "one Prepared record"), (None, "None")):
        with pytest.raises(ThreedsrError, match=f"predict: got {what}; pass a"):
            det.predict(bad)
    # A flipped view (negative strides) was torch.from_numpy's ValueError.
    flipped = x.numpy()[:, :, ::-1]
    torch.testing.assert_close(
        det.predict(flipped).maps, det.predict(np.ascontiguousarray(flipped)).maps
    )


def test_loading_a_detector_or_backbone_leaves_the_callers_random_stream_alone(tmp_path) -> None:
    # Building the modules drew their initial weights from torch's global RNG before the file's
    # replaced them: Detector.load, and train_detector through its backbone, moved the caller's
    # stream.
    cfg = tiny_config("depth", out=str(tmp_path / "run"), iterations=1, checkpoint_every=1)
    data = synthetic_class("depth", n=3)
    train_detector(cfg, backbone=tiny_backbone("depth"), data=data, validation=data)
    for load in (
        lambda: Detector.load(tmp_path / "run", device="cpu"),
        lambda: load_backbone(DetectorConfig(setup="depth")),
    ):
        torch.manual_seed(99)
        expected = torch.rand(3)
        torch.manual_seed(99)
        load()
        assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"smoothing": "median"}, "smoothing must be one of"),
        ({"filter_size": 4}, "filter_size must be a positive odd int, got 4"),
        ({"filter_size": -3}, "filter_size must be a positive odd int, got -3"),
        ({"filter_size": 0}, "filter_size must be a positive odd int, got 0"),
        ({"smoothing": "gaussian", "gaussian_sigma": 0}, "gaussian_sigma must be a positive"),
        ({"batch_size": 0}, "batch_size must be a positive int, got 0"),
        ({"batch_size": -1}, "batch_size must be a positive int, got -1"),
        # bool("no") is True: each turned its option on.
        ({"bf16": "no"}, "bf16 must be True, False or None, got 'no'"),
        ({"channels_last": "false"}, "channels_last must be True, False or None, got 'false'"),
    ],
)
def test_detector_options_are_checked_when_it_is_made(memory_detector, option, message) -> None:
    # Each used to pass construction and then fail inside torch at the first predict (a negative
    # box, batch -1), silently fall back (0), or return NaN maps (sigma 0).
    det = memory_detector
    with pytest.raises(ThreedsrError, match=message):
        Detector(det.config, memory=det.memory, memory_calibration=MapCalibration(0, 1), **option)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"image_size": "64"}, "image_size must be an int, got '64'"),
        ({"image_size": 64.0}, "image_size must be an int, got 64.0"),
        ({"smoothing_size": 4}, "smoothing_size must be None or a positive odd int, got 4"),
        ({"smoothing_size": -3}, "smoothing_size must be None or a positive odd int"),
        ({"gaussian_sigma": 0}, "gaussian_sigma must be positive and finite, got 0"),
        # Accepted, written into detector.pt, then refused by Detector.load: a run nobody could use.
        ({"gaussian_sigma": float("inf")}, "gaussian_sigma must be positive and finite, got inf"),
        ({"smoothing_size": True}, "smoothing_size must be None or a positive odd int, got True"),
        ({"log_every": 0}, "log_every must be >= 1, got 0"),
        ({"checkpoint_every": 0}, "checkpoint_every must be >= 1, got 0"),
        # numpy's / torch's "expected non-negative integer", "Overflow when unpacking long
        # long", "seed must be integer" from inside train_detector, naming no field
        ({"seed": -1}, "seed must be an integer from 0 to 18446744073709551615, got -1"),
        ({"seed": 2**64}, "seed must be an integer from 0 to 18446744073709551615, got 1844"),
        ({"seed": 1.5}, "seed must be an int, got 1.5"),
        # A str failed in a comparison (TypeError naming no field); a negative lr only inside
        # Adam, and a NaN one trained NaN weights.
        ({"fusion_weight": "0.5"}, "fusion_weight must be a finite number, got '0.5'"),
        ({"lr": "1e-3"}, "lr must be a finite number, got '1e-3'"),
        ({"lr": float("nan")}, "lr must be a finite number, got nan"),
        ({"lr": -1e-3}, "lr must be > 0, got -0.001"),
        ({"lr_gamma": 0}, "lr_gamma must be > 0, got 0.0"),
        # int() raised ValueError/TypeError naming nothing, or truncated 1.5 to step 1.
        ({"lr_milestones": ("80",)}, r"lr_milestones must be a tuple of steps >= 0, got \('80',\)"),
        ({"lr_milestones": 80}, "lr_milestones must be a tuple of steps >= 0, got 80"),
        ({"lr_milestones": (1.5,)}, r"lr_milestones must be a tuple of steps >= 0, got \(1.5,\)"),
        # bool("no") is True: the option was turned on
        ({"resume": "no"}, "resume must be True or False, got 'no'"),
        ({"compile": "yes"}, "compile must be True or False, got 'yes'"),
    ],
)
def test_detector_config_refuses_values_that_fail_later(override, message) -> None:
    with pytest.raises(ThreedsrError, match=f"DetectorConfig: {message}"):
        DetectorConfig.preset("cpu", **override)


def test_config_replace_takes_a_parts_field_by_its_plain_name() -> None:
    cfg = DetectorConfig.preset("cpu", setup="depth")
    assert cfg.replace(unet_base=4, local_k=0) == DetectorConfig.preset(
        "cpu", setup="depth", unet_base=4, local_k=0
    )
    assert DetectorConfig.preset("memory", image_size=np.int64(128)).image_size == 128
    assert DetectorConfig.preset("cpu", seed=np.uint64(2**64 - 1)).seed == 2**64 - 1
    with pytest.raises(ThreedsrError, match=r"unknown fields \['unet_bse'\]"):
        cfg.replace(unet_bse=4)


def test_network_training_leaves_the_callers_random_stream_alone(tmp_path) -> None:
    cfg = tiny_config("depth", out=str(tmp_path / "run"), iterations=2, checkpoint_every=2)
    data, backbone = synthetic_class("depth", n=4), tiny_backbone("depth")
    torch.manual_seed(1234)
    expected = torch.rand(3)
    torch.manual_seed(1234)
    train_detector(cfg, backbone=backbone, data=data, validation=data)
    assert torch.equal(torch.rand(3), expected)


def test_predict_inside_a_callers_autocast_keeps_the_detectors_precision(memory_detector) -> None:
    # The caller's bf16 autocast reached the memory's fp32 search ("Index put requires the source
    # and destination dtypes match") and would have run an fp32 network in bf16.
    cfg = tiny_config("rgbd")
    torch.manual_seed(3)
    network = Detector(cfg, network=ThreeDSR(tiny_backbone("rgbd"), cfg.model))
    x = synthetic_class("rgbd", n=2, seed=5).x
    for det in (memory_detector, network):
        plain = det.predict(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            inside = det.predict(x)
        assert torch.equal(inside.maps, plain.maps) and inside.maps.dtype == torch.float32


def test_building_blocks_name_the_shape_they_expect() -> None:
    maps = torch.rand(2, 32, 32)
    # A (H, W) map was pooled along the wrong axes without a word; (B, 1, H, W) failed in torch.
    with pytest.raises(
        ValueError, match=r"box_filter: maps must be \(B, H, W\), got shape \(32, 32\)"
    ):
        box_filter(maps[0], 3)
    with pytest.raises(
        ValueError, match=r"box_filter: maps must be \(B, H, W\), got shape \(2, 1, 3"
    ):
        box_filter(maps[:, None], 3)
    with pytest.raises(ValueError, match="sigma must be positive, got 0"):
        gaussian_filter(maps, 0.0)  # was an all-NaN map
    with pytest.raises(ValueError, match=r"upsample_map: m must be one \(H, W\) map"):
        upsample_map(np.ones((1, 4, 4), np.float32), (8, 8))
    cfg = DetectorConfig.for_memory("depth", image_size=64, memory={"local_k": 0})
    with pytest.raises(ValueError, match=r"fit_memory: expected at least one scan .*\(0, 1, 64"):
        fit_memory(torch.zeros(0, 1, 64, 64), "depth", cfg.memory)


def test_threshold_helpers_refuse_what_would_flag_nothing() -> None:
    # A third label was broadcast against two scores by numpy ("operands could not be
    # broadcast"), and one label against many counted every scan with it.
    with pytest.raises(ThreedsrError, match=r"flagged_at: labels and scores .* \(3,\) and \(2,\)"):
        flagged_at([0, 1, 1], [0.1, 0.9], 0.5)
    with pytest.raises(ThreedsrError, match=r"flagged_at: labels and scores .* \(1,\) and \(2,\)"):
        flagged_at([1], [0.1, 0.9], 0.5)
    # Nothing scores above NaN: every scan read as passed.
    with pytest.raises(ThreedsrError, match="flagged_at: threshold must be finite, got nan"):
        flagged_at([0, 1], [0.1, 0.9], float("nan"))
    with pytest.raises(ThreedsrError, match="choose_threshold: margin must be finite, got nan"):
        choose_threshold(scores=[0.1, 0.2], margin=float("nan"))
    assert flagged_at([0, 1], [0.1, 0.9], 0.5)["defective_flagged"] == 1


def test_functions_given_a_run_folder_for_the_detector_name_it(tmp_path) -> None:
    # Each read an attribute of the str first: AttributeError "'str' object has no attribute
    # 'size'" (export), 'category' (evaluate), 'batch_size' (predict_samples, choose_threshold).
    run = str(tmp_path / "run")
    calls = {
        "export": lambda: export_detector(run, tmp_path / "m.onnx"),
        "evaluate": lambda: evaluate(run, tmp_path),
        "predict_samples": lambda: predict_samples(run, []),
        "choose_threshold": lambda: choose_threshold(run, []),
    }
    for name, call in calls.items():
        with pytest.raises(
            ThreedsrError, match=f"{name}: detector is a str, not a loaded detector"
        ):
            call()


@pytest.mark.parametrize(
    ("part", "field", "value", "message"),
    [
        # a zero width built a layer with no channels: torch's error deep in the first step
        ("model", "unet_base", 0, "ModelConfig: unet_base must be an int >= 1, got 0"),
        ("model", "srm_levels", 0, "ModelConfig: srm_levels must be an int >= 1, got 0"),
        ("model", "init_std", -1.0, "ModelConfig: init_std must be a finite number > 0.0"),
        ("model", "srm_residual", "no", "ModelConfig: srm_residual must be True or False"),
        # a probability of 2, a reversed or one-element range, or NaN trained on silently
        ("anomaly", "shuffle_prob", 2.0, "AnomalyConfig: shuffle_prob must be a finite number"),
        ("anomaly", "zero_mask_prob", float("nan"), "AnomalyConfig: zero_mask_prob must be"),
        ("anomaly", "rotation_deg", float("nan"), "AnomalyConfig: rotation_deg must be"),
        (
            "anomaly",
            "mask_threshold",
            (0.8, 0.4),
            r"AnomalyConfig: mask_threshold must be \(lo, hi\)",
        ),
        ("anomaly", "paint_opacity", (0.5,), r"AnomalyConfig: paint_opacity must be \(lo, hi\)"),
        ("anomaly", "strength_range", "ab", r"AnomalyConfig: strength_range must be \(lo, hi\)"),
        ("loss", "focal_gamma", -1.0, "LossConfig: focal_gamma must be a finite number >= 0.0"),
        (
            "preprocess",
            "plane",
            "x",
            r"PreprocessConfig: plane must be one of \('robust', 'corners'\)",
        ),
        (
            "preprocess",
            "fg_threshold",
            -1.0,
            "PreprocessConfig: fg_threshold must be a finite number > 0.0",
        ),
        (
            "preprocess",
            "fill_iterations",
            -1,
            "PreprocessConfig: fill_iterations must be an int >= 0",
        ),
        ("memory", "size", 1.5, "MemoryConfig: size must be an int >= 1, got 1.5"),
        ("memory", "scales", (1.0, float("nan")), r"MemoryConfig: scales must be > 0"),
    ],
)
def test_a_configs_parts_refuse_values_that_fail_later(part, field, value, message) -> None:
    cfg = DetectorConfig.preset("cpu", method="fused")
    with pytest.raises(ThreedsrError, match=message):
        getattr(cfg, part).replace(**{field: value})


def test_predict_samples_takes_what_index_dataset_yields(memory_detector, tmp_path) -> None:
    # pcprep.index_dataset yields SampleRefs; predict_samples refused them ("sample must be a
    # pcprep.Sample"), so listing a split and scoring it took a hand-written load loop.
    import dataclasses

    import depthsim

    root = tmp_path / "data"
    depthsim.scenes.generate_dataset(
        root, classes=["puck"], size=64, n_train=1, n_validation=2, n_test_per_type=1, seed=0
    )
    refs = list(pcprep.index_dataset(root, "puck", "validation"))
    got = predict_samples(memory_detector, refs)
    ref = predict_samples(memory_detector, [r.load() for r in refs])
    assert [g.path for g in got] == [r.path for r in refs]
    np.testing.assert_array_equal([g.score for g in got], [r.score for r in ref])
    # a reference without reader options is read with the detector's, one with its own keeps them
    det = memory_detector
    before, det.read_options = det.read_options, {"depth_unit": "furlong"}
    try:
        with pytest.raises(ValueError, match="furlong"):
            predict_samples(det, refs[:1])
        own = dataclasses.replace(refs[0], options=(("depth_unit", "m"),))
        assert predict_samples(det, [own])[0].score == got[0].score
    finally:
        det.read_options = before
