"""Device selection and training precision."""

from __future__ import annotations

import torch

from .errors import VqcoreError

__all__ = ["PRECISIONS", "check_precision", "resolve_device", "training_autocast", "uses_bf16"]

# "fp32": no autocast (the reference trains in fp32). "bf16": bf16 autocast on any device (a speed
# option on GPUs; on a CPU without native bf16 it is slow). "auto": what this project did before
# the option existed: bf16 on CUDA, fp32 on the CPU.
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available else CPU; ``"cuda"``/``"cuda:N"`` checked to exist.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    if isinstance(device, torch.device):
        name = str(device)
    else:
        name = str(device).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise VqcoreError(f"unknown device {device!r} (use auto, cpu or cuda)") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise VqcoreError("device 'cuda' requested but CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise VqcoreError(
                f"device {name!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist"
            )
    elif dev.type != "cpu":
        raise VqcoreError(f"unsupported device {device!r} (use auto, cpu or cuda)")
    return dev


def check_precision(precision: str, what: str) -> None:
    """Raise a one-line :class:`VqcoreError` when ``precision`` is not one of :data:`PRECISIONS`."""
    if precision not in PRECISIONS:
        raise VqcoreError(f"{what}: precision must be one of {PRECISIONS}, got {precision!r}")


def uses_bf16(precision: str, device: str | torch.device, *, auto: bool = True) -> bool:
    """Whether a training step on ``device`` runs under bf16 autocast.

    Args:
        precision: ``auto`` | ``fp32`` | ``bf16``.
        device: the training device.
        auto: what ``auto`` means on CUDA (stage 1's ``amp`` flag); ``auto`` is fp32 on the CPU.

    Returns:
        True for bf16 autocast, False for plain fp32.

    Example:
        >>> uses_bf16("auto", "cpu"), uses_bf16("bf16", "cpu"), uses_bf16("fp32", "cpu")
        (False, True, False)
    """
    check_precision(precision, "training")
    if precision == "auto":
        return torch.device(device).type == "cuda" and auto
    return precision == "bf16"


def training_autocast(
    precision: str, device: str | torch.device, *, auto: bool = True
) -> torch.autocast:
    """The autocast context of one training forward (disabled for fp32, see :func:`uses_bf16`).

    Example:
        >>> training_autocast("fp32", "cpu")._enabled
        False
    """
    dev = torch.device(device)
    enabled = uses_bf16(precision, dev, auto=auto)
    return torch.autocast(dev.type, dtype=torch.bfloat16, enabled=enabled)
