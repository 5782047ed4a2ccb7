"""The package's exception type."""

from __future__ import annotations


class ThreedsrError(Exception):
    """A one-line, user-facing error: names the file (when there is one) and the problem.

    Example:
        >>> str(ThreedsrError("run/detector.pt: not a threedsr detector checkpoint"))
        'run/detector.pt: not a threedsr detector checkpoint'
    """
