"""Issue 25: the ``paper`` preset searches codes with the authors' distance expression at every
search of the network, files written before the option keep the fast form, and ``precision``
(fp32 / tf32 / bf16) reaches stage-2 training and the Detector."""

from __future__ import annotations

import pytest
import torch
import vqcore
import vqcore.search
from threedsr import (
    Detector,
    DetectorConfig,
    ThreeDSR,
    ThreedsrError,
    read_checkpoint,
    train_detector,
)
from threedsr.checkpoint import atomic_save
from threedsr_testutil import synthetic_class, tiny_backbone, tiny_config
from vqcore import tf32_enabled


def test_paper_preset_uses_the_reference_form_and_the_others_the_fast_one() -> None:
    assert DetectorConfig.paper("rgbd").model.vq_distance == "reference"
    assert DetectorConfig.preset("paper", "depth", vq_distance="fast").model.vq_distance == "fast"
    assert DetectorConfig.cpu("rgbd").model.vq_distance == "fast"
    assert DetectorConfig.preset("memory", "rgbd").model.vq_distance == "fast"
    with pytest.raises(ThreedsrError, match="vq_distance must be one of"):
        DetectorConfig.cpu("rgbd", vq_distance="exact")


@pytest.fixture
def reference_calls(monkeypatch):
    """Shapes of the rows every reference-form search is asked for (the spy wraps the one
    function both quantizers' searches reach)."""
    calls: list[tuple[int, int]] = []
    real = vqcore.search.reference_distances

    def spy(flat: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
        calls.append((flat.shape[0], codebook.shape[0]))
        return real(flat, codebook)

    monkeypatch.setattr(vqcore.search, "reference_distances", spy)
    return calls


@pytest.mark.parametrize("form", ["fast", "reference"])
def test_every_search_of_the_forward_uses_the_configured_form(reference_calls, form) -> None:
    cfg = tiny_config("rgbd", vq_distance=form)
    torch.manual_seed(0)
    model = ThreeDSR(tiny_backbone("rgbd"), cfg.model).eval()
    assert model.backbone.vq_top.distance == model.backbone.vq_bot.distance == form
    with torch.no_grad():
        model(torch.rand(2, 4, 64, 64))
    # encoding (top 8x8, bottom 16x16 per image), then the SRM outputs' re-quantisation
    expected = [(128, 32), (512, 32), (128, 32), (512, 32)] if form == "reference" else []
    assert reference_calls == expected


def test_stage2_training_searches_with_the_reference_form(tmp_path, reference_calls) -> None:
    cfg = tiny_config("depth", out=str(tmp_path), iterations=1, vq_distance="reference")
    train_detector(cfg, backbone=tiny_backbone("depth"), data=synthetic_class("depth"))
    # the anomaly generator's encoding and re-quantisation, the step, and the calibration
    assert len(reference_calls) > 4


def test_a_detector_written_before_the_option_loads_with_the_fast_form(tmp_path) -> None:
    run = tmp_path / "run"
    cfg = tiny_config("depth", out=str(run), iterations=1, vq_distance="reference")
    data = synthetic_class("depth")
    train_detector(cfg, backbone=tiny_backbone("depth"), data=data)
    assert Detector.load(run, device="cpu").network.backbone.vq_top.distance == "reference"
    ckpt = read_checkpoint(run / "detector.pt")
    del ckpt["detector_config"]["model"]["vq_distance"]
    del ckpt["backbone_config"]["vq_distance"]
    atomic_save(ckpt, run / "detector.pt")
    old = Detector.load(run, device="cpu")
    assert old.config.model.vq_distance == "fast"
    assert old.network.backbone.vq_top.distance == old.network.backbone.vq_bot.distance == "fast"
    # the form is arithmetic, like the precision: the run continues in the configured one
    res = train_detector(cfg.replace(iterations=2), backbone=tiny_backbone("depth"), data=data)
    assert res.step == 2
    assert read_checkpoint(res.path)["detector_config"]["model"]["vq_distance"] == "reference"


def _seen_during_predict(det: Detector, x: torch.Tensor) -> list[tuple]:
    seen: list[tuple] = []
    hook = det.network.anomaly_unet.register_forward_hook(
        lambda m, a, o: seen.append((tf32_enabled(), torch.is_autocast_enabled("cpu")))
    )
    try:
        det.predict(x)
    finally:
        hook.remove()
    return seen


@pytest.mark.parametrize(
    ("precision", "inside"),
    [
        ("fp32", ((False, False), False)),
        ("tf32", ((True, True), False)),
        ("bf16", ((False, False), True)),
    ],
)
def test_detector_predicts_under_its_precision(precision: str, inside: tuple) -> None:
    cfg = tiny_config("depth", object_decoder="reference")
    torch.manual_seed(0)
    model = ThreeDSR(tiny_backbone("depth"), cfg.model).eval()
    x = synthetic_class("depth", n=2, seed=3).x
    before = tf32_enabled()
    det = Detector(cfg, network=model, device="cpu", precision=precision, batch_size=1)
    assert det.precision == precision and det.bf16 == (precision == "bf16")
    assert _seen_during_predict(det, x) == [inside] * 2
    assert tf32_enabled() == before


def test_tf32_on_a_cpu_is_fp32_and_bad_precisions_are_refused() -> None:
    cfg = tiny_config("depth", object_decoder="reference")
    torch.manual_seed(0)
    model = ThreeDSR(tiny_backbone("depth"), cfg.model).eval()
    x = synthetic_class("depth", n=2, seed=3).x
    p32 = Detector(cfg, network=model, device="cpu", precision="fp32").predict(x)
    tf32 = Detector(cfg, network=model, device="cpu", precision="tf32").predict(x)
    assert torch.equal(p32.maps, tf32.maps) and torch.equal(p32.raw_maps, tf32.raw_maps)
    with pytest.raises(ThreedsrError, match="precision or bf16, not both"):
        Detector(cfg, network=model, device="cpu", precision="fp32", bf16=False)
    with pytest.raises(ThreedsrError, match="precision must be one of"):
        Detector(cfg, network=model, device="cpu", precision="fp16")


def test_stage2_trains_and_calibrates_under_its_precision_scope(tmp_path) -> None:
    cfg = tiny_config("depth", out=str(tmp_path), iterations=2, precision="tf32")
    seen: list[tuple[bool, bool]] = []

    def spy(module: torch.nn.Module, args: tuple, out: torch.Tensor) -> None:
        if type(module).__name__ == "AnomalyUNet":
            seen.append(tf32_enabled())

    before = tf32_enabled()
    handle = torch.nn.modules.module.register_module_forward_hook(spy)
    try:
        res = train_detector(cfg, backbone=tiny_backbone("depth"), data=synthetic_class("depth"))
    finally:
        handle.remove()
    # two training steps, then the calibration's two forwards (six scans, four at a time)
    assert res.step == 2 and seen == [(True, True)] * 4
    assert tf32_enabled() == before
    assert read_checkpoint(res.path)["detector_config"]["precision"] == "tf32"
