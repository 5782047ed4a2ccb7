"""The one exception type pcprep raises for bad input."""

from __future__ import annotations

from os import PathLike

__all__ = ["PcprepError"]


class PcprepError(Exception):
    """Bad input: a one-line message naming the file and the problem.

    Examples:
        >>> raise PcprepError.at("scan/xyz/000.tiff", "all points are invalid")
        Traceback (most recent call last):
        ...
        pcprep.errors.PcprepError: scan/xyz/000.tiff: all points are invalid
    """

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))

    @classmethod
    def at(cls, path: str | PathLike[str] | None, problem: str) -> PcprepError:
        """Build the error for ``path`` (``None`` when the data did not come from a file)."""
        where = "<in-memory sample>" if path is None else str(path)
        return cls(f"{where}: {problem}")
