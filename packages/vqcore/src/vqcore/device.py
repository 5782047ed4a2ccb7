"""Device selection and arithmetic precision (training and inference)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from .errors import VqcoreError

__all__ = [
    "PRECISIONS",
    "check_precision",
    "precision_scope",
    "resolve_device",
    "rng_scope",
    "tf32_enabled",
    "training_autocast",
    "uses_bf16",
]

# "fp32": no autocast and, on CUDA, no TF32 (IEEE fp32 convolutions and matmuls: the reference's
# arithmetic). "tf32": no autocast, TF32 convolutions and matmuls on CUDA (a speed option; on a
# CPU it is fp32). "bf16": bf16 autocast on any device, TF32 off for what stays fp32 (a speed
# option on GPUs; on a CPU without native bf16 it is slow). "auto": what this project did before
# the option existed: bf16 on CUDA, fp32 on the CPU, TF32 flags left as they are (PyTorch's
# default: TF32 cuDNN convolutions, IEEE matmuls).
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "tf32", "bf16")


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


def rng_scope(device: str | torch.device) -> contextlib.AbstractContextManager[None]:
    """Restore torch's global RNG state (the CPU's and ``device``'s) on exit.

    Both trainers seed the global RNG (``torch.manual_seed``) for identical initial weights; a
    caller's notebook would otherwise find its own random stream replaced after training.

    Example:
        >>> before = torch.random.get_rng_state()
        >>> with rng_scope("cpu"):
        ...     _ = torch.manual_seed(0)
        >>> torch.equal(before, torch.random.get_rng_state())
        True
    """
    dev = torch.device(device)
    cuda = (
        []
        if dev.type != "cuda"
        else [torch.cuda.current_device() if dev.index is None else dev.index]
    )
    return torch.random.fork_rng(devices=cuda)


def check_precision(precision: str, what: str) -> None:
    """Raise a one-line :class:`VqcoreError` when ``precision`` is not one of :data:`PRECISIONS`."""
    if precision not in PRECISIONS:
        raise VqcoreError(f"{what}: precision must be one of {PRECISIONS}, got {precision!r}")


def uses_bf16(precision: str, device: str | torch.device, *, auto: bool = True) -> bool:
    """Whether a training step on ``device`` runs under bf16 autocast.

    Args:
        precision: ``auto`` | ``fp32`` | ``tf32`` | ``bf16``.
        device: the training device.
        auto: what ``auto`` means on CUDA (stage 1's ``amp`` flag); ``auto`` is fp32 on the CPU.

    Returns:
        True for bf16 autocast, False for plain fp32.

    Example:
        >>> uses_bf16("auto", "cpu"), uses_bf16("bf16", "cpu"), uses_bf16("tf32", "cuda")
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


def _new_tf32_api() -> bool:
    conv = getattr(torch.backends.cudnn, "conv", None)
    return hasattr(torch.backends.cuda.matmul, "fp32_precision") and hasattr(conv, "fp32_precision")


#: Which TF32 switches :func:`precision_scope` uses: ``"fp32_precision"`` (torch >= 2.9) or
#: ``"allow_tf32"`` (torch 2.5-2.8). Mixing the two makes torch raise on the next read of a
#: flag, so only one is ever used: the newer where it exists.
TF32_API: str = "fp32_precision" if _new_tf32_api() else "allow_tf32"


def _tf32_switches() -> list[tuple[object, str, object, object]]:
    """``(holder, attribute, strict value, tf32 value)`` of the switches of CUDA matmuls and
    cuDNN convolutions."""
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    if TF32_API == "fp32_precision":
        conv = cudnn.conv  # type: ignore[attr-defined]
        return [
            (matmul, "fp32_precision", "ieee", "tf32"),
            (conv, "fp32_precision", "ieee", "tf32"),
        ]
    return [(matmul, "allow_tf32", False, True), (cudnn, "allow_tf32", False, True)]


def tf32_enabled() -> tuple[bool, bool]:
    """Whether CUDA matmuls and cuDNN convolutions may use TF32 now, ``(matmul, conv)``.

    Example:
        >>> with precision_scope("fp32"):
        ...     tf32_enabled()
        (False, False)
    """
    matmul, conv = (getattr(h, a) == on for h, a, _, on in _tf32_switches())
    return matmul, conv


@contextlib.contextmanager
def precision_scope(precision: str) -> Iterator[None]:
    """TF32 of CUDA matmuls and cuDNN convolutions as ``precision`` asks, restored on exit.

    ``fp32`` and ``bf16``: off (what runs in fp32 runs in IEEE fp32); ``tf32``: on; ``auto``: left
    as it is. The switches are process-wide, so they are set on every device (a CPU ignores them:
    there ``tf32`` computes exactly what ``fp32`` does). Autocast is separate
    (:func:`training_autocast`).

    Example:
        >>> with precision_scope("tf32"):
        ...     tf32_enabled()
        (True, True)
    """
    check_precision(precision, "precision_scope")
    if precision == "auto":
        yield
        return
    switches = _tf32_switches()
    before = [getattr(h, a) for h, a, _, _ in switches]
    try:
        for h, a, strict, on in switches:
            setattr(h, a, on if precision == "tf32" else strict)
        yield
    finally:
        for (h, a, _, _), value in zip(switches, before, strict=True):
            setattr(h, a, value)
