from __future__ import annotations

import json
import signal

import pytest
import torch
from threedsr import (
    Detector,
    DetectorConfig,
    DisplayScale,
    ThreedsrError,
    box_filter,
    detector_info,
    read_checkpoint,
    train_detector,
)
from threedsr.checkpoint import FORMAT_VERSION, KIND, atomic_save
from threedsr_testutil import synthetic_class, tiny_backbone, tiny_config


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny_run")
    cfg = tiny_config("rgbd", out=str(out), category="synthetic")
    res = train_detector(cfg, backbone=tiny_backbone("rgbd"), data=synthetic_class("rgbd"))
    return out, res


def test_checkpoint_is_self_describing(tiny_run) -> None:
    out, res = tiny_run
    assert res.path == out / "detector.pt" and res.step == 6
    ck = read_checkpoint(res.path)
    assert ck["kind"] == KIND and ck["setup"] == "rgbd" and ck["category"] == "synthetic"
    assert ck["step"] == 6 and ck["finished"] is True and ck["total"] == 6
    assert ck["format_version"] == FORMAT_VERSION == 3 and ck["method"] == "3dsr"
    # The network's parts and its calibration; no memory (the 3dsr method does not read one).
    assert {"backbone_config", "backbone_state", "heads_state", "heads_calibration"} <= set(ck)
    assert not {"memory", "memory_calibration"} & set(ck)
    assert ck["heads_calibration"][1] > 0
    display = DisplayScale.from_state(ck["display"])
    assert display is not None and display.source == "training"
    assert display.low < display.threshold < display.high
    assert ck["preprocess"] == {
        "size": 64,
        "plane": "robust",
        "fg_threshold": 0.005,
        "fill_iterations": 2,
        "drop_border_objects": False,
        "depth_axis": "camera",
    }
    assert set(ck["versions"]) >= {"threedsr", "vqcore", "torch"}
    assert DetectorConfig.from_dict(ck["detector_config"]).model.unet_base == 4
    # plain torch.load with weights_only=True works: only primitives and tensors inside
    torch.load(res.path, weights_only=True)
    assert json.loads((out / "train_history.json").read_text())[-1]["step"] == 6


def test_detector_info_reports_setup_and_progress(tiny_run, tmp_path) -> None:
    out, _ = tiny_run
    info = detector_info(out)
    assert info.path == out / "detector.pt" and info.setup == "rgbd"
    assert info.category == "synthetic" and info.finished and (info.step, info.total) == (6, 6)
    assert info.format_version == FORMAT_VERSION and info.config["category"] == "synthetic"
    assert info.method == "3dsr" and info.config["method"] == "3dsr"
    assert info.display == DisplayScale.from_state(read_checkpoint(info.path)["display"])
    ck = read_checkpoint(out / "detector.pt")
    atomic_save({**ck, "finished": False, "step": 3}, tmp_path / "detector.pt")
    half = detector_info(tmp_path / "detector.pt")
    assert not half.finished and half.step == 3
    with pytest.raises(ThreedsrError, match="no such detector checkpoint"):
        detector_info(tmp_path / "missing")


def test_round_trip_predictions_equal(tiny_run) -> None:
    out, _ = tiny_run
    det = Detector.load(out, device="cpu")
    det2 = Detector.load(out / "detector.pt", device="cpu", setup="rgbd")
    x = synthetic_class("rgbd", n=3, seed=9).x
    p1, p2 = det.predict(x), det2.predict(x)
    assert torch.equal(p1.maps, p2.maps) and torch.equal(p1.scores, p2.scores)
    assert det.setup == "rgbd" and det.filter_size == 11 and det.category == "synthetic"


def test_wrong_kind_truncated_wrong_setup_rejected(tiny_run, tmp_path) -> None:
    out, _ = tiny_run
    other = tmp_path / "other.pt"
    atomic_save({"kind": "vqcore.backbone", "format_version": 1}, other)
    with pytest.raises(ThreedsrError, match=r"other\.pt: not a threedsr\.detector checkpoint"):
        Detector.load(other)
    trunc = tmp_path / "trunc.pt"
    trunc.write_bytes((out / "detector.pt").read_bytes()[:5000])
    with pytest.raises(ThreedsrError, match=r"trunc\.pt: unreadable checkpoint \(truncated"):
        Detector.load(trunc)
    with pytest.raises(ThreedsrError, match=r"detector\.pt: is a 'rgbd' detector, but a 'depth'"):
        Detector.load(out, setup="depth")
    with pytest.raises(ThreedsrError, match="no such detector checkpoint"):
        Detector.load(tmp_path / "missing")
    # Format 1 (before the config was split into parts) is refused, not guessed at.
    old = tmp_path / "old.pt"
    atomic_save({**read_checkpoint(out / "detector.pt"), "format_version": 1}, old)
    with pytest.raises(ThreedsrError, match=r"old\.pt: unsupported format version 1") as err:
        Detector.load(old)
    assert "\n" not in str(err.value)


def _resumed_after(tmp_path, damage) -> tuple[DetectorConfig, object]:
    """Train 6 steps into ``full/`` and 3 into ``half/``, let ``damage`` alter ``half/`` as a
    crash would, resume it to 6 and check that it trained on from step 3 to the heads of the
    uninterrupted run. Returns the half run's config and data."""
    data = synthetic_class("depth")
    full = tiny_config("depth", out=str(tmp_path / "full"), iterations=6)
    train_detector(full, backbone=tiny_backbone("depth"), data=data)
    half = tiny_config(
        "depth", out=str(tmp_path / "half"), iterations=3, lr_milestones=full.lr_milestones
    )
    train_detector(half, backbone=tiny_backbone("depth"), data=data)
    damage(tmp_path / "half")
    steps: list[int] = []
    resumed = train_detector(
        half.replace(iterations=6),
        lambda event: steps.append(event.step) if event.stage == "detector" else None,
        backbone=tiny_backbone("depth"),
        data=data,
    )
    assert resumed.step == 6 and min(steps) > 3
    a = read_checkpoint(tmp_path / "full" / "detector.pt")["heads_state"]
    b = read_checkpoint(tmp_path / "half" / "detector.pt")["heads_state"]
    for mod in a:
        for k in a[mod]:
            torch.testing.assert_close(a[mod][k], b[mod][k], rtol=0, atol=1e-6)
    return half.replace(iterations=6), data


def test_resume_equals_uninterrupted_and_keeps_the_history_to_its_checkpoint(tmp_path) -> None:
    def log_past_the_checkpoint(run) -> None:
        # An entry logged after the last checkpoint (as before a crash) is trained again.
        first = json.loads((run / "train_history.json").read_text())
        entries = [*first, {**first[-1], "step": 5.0, "total": -1.0}]
        (run / "train_history.json").write_text(json.dumps(entries))

    _resumed_after(tmp_path, log_past_the_checkpoint)
    expected = json.loads((tmp_path / "full" / "train_history.json").read_text())
    history = json.loads((tmp_path / "half" / "train_history.json").read_text())
    assert [e["step"] for e in history] == [e["step"] for e in expected] == [1, 2, 3, 4, 5, 6]
    for got, want in zip(history, expected, strict=True):
        assert got["total"] == pytest.approx(want["total"], abs=1e-5)


def test_train_state_alone_resumes_a_run_killed_before_its_first_detector_file(tmp_path) -> None:
    # save_training_state writes train_state.pt first; a kill before the first detector.pt left
    # the state alone, and the run silently started again from step 0 (the CLI counts either
    # file as a checkpoint, so the run it replaced was already gone).
    half, data = _resumed_after(tmp_path, lambda run: (run / "detector.pt").unlink())
    # The state alone is checked like a detector.pt: another run, or resume off, is refused.
    (tmp_path / "half" / "detector.pt").unlink()
    with pytest.raises(
        ThreedsrError, match=r"train_state\.pt: holds a different run \(differs in lr\)"
    ):
        train_detector(half.replace(lr=1e-2), backbone=tiny_backbone("depth"), data=data)
    with pytest.raises(ThreedsrError, match=r"train_state\.pt: exists and resume is off"):
        train_detector(half.replace(resume=False), backbone=tiny_backbone("depth"), data=data)


def test_resume_refuses_a_different_run(tiny_run) -> None:
    out, _ = tiny_run
    cfg = tiny_config("rgbd", out=str(out), category="synthetic", unet_base=8, iterations=8)
    with pytest.raises(ThreedsrError, match="holds a different run"):
        train_detector(cfg, backbone=tiny_backbone("rgbd"), data=synthetic_class("rgbd"))
    cfg = tiny_config("rgbd", out=str(out), category="synthetic", resume=False)
    with pytest.raises(ThreedsrError, match="exists and resume is off"):
        train_detector(cfg, backbone=tiny_backbone("rgbd"), data=synthetic_class("rgbd"))


def test_setup_mismatch_with_backbone(tmp_path) -> None:
    with pytest.raises(
        ThreedsrError, match="is a 'depth' backbone but the detector setup is 'rgbd'"
    ):
        train_detector(
            tiny_config("rgbd", out=str(tmp_path)),
            backbone=tiny_backbone("depth"),
            data=synthetic_class("rgbd"),
        )


def test_keyboard_interrupt_saves_then_reraises(tmp_path) -> None:
    cfg = tiny_config("depth", out=str(tmp_path), iterations=6, checkpoint_every=100)

    def interrupt(event):
        if event.step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_detector(
            cfg, interrupt, backbone=tiny_backbone("depth"), data=synthetic_class("depth")
        )
    ck = read_checkpoint(tmp_path / "detector.pt")
    assert ck["step"] == 2 and ck["finished"] is False
    res = train_detector(cfg, backbone=tiny_backbone("depth"), data=synthetic_class("depth"))
    assert res.step == 6


def _as_format_2(ckpt: dict, weight: float) -> dict:
    """A format-3 fused detector.pt rewritten the way format 2 wrote it: one flat config for both
    methods (the memory's fields flat, no method), the method implied by ``memory_weight``, the
    memory dict carrying the two calibrations and the weight (no memory at weight 0), no display
    scale."""
    old = {k: v for k, v in ckpt.items() if k not in ("method", "display")}
    cfg = dict(old["detector_config"])
    memory = cfg.pop("memory")
    del cfg["method"], cfg["fusion_weight"]
    cfg.update(
        memory_weight=weight,
        memory_size=memory["size"],
        memory_features=memory["features"],
        descriptor_scales=memory["scales"],
        descriptor_groups=memory["groups"],
        descriptor_weights=memory["weights"],
        memory_local_k=memory["local_k"],
        memory_local_min_scans=memory["local_min_scans"],
    )
    heads_cal, memory_cal = old.pop("heads_calibration"), old.pop("memory_calibration")
    stored = old.pop("memory")
    if weight > 0:
        old["memory"] = {
            **stored,
            "heads_calibration": heads_cal,
            "memory_calibration": memory_cal,
            "weight": weight,
        }
    return {**old, "format_version": 2, "detector_config": cfg}


@pytest.mark.parametrize(("weight", "method"), [(0.0, "3dsr"), (0.6, "fused"), (1.0, "memory")])
def test_a_format_2_detector_loads_as_its_method_with_equal_maps(
    tmp_path, weight: float, method: str
) -> None:
    cfg = tiny_config(
        "rgbd", out=str(tmp_path / "run"), iterations=2, method="fused", fusion_weight=0.6
    )
    # format 2 memories made one search (modalities came with format 3)
    cfg = cfg.replace(memory=cfg.memory.replace(modalities="joint", modality_fusion="sum"))
    train_detector(cfg, backbone=tiny_backbone("rgbd"), data=synthetic_class("rgbd"))
    ckpt = read_checkpoint(tmp_path / "run" / "detector.pt")
    atomic_save(_as_format_2(ckpt, weight), tmp_path / "old.pt")

    info = detector_info(tmp_path / "old.pt")
    assert (info.format_version, info.method, info.display) == (3, method, None)
    old = Detector.load(tmp_path / "old.pt", device="cpu")
    assert old.method == method and old.config.method == method and old.display is None
    assert old.config.memory == cfg.memory and old.config.model == cfg.model
    assert old.map.weight == weight
    new = Detector.load(tmp_path / "run", device="cpu", method=method)
    x = synthetic_class("rgbd", n=2, seed=7).x
    a, b = old.predict(x), new.predict(x)
    assert torch.equal(a.maps, b.maps) and torch.equal(a.scores, b.scores)


@pytest.mark.parametrize("stop_at", [2, 4])  # before the first periodic checkpoint, after it
def test_an_interrupted_run_keeps_its_history_when_resumed(tmp_path, stop_at) -> None:
    # Ctrl-C saved the checkpoint but not train_history.json: the resumed run's history began
    # at the interruption, so its steps before it were lost.
    data = synthetic_class("depth")
    full = tiny_config("depth", out=str(tmp_path / "full"))
    train_detector(full, backbone=tiny_backbone("depth"), data=data)
    cfg = tiny_config("depth", out=str(tmp_path / "cut"))

    def stop(event) -> None:
        if event.step == stop_at:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_detector(cfg, stop, backbone=tiny_backbone("depth"), data=data)
    history_file = tmp_path / "cut" / "train_history.json"
    assert [e["step"] for e in json.loads(history_file.read_text())] == list(range(1, stop_at + 1))
    train_detector(cfg, backbone=tiny_backbone("depth"), data=data)
    expected = json.loads((tmp_path / "full" / "train_history.json").read_text())
    history = json.loads(history_file.read_text())
    assert [e["step"] for e in history] == [e["step"] for e in expected] == [1, 2, 3, 4, 5, 6]
    for got, want in zip(history, expected, strict=True):
        assert got["total"] == pytest.approx(want["total"], abs=1e-5)


def test_a_detector_written_before_squash_keeps_its_per_pixel_logistic(tmp_path) -> None:
    cfg = tiny_config("depth", out=str(tmp_path / "run"), method="memory")
    train_detector(cfg, data=synthetic_class("depth"))
    ckpt = read_checkpoint(tmp_path / "run" / "detector.pt")
    assert ckpt["detector_config"]["squash"] == "smoothed"
    del ckpt["detector_config"]["squash"]  # as written before the field
    atomic_save(ckpt, tmp_path / "old.pt")
    old = Detector.load(tmp_path / "old.pt", device="cpu")
    new = Detector.load(tmp_path / "run", device="cpu")
    assert (old.config.squash, new.config.squash) == ("pixels", "smoothed")
    x = synthetic_class("depth", n=2, seed=7).x
    a, b = old.predict(x), new.predict(x)
    torch.testing.assert_close(a.raw_maps, b.raw_maps)  # the same sigmoid(z) per pixel
    torch.testing.assert_close(a.maps, box_filter(a.raw_maps, old.filter_size))
    torch.testing.assert_close(
        b.maps,
        torch.sigmoid(box_filter(torch.logit(b.raw_maps), new.filter_size)),
        atol=1e-4,
        rtol=0,
    )
    assert not torch.allclose(a.maps, b.maps)


def test_ctrl_c_inside_a_step_resumes_to_the_uninterrupted_run(tmp_path, monkeypatch) -> None:
    # A Ctrl-C landing after Adam's update but before the scheduler and the step counter
    # moved saved the fourth update's heads under step 3; the resumed run did step 4 again and
    # drifted from the uninterrupted run.
    data = synthetic_class("depth")
    full = tiny_config("depth", out=str(tmp_path / "full"), checkpoint_every=100)
    train_detector(full, backbone=tiny_backbone("depth"), data=data)
    real = torch.optim.Adam.step
    calls: list[int] = []

    def step_then_ctrl_c(self, *args, **kwargs):
        out = real(self, *args, **kwargs)
        calls.append(1)
        if len(calls) == 4:
            signal.raise_signal(signal.SIGINT)
        return out

    cut = full.replace(out_dir=str(tmp_path / "cut"))
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        monkeypatch.setattr(torch.optim.Adam, "step", step_then_ctrl_c)
        with pytest.raises(KeyboardInterrupt):
            train_detector(cut, backbone=tiny_backbone("depth"), data=data)
    finally:
        monkeypatch.undo()
        signal.signal(signal.SIGINT, previous)
    assert read_checkpoint(tmp_path / "cut" / "detector.pt")["step"] == 4
    train_detector(cut, backbone=tiny_backbone("depth"), data=data)
    a = read_checkpoint(tmp_path / "full" / "detector.pt")["heads_state"]
    b = read_checkpoint(tmp_path / "cut" / "detector.pt")["heads_state"]
    for mod in a:
        for k in a[mod]:
            torch.testing.assert_close(b[mod][k], a[mod][k], rtol=0, atol=0, msg=f"{mod}.{k}")
