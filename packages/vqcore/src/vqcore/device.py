"""Device selection."""

from __future__ import annotations

import torch

from .errors import VqcoreError

__all__ = ["resolve_device"]


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
