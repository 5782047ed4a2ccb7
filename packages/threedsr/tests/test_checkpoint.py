from __future__ import annotations

import json

import pytest
import torch
from threedsr import (
    Detector,
    DetectorConfig,
    ThreedsrError,
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
    assert ck["step"] == 6 and ck["finished"] is True
    assert ck["preprocess"] == {
        "size": 64,
        "plane": "robust",
        "fg_threshold": 0.005,
        "fill_iterations": 2,
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
    assert info.format_version == FORMAT_VERSION == 2 and info.config["category"] == "synthetic"
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
    for err in (ThreedsrError("x"),):
        assert "\n" not in str(err)


def test_resume_equals_uninterrupted(tmp_path) -> None:
    data = synthetic_class("depth")
    full = tiny_config("depth", out=str(tmp_path / "full"), iterations=6)
    train_detector(full, backbone=tiny_backbone("depth"), data=data)
    half = tiny_config(
        "depth", out=str(tmp_path / "half"), iterations=3, lr_milestones=full.lr_milestones
    )
    train_detector(half, backbone=tiny_backbone("depth"), data=data)
    resumed = train_detector(
        half.replace(iterations=6, lr_milestones=full.lr_milestones),
        backbone=tiny_backbone("depth"),
        data=data,
    )
    assert resumed.step == 6
    a = read_checkpoint(tmp_path / "full" / "detector.pt")["heads_state"]
    b = read_checkpoint(tmp_path / "half" / "detector.pt")["heads_state"]
    for mod in a:
        for k in a[mod]:
            torch.testing.assert_close(a[mod][k], b[mod][k], rtol=0, atol=1e-6)


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
