"""FLOPs of a piece of work and the fraction of a GPU's peak it reaches (``gpu_check``).

The count is PyTorch's own (``torch.utils.flop_counter.FlopCounterMode``): matrix products and
convolutions, forward and backward, which is where the time of these networks goes; element-wise
work is not counted, so the fraction is a lower bound. Peaks are the vendors' dense (no sparsity)
figures for the arithmetic a precision runs on: bf16 and TF32 on tensor cores, strict fp32 on the
CUDA cores.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch.utils.flop_counter import FlopCounterMode

__all__ = ["PEAK_TFLOPS", "count_flops", "fraction_of_peak", "peak_tflops"]

#: Dense peak TFLOP/s by device-name fragment (first match wins): bf16, tf32, fp32.
PEAK_TFLOPS: tuple[tuple[str, dict[str, float]], ...] = (
    ("H200", {"bf16": 989.4, "tf32": 494.7, "fp32": 66.9}),
    ("H100 PCIe", {"bf16": 756.5, "tf32": 378.0, "fp32": 51.2}),
    ("H100", {"bf16": 989.4, "tf32": 494.7, "fp32": 66.9}),  # SXM
    ("A100", {"bf16": 312.0, "tf32": 156.0, "fp32": 19.5}),
    ("L40S", {"bf16": 362.1, "tf32": 183.0, "fp32": 91.6}),
)


def count_flops(work: Callable[[], Any]) -> int:
    """Floating-point operations PyTorch counts while ``work()`` runs (2 per multiply-add).

    Example:
        >>> import torch
        >>> a, b = torch.ones(4, 8), torch.ones(8, 3)
        >>> count_flops(lambda: a @ b)
        192
    """
    counter = FlopCounterMode(display=False)
    with counter:
        work()
    return int(counter.get_total_flops())


def peak_tflops(device_name: str, precision: str) -> float | None:
    """The dense peak of ``precision`` (``bf16``, ``tf32``, ``fp32``) on a device, or None when
    the device is not in :data:`PEAK_TFLOPS` (a CPU, an unknown GPU).

    Example:
        >>> peak_tflops("NVIDIA H200", "bf16"), peak_tflops("NVIDIA H100 PCIe", "fp32")
        (989.4, 51.2)
        >>> peak_tflops("cpu", "bf16") is None
        True
    """
    for fragment, peaks in PEAK_TFLOPS:
        if fragment in device_name:
            return peaks.get(precision)
    return None


def fraction_of_peak(
    flops_per_item: float, items_per_s: float, device_name: str, precision: str
) -> float | None:
    """Achieved FLOP/s over the device's peak for ``precision`` (None when the peak is unknown).

    Example:
        >>> round(fraction_of_peak(1e12, 98.94, "NVIDIA H200", "bf16"), 3)
        0.1
    """
    peak = peak_tflops(device_name, precision)
    if peak is None:
        return None
    return flops_per_item * items_per_s / (peak * 1e12)
