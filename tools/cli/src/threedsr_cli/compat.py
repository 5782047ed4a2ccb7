"""The typer / click pairs the CLI runs on, checked before Typer builds the command line.

typer < 0.16 calls ``click.Parameter.make_metavar()`` without the ``ctx`` argument that click 8.2
made required, so on that pair every ``--help`` and every usage error dies in a traceback deep in
typer (``TypeError: Parameter.make_metavar() missing 1 required positional argument: 'ctx'``).
Measured: typer 0.12.5, 0.13.1 and 0.15.1 with click 8.5.1 fail; each of them with click 8.1.7
works, and so does typer 0.16.0 with click 8.5.1. Older environments (a GPU server's system
python) can hold exactly such a pair, so the CLI names the fix in one line instead.
"""

from __future__ import annotations

import re
import sys
from importlib.metadata import PackageNotFoundError, version

from threedsr_cli.errors import EXIT_BAD_INPUT

__all__ = ["broken_pair", "check_typer_click", "release"]

#: the first typer that passes ``ctx`` to ``make_metavar``, and the click that requires it
FIXED_TYPER = (0, 16)
STRICT_CLICK = (8, 2)


def release(text: str) -> tuple[int, ...]:
    """The leading numeric release of a version string (pre-release tags are dropped).

    Example:
        >>> release("8.2.0rc1"), release("0.16.0.dev0"), release("0.12")
        ((8, 2, 0), (0, 16, 0), (0, 12))
    """
    match = re.match(r"\d+(?:\.\d+)*", text.strip())
    if match is None:
        raise ValueError(f"not a version: {text!r}")
    return tuple(int(part) for part in match.group().split("."))


def broken_pair(typer_version: str, click_version: str) -> str | None:
    """The problem with this typer / click pair in one line, or ``None`` when they work together.

    Example:
        >>> print(broken_pair("0.15.1", "8.2.1"))
        typer 0.15.1 cannot drive click 8.2.1 (typer < 0.16 needs click < 8.2): install 'typer>=0.16' or 'click<8.2'
        >>> broken_pair("0.16.0", "8.5.1") is None, broken_pair("0.12.0", "8.1.7") is None
        (True, True)
    """
    # A pre-release of 8.2 already has the new signature, hence the comparison on the release.
    if release(typer_version) < FIXED_TYPER and release(click_version) >= STRICT_CLICK:
        return (
            f"typer {typer_version} cannot drive click {click_version} (typer < 0.16 needs "
            "click < 8.2): install 'typer>=0.16' or 'click<8.2'"
        )
    return None


def _installed(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:  # vendored or copied without metadata: nothing to compare
        return None


def check_typer_click() -> None:
    """Exit 2 with one ``error:`` line when the installed typer cannot drive the installed click."""
    typer_version, click_version = _installed("typer"), _installed("click")
    if typer_version is None or click_version is None:
        return
    try:
        problem = broken_pair(typer_version, click_version)
    except ValueError:  # a version string we cannot read: let typer itself try
        return
    if problem is not None:
        sys.stderr.write(f"error: {problem}\n")
        raise SystemExit(EXIT_BAD_INPUT)
