"""CUDA paths (issues 13, 25): skipped without a GPU; ``tools/gpu_check.sh`` runs them
(``-m cuda``)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
import vqcore
from threedsr import Detector, DetectorConfig, ThreeDSR, read_checkpoint, train_detector
from threedsr_testutil import TINY, synthetic_class, tiny_backbone, tiny_config, tiny_memory_config

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.fixture
def no_tf32():
    # Plain fp32 on both sides: cuDNN convs default to TF32 on Ampere and later.
    with vqcore.precision_scope("fp32"):
        yield


@pytest.mark.parametrize("op", ["matmul", "conv"])
def test_cuda_fp32_scope_turns_tf32_off_and_restores_it(op: str) -> None:
    before = vqcore.tf32_enabled()
    with vqcore.precision_scope("fp32"):
        assert vqcore.tf32_enabled() == (False, False)
    assert vqcore.tf32_enabled() == before
    g = torch.Generator().manual_seed(0)
    if op == "matmul":
        a, b, fn = (
            torch.randn(512, 1024, generator=g),
            torch.randn(1024, 512, generator=g),
            torch.matmul,
        )
    else:
        a, b, fn = (
            torch.randn(2, 128, 32, 32, generator=g),
            torch.randn(128, 128, 3, 3, generator=g),
            F.conv2d,
        )
    a, b = a.to("cuda"), b.to("cuda")
    exact = fn(a.double(), b.double())
    err = {}
    for precision in ("fp32", "tf32"):
        with vqcore.precision_scope(precision):
            err[precision] = float((fn(a, b).double() - exact).norm() / exact.norm())
    assert err["fp32"] < 1e-5, err  # IEEE fp32; TF32's 10-bit mantissa gives ~1e-4
    if torch.cuda.get_device_capability() >= (8, 0):  # TF32 exists from Ampere on
        assert err["tf32"] > 10 * err["fp32"], err


def _reference_loop(model: ThreeDSR, x: torch.Tensor, k: int) -> torch.Tensor:
    # The authors' test loop: one image at a time, eager fp32 NCHW, no_grad, box smoothing.
    maps = []
    with torch.no_grad(), vqcore.precision_scope("fp32"):
        for i in range(x.shape[0]):
            raw = model(x[i : i + 1]).anomaly_map
            maps.append(F.avg_pool2d(raw[:, None], k, 1, k // 2, count_include_pad=True)[:, 0])
    return torch.cat(maps).cpu()


@pytest.mark.parametrize("setup", ["rgbd", "depth"])
def test_cuda_paper_preset_fp32_maps_match_the_reference_loop(setup: str) -> None:
    # Paper widths, random weights: the fp32 Detector (batched, channels_last, TF32 off, the
    # reference distance form) against the reference loop on the same weights.
    cfg = DetectorConfig.preset("paper", setup, method="3dsr", image_size=256)
    torch.manual_seed(0)
    backbone = vqcore.build_backbone(vqcore.BackboneConfig.paper(setup)).eval()
    model = ThreeDSR(backbone, cfg.model).eval()
    assert model.backbone.vq_top.distance == "reference"
    x = torch.rand(4, backbone.in_channels, 256, 256, generator=torch.Generator().manual_seed(1))
    ref = _reference_loop(copy.deepcopy(model).to("cuda"), x.to("cuda"), cfg.filter_size)
    det = Detector(cfg, network=model, device="cuda", precision="fp32", batch_size=4)
    assert (det.predict(x).maps - ref).abs().max() <= 1e-4


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


@pytest.mark.parametrize("precision", ["fp32", "tf32", "bf16", "auto"])
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


@pytest.mark.parametrize("setup", ["depth", "rgbd"])  # rgbd: three parts searched together
def test_cuda_memory_maps_equal_the_cpu_maps(no_tf32, tmp_path, setup: str) -> None:
    cfg = tiny_memory_config(setup, out=str(tmp_path))
    train_detector(cfg, data=synthetic_class(setup))
    x = synthetic_class(setup, n=2, seed=7).x
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


@pytest.mark.parametrize("precision", ["fp32", "tf32", "bf16"])
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


@pytest.mark.parametrize("setup", ["rgbd", "depth", "rgb"])
def test_cuda_device_sampler_step_never_waits_for_the_device(tmp_path, setup: str) -> None:
    # Issue 25: with the device sampler a stage-2 step queues its work and returns; any
    # device-to-host copy or synchronize in it raises under the sync debug mode.
    from threedsr.dsr.trainer import _DetectorTrainer

    cfg = tiny_config(
        setup,
        out=str(tmp_path),
        device="cuda",
        sampler="device",
        precision="bf16",
        image_anomaly_prob=0.5,
        modality_split_prob=0.5 if setup == "rgbd" else 0.0,
    )
    ctx = vqcore.DistContext(0, 1, 0, torch.device("cuda"), False)
    trainer = _DetectorTrainer(
        cfg, ctx, tmp_path, backbone=tiny_backbone(setup), data=synthetic_class(setup)
    )
    assert trainer.x_all.is_cuda and trainer.optimizer.param_groups[0]["fused"]
    trainer.model.train()
    trainer.train_step()  # first step: lazy initialisation (cuDNN, optimizer state)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            losses = trainer.train_step()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert torch.isfinite(losses.total).item()
    trainer.check_finite()


def test_cuda_device_sampler_batches_are_a_function_of_the_seed() -> None:
    import numpy as np
    from threedsr.dsr.device_batch import generate_anomalies_device, make_batch_device
    from threedsr.dsr.device_generator import DeviceAnomalyGenerator

    cfg = tiny_config("rgbd", image_anomaly_prob=0.5)
    data = synthetic_class("rgbd")
    x_all, fg_all = data.x.cuda(), data.foreground.cuda()
    bb = tiny_backbone("rgbd").cuda()
    out = []
    for seed in (3, 3, 4):
        g = torch.Generator(device="cuda").manual_seed(seed)
        x, mask = make_batch_device(x_all, fg_all, cfg, 4, g)
        gen, x_in = generate_anomalies_device(
            DeviceAnomalyGenerator(), bb, x, mask, cfg, g, np.random.default_rng(seed)
        )
        out.append(torch.cat([x_in.flatten(), gen.gt.flatten(), gen.q_bot_anom.flatten()]))
    assert torch.equal(out[0], out[1]) and not torch.equal(out[0], out[2])
