"""Deprecated: stage 2 uses :mod:`vqcore.distributed` (one ``DistContext`` for both stages).

``threedsr.distributed.init_distributed(device)`` and ``DistInfo`` still work and warn.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
import vqcore

__all__ = ["init_distributed"]  # and the deprecated DistInfo (module __getattr__)


def __getattr__(name: str) -> Any:
    if name == "DistInfo":
        warnings.warn(
            "threedsr.distributed.DistInfo is deprecated; use vqcore.DistContext",
            DeprecationWarning,
            stacklevel=2,
        )
        return vqcore.DistContext
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def init_distributed(device: torch.device) -> tuple[vqcore.DistContext, torch.device]:
    """Deprecated: ``vqcore.init_distributed(device)`` returns the context, device included."""
    warnings.warn(
        "threedsr.distributed.init_distributed is deprecated; use vqcore.init_distributed",
        DeprecationWarning,
        stacklevel=2,
    )
    ctx = vqcore.init_distributed(device)
    return ctx, ctx.device
