"""Stage-2 training precision (issue 13): ``paper`` trains in fp32 like the reference, ``cpu``
keeps ``auto`` (bf16 on CUDA only), ``bf16`` autocasts on any device; stored in detector.pt."""

from __future__ import annotations

import pytest
import torch
from threedsr import DetectorConfig, ThreedsrError, read_checkpoint, train_detector
from threedsr.checkpoint import atomic_save
from threedsr_testutil import synthetic_class, tiny_backbone, tiny_config


def test_presets_and_validation() -> None:
    assert DetectorConfig.paper("rgbd").precision == "fp32"
    assert DetectorConfig.preset("paper", "depth", precision="bf16").precision == "bf16"
    assert DetectorConfig.preset("paper", "depth", precision=None).precision == "fp32"
    assert DetectorConfig.cpu("rgb").precision == "auto"
    with pytest.raises(ThreedsrError, match="precision must be one of"):
        DetectorConfig.cpu("rgbd", precision="fp16")


@pytest.mark.parametrize(("precision", "bf16"), [("fp32", False), ("bf16", True)])
def test_training_forward_runs_under_the_chosen_precision(
    tmp_path, precision: str, bf16: bool
) -> None:
    cfg = tiny_config(
        "depth", out=str(tmp_path), iterations=2, memory_weight=0.0, precision=precision
    )
    seen: list[tuple[bool, torch.dtype]] = []

    def spy(module: torch.nn.Module, args: tuple, out: torch.Tensor) -> None:
        # The anomaly UNet's convs run only inside the training forward (no memory at weight 0).
        if type(module).__name__ == "AnomalyUNet":
            seen.append((torch.is_autocast_enabled("cpu"), out.dtype))

    handle = torch.nn.modules.module.register_module_forward_hook(spy)
    try:
        result = train_detector(cfg, backbone=tiny_backbone("depth"), data=synthetic_class("depth"))
    finally:
        handle.remove()
    assert result.step == 2 and len(seen) == 2
    assert seen == [(bf16, torch.bfloat16 if bf16 else torch.float32)] * 2
    assert read_checkpoint(result.path)["detector_config"]["precision"] == precision


def test_checkpoint_without_precision_reads_as_auto(tmp_path) -> None:
    cfg = tiny_config("depth", out=str(tmp_path), iterations=1, memory_weight=0.0)
    path = train_detector(cfg, backbone=tiny_backbone("depth"), data=synthetic_class("depth")).path
    ckpt = torch.load(path, weights_only=True)
    del ckpt["detector_config"]["precision"]
    atomic_save(ckpt, path)
    # before the option, CUDA runs trained in bf16 and CPU runs in fp32: "auto"
    assert read_checkpoint(path)["detector_config"]["precision"] == "auto"
    # and the run resumes under an explicit precision (the arithmetic is resume-free)
    more = cfg.replace(iterations=2, precision="fp32")
    assert (
        train_detector(more, backbone=tiny_backbone("depth"), data=synthetic_class("depth")).step
        == 2
    )
