"""One writer per folder: an OS lock on the output folder itself, held while a command writes.

``train``, ``train-dada`` and ``demo`` lock their run folder, ``eval`` and ``predict`` their
output folder and ``export`` and ``pack`` the folder of their file, for the whole command. The lock is
``flock`` on the folder's own file descriptor: nothing is written to disk for it, and the
operating system releases it when the process ends, however it ends (a SIGKILLed run never
leaves a stale lock). A second command on a locked folder stops at once with one line naming
the folder and, where ``/proc/locks`` tells, the process holding it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

from threedsr_cli.distributed import distributed_rank
from threedsr_cli.errors import CLIError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no lock (the tool targets Linux and macOS)
    fcntl = None  # type: ignore[assignment]

__all__ = ["folder_lock", "folders_locked", "lock_holder", "run_lock"]

_COMMANDS = ("demo", "train-dada", "train", "eval", "predict", "export", "pack")


def lock_holder(folder: Path) -> int | None:
    """The pid holding an ``flock`` on ``folder`` (Linux ``/proc/locks``), or None."""
    try:
        st = os.stat(folder)
        lines = Path("/proc/locks").read_text(encoding="ascii", errors="replace").splitlines()
    except OSError:
        return None
    want = (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
    for line in lines:
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 00:2f:56789 0 EOF" (a blocked waiter has a "->")
        if len(fields) < 6 or fields[1] != "FLOCK" or "->" in fields:
            continue
        try:
            major, minor, inode = fields[5].split(":")
            if (int(major, 16), int(minor, 16), int(inode)) == want:
                return int(fields[4])
        except ValueError:
            continue
    return None


def _command_of(pid: int) -> str:
    """``threedsr-cli train`` for a process running that command, else ``threedsr-cli command``."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "threedsr-cli command"
    for arg in args[1:]:
        name = arg.decode("utf-8", "replace")
        if name in _COMMANDS:
            return f"threedsr-cli {name}"
    return "threedsr-cli command"


def _describe_holder(folder: Path) -> str:
    pid = lock_holder(folder)
    if pid is None:
        return "another threedsr-cli command"
    if pid == os.getpid():
        return "another threedsr-cli command of this process"
    return f"another {_command_of(pid)} (pid {pid})"


def _created_dirs(folder: Path) -> list[Path]:
    """The folders ``mkdir(parents=True)`` of ``folder`` would create, outermost first."""
    missing = []
    p = folder
    while not p.exists() and not p.is_symlink() and p != p.parent:
        missing.append(p)
        p = p.parent
    return missing[::-1]


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold the write lock of ``folder`` (made if missing) for the ``with`` body.

    A folder this call made is removed again when the body fails and leaves it empty, so a
    refused command leaves the disk as it was.

    Raises:
        CLIError: another process holds the lock (one line naming the folder and its pid), or
            the folder cannot be made.
    """
    folder = Path(folder)
    if fcntl is None:
        yield
        return
    if folder.exists() and not folder.is_dir():
        raise CLIError(f"{folder}: exists and is not a folder")
    made = _created_dirs(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CLIError(f"{folder}: cannot create the folder ({exc.strerror})") from None
    fd = -1
    ok = False
    try:
        while True:
            fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                fd = -1
                raise CLIError(
                    f"{folder}: {_describe_holder(folder)} is writing this folder; wait for it "
                    "to finish or choose another --out"
                ) from None
            # The folder may have been removed (and made again) between open and flock: the lock
            # must be on the folder the path names now.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(folder))
            except OSError:
                same = False
            if same:
                break
            os.close(fd)
            fd = -1
            folder.mkdir(parents=True, exist_ok=True)
        yield
        ok = True
    finally:
        if not ok and fd >= 0:
            # Only a command that held the lock removes what it made (a refused one did not
            # make the folder it found locked).
            for d in reversed(made):
                try:
                    d.rmdir()  # only when empty
                except OSError:
                    break
        if fd >= 0:
            os.close(fd)


def run_lock(folder: Path) -> AbstractContextManager[None]:
    """:func:`folder_lock` of a run folder; under torchrun only rank 0 writes it, so only rank 0
    locks it (the other ranks would find rank 0's lock)."""
    return folder_lock(folder) if distributed_rank() == 0 else nullcontext()


@contextmanager
def folders_locked(folders: Iterable[Path]) -> Iterator[None]:
    """Hold the write lock of each existing folder in ``folders`` and of every folder below it
    (none is made) for the ``with`` body, which moves or deletes them: a command writing one of
    them (``predict`` into ``<run>/predictions`` while ``train --overwrite`` replaces the run)
    makes the caller stop with one line, before anything is moved.

    Raises:
        CLIError: another process holds one of the locks (names that folder and its pid).
    """
    fds: list[int] = []
    try:
        for top in folders:
            if fcntl is None or Path(top).is_symlink() or not Path(top).is_dir():
                continue
            for dirpath, _, _ in os.walk(top):  # symbolic links are not followed
                fd = os.open(dirpath, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    raise CLIError(
                        f"{dirpath}: {_describe_holder(Path(dirpath))} is writing this folder; "
                        "wait for it to finish"
                    ) from None
                fds.append(fd)
        yield
    finally:
        for fd in fds:
            os.close(fd)
