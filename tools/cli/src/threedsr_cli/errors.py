"""One place that turns exceptions into exit codes and one-line messages.

Bad input (the libraries' own error classes, ``FileNotFoundError``/``ValueError`` raised while
validating, and :class:`CLIError`) -> one line on stderr naming the file and the problem, exit 2.
Ctrl-C during training -> where the checkpoint is and how to continue, exit 130. Running out of
memory -> one line asking for a smaller batch, exit 2. A third-party module that is not installed
(pillow for PNG files, matplotlib for figures: imported only where needed) -> one line naming
what to install, exit 2. Anything else is a bug in threedsr: one
line asking to report it, exit 1. ``--verbose`` adds the traceback in every case.
"""

from __future__ import annotations

import errno
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "CLIError",
    "Interrupted",
    "finished_run",
    "guard",
    "is_bad_input",
    "is_out_of_memory",
    "missing_module",
    "one_line",
    "option_error",
]

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 1
EXIT_INTERRUPTED = 130

# (module, class) of every library exception that means "the user's input is bad". Looked up in
# sys.modules, never imported here: a module that was never imported cannot have raised.
_LIBRARY_ERRORS = (
    ("pcprep", "PcprepError"),
    ("vqcore", "VqcoreError"),
    ("threedsr", "ThreedsrError"),
    ("admetrics", "AdmetricsError"),
    ("depthsim", "DepthsimError"),
)


# The package to install for a module the CLI or a library imports only where it is needed.
_PIP_NAMES = {
    "PIL": "pillow",
    "skimage": "scikit-image",
    "sklearn": "scikit-learn",
    "yaml": "pyyaml",
}
_OWN_PACKAGES = frozenset(
    {"threedsr", "threedsr_cli", "vqcore", "pcprep", "depthsim", "admetrics", "bench_threedsr"}
)


class CLIError(Exception):
    """A bad-input error found by the CLI itself; the message names the file and the problem.

    Example:
        >>> str(CLIError("data/: dataset root is empty"))
        'data/: dataset root is empty'
    """


class Interrupted(Exception):
    """Ctrl-C during a stage that saved a checkpoint at ``checkpoint`` (None: none yet).
    ``undone``: the run folder was put back as it was before the command (nothing to resume);
    ``finished``: the run had finished (``checkpoint`` is its folder), only its report was cut."""

    def __init__(
        self, checkpoint: Path | None, *, undone: bool = False, finished: bool = False
    ) -> None:
        super().__init__(str(checkpoint))
        self.checkpoint = checkpoint
        self.undone = undone
        self.finished = finished


@contextmanager
def finished_run(folder: Path) -> Iterator[None]:
    """The report of a run that has finished: a Ctrl-C in it says the run is complete."""
    try:
        yield
    except KeyboardInterrupt:
        raise Interrupted(folder, finished=True) from None


def _library_error_types() -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = []
    for module, name in _LIBRARY_ERRORS:
        mod = sys.modules.get(module)
        cls = getattr(mod, name, None) if mod is not None else None
        if isinstance(cls, type) and issubclass(cls, BaseException):
            found.append(cls)
    return tuple(found)


def is_bad_input(exc: BaseException) -> bool:
    """True for the exceptions that mean bad input (exit 2) rather than a bug.

    Example:
        >>> is_bad_input(CLIError("x")), is_bad_input(FileNotFoundError("x")), is_bad_input(KeyError())
        (True, True, False)
    """
    library = _library_error_types()
    if isinstance(exc, library):
        return True
    if _is_shape_error(exc):  # a module was handed a wrong tensor: a bug, not the user's input
        return False
    bad = (CLIError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)
    return isinstance(exc, (*bad, ValueError))


def _is_shape_error(exc: BaseException) -> bool:
    """``vqcore.ShapeError`` (looked up in sys.modules, like the library errors)."""
    mod = sys.modules.get("vqcore.shapes")
    cls = getattr(mod, "ShapeError", None) if mod is not None else None
    return isinstance(cls, type) and isinstance(exc, cls)


def missing_module(exc: BaseException) -> str | None:
    """The one-line install hint for a third-party module that is not installed, else ``None``
    (one of threedsr's own modules missing is a broken checkout: a bug report, not a hint).

    Example:
        >>> print(missing_module(ModuleNotFoundError("No module named 'PIL'", name="PIL")))
        pillow is not installed; this command needs it (pip install pillow)
        >>> missing_module(ModuleNotFoundError("No module named 'threedsr.x'", name="threedsr.x"))
    """
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    top = exc.name.partition(".")[0]
    if top in _OWN_PACKAGES:
        return None
    package = _PIP_NAMES.get(top, top)
    return f"{package} is not installed; this command needs it (pip install {package})"


def is_out_of_memory(exc: BaseException) -> bool:
    """torch's CPU / CUDA allocation failures and ``MemoryError``.

    Example:
        >>> is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: ..."))
        True
    """
    if isinstance(exc, MemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text.lower() or "can't allocate memory" in text
    )


#: OSErrors that say what the machine lacks (space, quota, permission, a writable file system).
_ENVIRONMENT_ERRNOS = frozenset(
    getattr(errno, name)
    for name in ("ENOSPC", "EDQUOT", "EACCES", "EPERM", "EROFS")
    if hasattr(errno, name)
)


def one_line(exc: BaseException) -> str:
    """The exception as one line, naming the file for ``OSError``s that carry one.

    Example:
        >>> one_line(FileNotFoundError(2, "No such file or directory", "data/x.tiff"))
        'data/x.tiff: No such file or directory'
        >>> one_line(ValueError("bad\\n  value"))
        'bad value'
    """
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}"
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def _cut(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _print_error(message: str) -> None:
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()


def option_error(message: str) -> NoReturn:
    """A bad option value found while the command line is parsed (a parameter callback): one
    ``error:`` line and exit 2, like every other bad input, instead of Typer's usage box."""
    _print_error(" ".join(message.split()))
    raise SystemExit(EXIT_BAD_INPUT)


@contextmanager
def guard(verbose: bool = False) -> Iterator[None]:
    """Run a command body, mapping exceptions to exit codes (raises ``SystemExit``)."""
    try:
        yield
    except SystemExit:
        raise
    except Interrupted as exc:
        if verbose:
            traceback.print_exc()
        if exc.finished:
            _print_error(f"interrupted after the run finished; {exc.checkpoint} holds it complete")
        elif exc.checkpoint:
            _print_error(f"interrupted, checkpoint saved to {exc.checkpoint}; rerun with --resume")
        elif exc.undone:
            _print_error(
                "interrupted before anything was saved; the folder is as it was before: rerun "
                "the same command to start again"
            )
        else:
            _print_error("interrupted, nothing new saved; rerun with --resume")
        raise SystemExit(EXIT_INTERRUPTED) from None
    except KeyboardInterrupt:
        if verbose:
            traceback.print_exc()
        _print_error("interrupted")
        raise SystemExit(EXIT_INTERRUPTED) from None
    except Exception as exc:
        if verbose:
            traceback.print_exc()
        if is_bad_input(exc):
            _print_error(one_line(exc))
            raise SystemExit(EXIT_BAD_INPUT) from None
        if (hint := missing_module(exc)) is not None:
            _print_error(hint)
            raise SystemExit(EXIT_BAD_INPUT) from None
        if isinstance(exc, OSError) and exc.errno in _ENVIRONMENT_ERRNOS:
            # A full disk or a folder the user cannot write: the machine's state, not a bug.
            _print_error(one_line(exc))
            raise SystemExit(EXIT_BAD_INPUT) from None
        if is_out_of_memory(exc):
            _print_error(
                "out of memory; use a smaller --batch-size (or --size), or another --device"
            )
            raise SystemExit(EXIT_BAD_INPUT) from None
        hint = "rerun with --verbose for the traceback and " if not verbose else ""
        _print_error(
            f"internal error: {type(exc).__name__}: {_cut(one_line(exc))} (a bug in threedsr; "
            f"{hint}please report it)"
        )
        raise SystemExit(EXIT_INTERNAL) from None
