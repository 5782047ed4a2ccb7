"""Progress reports of both training stages: :class:`TrainEvent` and the callbacks that get it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

__all__ = ["TrainCallback", "TrainEvent", "as_callbacks"]


class TrainEvent(NamedTuple):
    """Progress report of either training stage: ``step`` of ``total`` done, latest ``metrics``.

    Stage 1 (``stage="backbone"``): loss, recon, vq_loss, perplexity_top/bot, lr, it_s, samples_s
    (and recon_depth/recon_rgb for rgbd). Stage 2 (``threedsr``, ``stage="detector"``): the
    stage-2 losses, lr, it_per_s.
    """

    step: int
    total: int
    metrics: dict[str, float]
    stage: str = "backbone"


TrainCallback = Callable[[TrainEvent], Any]


def as_callbacks(
    callbacks: TrainCallback | Iterable[TrainCallback] | None,
) -> list[TrainCallback]:
    """``None``, one callable or several -> a list of callables (both stages' ``callbacks=``)."""
    if callbacks is None:
        return []
    if callable(callbacks):
        return [callbacks]
    return list(callbacks)
