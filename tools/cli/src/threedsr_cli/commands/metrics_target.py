"""Whose metrics a folder holds: ``metrics.json`` names its detector (path and SHA-256), and eval
replaces it only for the same detector and class (:mod:`threedsr_cli.commands.evaluate`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from threedsr_cli.atomic import file_sha256
from threedsr_cli.errors import CLIError
from threedsr_cli.inputs import printable

__all__ = ["check_metrics_target", "detector_identity"]


def detector_identity(folder: Path, detector_path: Path) -> dict[str, str]:
    """How ``metrics.json`` in ``folder`` names its detector: the path relative to ``folder``
    when the detector lies inside it (a run folder stays valid wherever it is copied), else
    absolute, and the file's SHA-256 (what decides whether two detectors are the same).

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp()); _ = (d / "detector.pt").write_bytes(b"x")
        >>> detector_identity(d, d / "detector.pt")["detector"]
        'detector.pt'
    """
    path = Path(detector_path).resolve()
    try:
        name = str(path.relative_to(Path(folder).resolve()))
    except ValueError:
        name = str(path)
    return {"detector": name, "detector_sha256": file_sha256(path)}


def _same_detector(folder: Path, old: dict[str, Any], new: dict[str, str]) -> bool:
    if old.get("detector_sha256") is not None:
        return old["detector_sha256"] == new["detector_sha256"]
    # written before the content was recorded: the path, relative ones read from the folder
    previous = Path(str(old["detector"]))
    previous = previous if previous.is_absolute() else Path(folder).resolve() / previous
    current = Path(new["detector"])
    current = current if current.is_absolute() else Path(folder).resolve() / current
    return previous == current


def check_metrics_target(folder: Path, detector: dict[str, str], category: str, own: bool) -> None:
    """``folder/metrics.json`` may be replaced only by the same detector (the same content,
    wherever the run folder lies now) and class (or, for a file written before the detector was
    recorded, in the run's own folder).

    Raises:
        CLIError: it holds another class's or another detector's metrics, or cannot be read.
    """
    path = folder / "metrics.json"
    if not path.is_file():
        return
    hint = "pass --overwrite to replace them or choose another --out"
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        raise CLIError(f"{path}: holds a metrics file this tool cannot read; {hint}") from None
    category = printable(category)  # as metrics.json names it
    if not isinstance(old, dict) or set(old) != {category}:
        names = ", ".join(sorted(map(str, old))) if isinstance(old, dict) else "?"
        raise CLIError(f"{path}: holds the metrics of {names}, not of {category!r}; {hint}")
    entry = old[category] if isinstance(old[category], dict) else {}
    previous = entry.get("detector")
    if previous is None and not own:
        raise CLIError(f"{path}: holds metrics of an unknown detector; {hint}")
    if previous is not None and not _same_detector(folder, entry, detector):
        raise CLIError(f"{path}: holds the metrics of another detector ({previous}); {hint}")
