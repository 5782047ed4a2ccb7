"""Stage-2 training precision (issue 13): ``paper`` trains in fp32 like the reference, ``cpu``
keeps ``auto`` (bf16 on CUDA only), ``bf16`` autocasts on any device; stored in detector.pt."""

from __future__ import annotations

import pytest
import torch
from threedsr import DetectorConfig, ThreedsrError, read_checkpoint, train_detector
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
    cfg = tiny_config("depth", out=str(tmp_path), iterations=2, precision=precision)
    seen: list[tuple[bool, torch.dtype]] = []

    def spy(module: torch.nn.Module, args: tuple, out: torch.Tensor) -> None:
        if type(module).__name__ == "AnomalyUNet":
            seen.append((torch.is_autocast_enabled("cpu"), out.dtype))

    handle = torch.nn.modules.module.register_module_forward_hook(spy)
    try:
        result = train_detector(cfg, backbone=tiny_backbone("depth"), data=synthetic_class("depth"))
    finally:
        handle.remove()
    # Two training steps in the chosen precision, then the calibration's two fp32 forwards (six
    # scans, four at a time) outside any autocast.
    assert result.step == 2
    assert (
        seen
        == [(bf16, torch.bfloat16 if bf16 else torch.float32)] * 2 + [(False, torch.float32)] * 2
    )
    assert read_checkpoint(result.path)["detector_config"]["precision"] == precision


def test_a_run_resumes_under_another_precision(tmp_path) -> None:
    cfg = tiny_config("depth", out=str(tmp_path), iterations=1, precision="bf16")
    path = train_detector(cfg, backbone=tiny_backbone("depth"), data=synthetic_class("depth")).path
    assert read_checkpoint(path)["detector_config"]["precision"] == "bf16"
    # the arithmetic is resume-free: the run continues in fp32 and says so
    more = cfg.replace(iterations=2, precision="fp32")
    res = train_detector(more, backbone=tiny_backbone("depth"), data=synthetic_class("depth"))
    assert res.step == 2 and read_checkpoint(res.path)["detector_config"]["precision"] == "fp32"
