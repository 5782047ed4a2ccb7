"""Stage-1 training precision (issue 13): ``paper`` trains in fp32 like the reference, ``cpu``
keeps the old ``auto`` (bf16 on CUDA only), ``bf16`` autocasts on any device."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest
import torch
import vqcore.device
from vqcore import (
    StageOneConfig,
    VqcoreError,
    precision_scope,
    tf32_enabled,
    train_dada,
    training_autocast,
    uses_bf16,
)


def test_preset_defaults_and_validation() -> None:
    assert StageOneConfig.paper("rgbd").precision == "fp32"
    assert StageOneConfig.paper("depth", precision="bf16").precision == "bf16"
    assert StageOneConfig.cpu("rgbd").precision == "auto"
    assert StageOneConfig.preset("paper", "rgbd", precision=None).precision == "fp32"
    with pytest.raises(VqcoreError, match="precision must be one of"):
        StageOneConfig.cpu("rgbd", precision="fp16")


@pytest.mark.parametrize(
    ("precision", "device", "amp", "expected"),
    [
        ("auto", "cpu", True, False),
        ("auto", "cuda", True, True),
        ("auto", "cuda", False, False),
        ("fp32", "cuda", True, False),
        ("bf16", "cpu", False, True),
        ("bf16", "cuda", False, True),
        ("tf32", "cpu", True, False),
        ("tf32", "cuda", True, False),
    ],
)
def test_uses_bf16_table(precision: str, device: str, amp: bool, expected: bool) -> None:
    assert uses_bf16(precision, device, auto=amp) is expected


def test_training_autocast_context() -> None:
    with training_autocast("bf16", "cpu"):
        assert torch.is_autocast_enabled("cpu")
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with training_autocast("fp32", "cpu"):
        assert not torch.is_autocast_enabled("cpu")


@pytest.mark.parametrize(("precision", "bf16"), [("fp32", False), ("bf16", True)])
def test_stage_one_step_runs_under_the_chosen_precision(
    tmp_path, tiny_stage_one, precision: str, bf16: bool
) -> None:
    cfg = tiny_stage_one("depth", tmp_path, iterations=2, precision=precision)
    seen: list[tuple[bool, torch.dtype]] = []

    def spy(module: torch.nn.Module, args: tuple, out: object) -> None:
        seen.append((torch.is_autocast_enabled("cpu"), out.dtype))  # type: ignore[attr-defined]

    handle = torch.nn.modules.module.register_module_forward_hook(
        lambda m, a, o: spy(m, a, o) if isinstance(m, torch.nn.Conv2d) else None
    )
    try:
        result = train_dada(cfg)
    finally:
        handle.remove()
    assert result.steps == 2 and seen
    assert all(enabled is bf16 for enabled, _ in seen)
    assert {dtype for _, dtype in seen} == {torch.bfloat16 if bf16 else torch.float32}
    assert torch.isfinite(torch.tensor(result.metrics["loss"]))


@pytest.mark.parametrize(
    ("precision", "inside"),
    [("fp32", (False, False)), ("bf16", (False, False)), ("tf32", (True, True))],
)
def test_precision_scope_sets_tf32_and_restores_it(precision: str, inside: tuple) -> None:
    # The switches are process-wide (set on a CPU too, where nothing reads them); the CUDA test
    # checks what they do to a GPU matmul.
    before = tf32_enabled()
    with precision_scope(precision):
        assert tf32_enabled() == inside
        with precision_scope("auto"):  # auto leaves whatever is set
            assert tf32_enabled() == inside
    assert tf32_enabled() == before
    with pytest.raises(RuntimeError, match="boom"), precision_scope(precision):
        raise RuntimeError("boom")
    assert tf32_enabled() == before
    with pytest.raises(VqcoreError, match="precision must be one of"), precision_scope("fp16"):
        pass


def test_stage_one_trains_under_its_precision_scope(tmp_path, tiny_stage_one) -> None:
    cfg = tiny_stage_one("depth", tmp_path, iterations=2, precision="tf32", log_every=1)
    seen: list[tuple[bool, bool]] = []
    before = tf32_enabled()
    res = train_dada(cfg, lambda event: seen.append(tf32_enabled()))
    assert res.steps == 2 and seen == [(True, True)] * 2
    assert tf32_enabled() == before


def test_precision_scope_warns_nothing_and_uses_one_api() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with precision_scope("fp32"), precision_scope("tf32"):
            assert tf32_enabled() == (True, True)
    newer = hasattr(torch.backends.cuda.matmul, "fp32_precision")
    assert vqcore.device.TF32_API == ("fp32_precision" if newer else "allow_tf32")


# torch 2.5-2.8 have only ``allow_tf32``; the branch runs in its own process, as flags set
# through both APIs in one process make torch raise on the next read.
_LEGACY = """
import warnings
warnings.simplefilter("error")
import torch
import vqcore.device as d
d.TF32_API = "allow_tf32"
m, c = torch.backends.cuda.matmul, torch.backends.cudnn
before = (m.allow_tf32, c.allow_tf32)
with d.precision_scope("fp32"):
    assert (m.allow_tf32, c.allow_tf32) == (False, False) == d.tf32_enabled()
    with d.precision_scope("tf32"):
        assert (m.allow_tf32, c.allow_tf32) == (True, True) == d.tf32_enabled()
    assert (m.allow_tf32, c.allow_tf32) == (False, False)
assert (m.allow_tf32, c.allow_tf32) == before, before
print("ok")
"""


def test_precision_scope_with_the_allow_tf32_switches() -> None:
    res = subprocess.run(
        [sys.executable, "-c", _LEGACY], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]
