"""CUDA paths (issue 13): skipped without a GPU; ``tools/gpu_check.sh`` runs them (``-m cuda``)."""

from __future__ import annotations

import pytest
import torch
import vqcore
from threedsr import Detector, ThreeDSR, read_checkpoint, train_detector
from threedsr_testutil import TINY, synthetic_class, tiny_backbone, tiny_config, tiny_memory_config

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.fixture
def no_tf32():
    # Plain fp32 on both sides: cuDNN convs default to TF32 on Ampere and later.
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


@pytest.mark.parametrize("skip", ["relu", "identity"])
def test_cuda_fp32_maps_equal_the_cpu_maps(no_tf32, skip: str) -> None:
    cfg = tiny_config("rgbd", object_decoder="reference", objdec_res_skip=skip)
    torch.manual_seed(0)
    model = ThreeDSR(tiny_backbone("rgbd"), cfg.model).eval()
    x = synthetic_class("rgbd", n=4, seed=2).x
    cpu = Detector(cfg, network=model, device="cpu").predict(x)
    gpu = Detector(cfg, network=model, device="cuda", bf16=False).predict(x)
    assert (gpu.maps - cpu.maps).abs().max() < 1e-4


def test_cuda_bf16_inference_stays_close_to_fp32() -> None:
    cfg = tiny_config("depth", object_decoder="reference")
    torch.manual_seed(0)
    model = ThreeDSR(tiny_backbone("depth"), cfg.model).eval()
    x = synthetic_class("depth", n=4, seed=2).x
    p32 = Detector(cfg, network=model, device="cuda", bf16=False).predict(x)
    p16 = Detector(cfg, network=model, device="cuda", bf16=True).predict(x)
    assert torch.isfinite(p16.maps).all() and (p16.maps - p32.maps).abs().max() < 0.5


@pytest.mark.parametrize("precision", ["fp32", "bf16", "auto"])
def test_cuda_stage2_training_in_each_precision(tmp_path, precision: str) -> None:
    cfg = tiny_config(
        "depth",
        out=str(tmp_path),
        iterations=3,
        device="cuda",
        precision=precision,
        object_decoder="reference",
    )
    res = train_detector(cfg, backbone=tiny_backbone("depth"), data=synthetic_class("depth"))
    assert res.step == 3 and all(torch.isfinite(torch.tensor(v)) for v in res.metrics.values())
    assert read_checkpoint(res.path)["detector_config"]["precision"] == precision


def test_cuda_memory_maps_equal_the_cpu_maps(no_tf32, tmp_path) -> None:
    cfg = tiny_memory_config("depth", out=str(tmp_path))
    train_detector(cfg, data=synthetic_class("depth"))
    x = synthetic_class("depth", n=2, seed=7).x
    cpu = Detector.load(tmp_path, device="cpu").predict(x)
    gpu = Detector.load(tmp_path, device="cuda").predict(x)
    assert gpu.maps.device.type == "cpu" and (gpu.maps - cpu.maps).abs().max() < 1e-4


def test_cuda_fused_detector_trains_and_predicts(tmp_path) -> None:
    cfg = tiny_config("rgbd", out=str(tmp_path), iterations=2, method="fused", device="cuda")
    res = train_detector(cfg, backbone=tiny_backbone("rgbd"), data=synthetic_class("rgbd"))
    det = Detector.load(res.path, device="cuda")
    assert det.method == "fused" and det.memory.bank.device.type == "cuda"
    pred = det.predict(synthetic_class("rgbd", n=2, seed=7).x)
    assert torch.isfinite(pred.maps).all() and ((pred.maps > 0) & (pred.maps < 1)).all()


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_cuda_stage1_training_in_each_precision(tmp_path, precision: str) -> None:
    cfg = vqcore.StageOneConfig.cpu(
        "rgbd",
        backbone=vqcore.BackboneConfig.cpu("rgbd", **TINY),
        out_dir=tmp_path,
        image_size=16,
        batch_size=4,
        iterations=3,
        log_every=1,
        device="cuda",
        precision=precision,
    )
    res = vqcore.train_dada(cfg)
    assert res.steps == 3 and torch.isfinite(torch.tensor(res.metrics["loss"]))
