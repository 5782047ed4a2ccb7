"""The package's exception type."""

from __future__ import annotations

import os


class ThreedsrError(Exception):
    """A one-line, user-facing error: names the file (when there is one) and the problem.

    Example:
        >>> str(ThreedsrError("run/detector.pt: not a threedsr detector checkpoint"))
        'run/detector.pt: not a threedsr detector checkpoint'
    """


def require_detector(detector: object, name: str) -> None:
    """Refuse what is not a loaded detector (a run folder's path, None) with a one-line error;
    the functions that take one read its attributes first, an AttributeError naming no argument.

    Example:
        >>> require_detector("runs/puck", "evaluate")
        Traceback (most recent call last):
        ...
        threedsr.errors.ThreedsrError: evaluate: detector is a str, not a loaded detector; pass Detector.load('runs/puck')
    """
    if hasattr(detector, "predict") and hasattr(detector, "prepare"):
        return
    hint = (
        f"pass Detector.load({str(detector)!r})"
        if isinstance(detector, (str, os.PathLike))
        else "pass a Detector (Detector.load(run)) or an OnnxDetector"
    )
    raise ThreedsrError(
        f"{name}: detector is a {type(detector).__name__}, not a loaded detector; {hint}"
    )
