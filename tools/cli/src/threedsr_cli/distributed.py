"""This process's rank under torchrun: every rank runs the whole command, and only rank 0 owns
the run folder, its write lock and the progress display.

Read from the environment, so that no command imports torch to learn it.
"""

from __future__ import annotations

import os

__all__ = ["distributed_rank"]


def distributed_rank() -> int:
    """This process's global rank under torchrun (0 when not distributed)."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0
