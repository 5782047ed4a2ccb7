"""Ctrl-C between training steps only, so that a checkpoint written on Ctrl-C is a state that
an uninterrupted run passes through (stage 1 here, stage 2 in threedsr)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

__all__ = ["deferred_interrupt"]


@contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Hold a SIGINT that arrives inside the block and deliver it when the block ends.

    A training step mutates its state in several places (EMA codebooks and batch-norm
    statistics in the forward, Adam's moments and the weights, the scheduler, the step
    counter). A KeyboardInterrupt raised between two of them made the checkpoint a state no
    run passes through: resuming it repeated part of a step and drifted from the uninterrupted
    run. A second SIGINT inside the block is delivered at once (a step that hangs can still be
    left). Outside the main thread, or where SIGINT is ignored or not handled from Python, the
    block runs as it is.

    Example:
        >>> with deferred_interrupt():
        ...     pass
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is None or previous is signal.SIG_IGN:
        yield
        return
    held: list[tuple[int, FrameType | None]] = []

    def hold(signum: int, frame: FrameType | None) -> Any:
        if held:
            return _deliver(previous, signum, frame)
        held.append((signum, frame))
        return None

    signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if held:
        _deliver(previous, *held[0])


def _deliver(handler: Any, signum: int, frame: FrameType | None) -> Any:
    if callable(handler):
        return handler(signum, frame)
    # SIG_DFL: what the signal would have done (end the process), now that it is restored
    signal.signal(signal.SIGINT, handler)
    signal.raise_signal(signum)
    return None
