"""Package-specific exception."""

from __future__ import annotations

__all__ = ["VqcoreError"]


class VqcoreError(Exception):
    """A one-line, user-facing error (bad checkpoint, bad config, missing device, bad data).

    The message names the file or the option and the problem; the CLI prints it as is.
    """
