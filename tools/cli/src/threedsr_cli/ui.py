"""Terminal output: Rich consoles, progress bars for stages and training, quiet/verbose modes.

Progress bars go to stderr, informational lines and result tables to stdout, so on bad input
stderr holds exactly the one error line; the
libraries report through plain callbacks, which :class:`UI` turns into Rich progress updates.

When stderr is not an interactive terminal (redirected to a file, CI, ``nohup``) a Rich bar would
show nothing until its stage ends, so each bar prints plain lines instead: its first update, then
at most one every :data:`LOG_INTERVAL_S` seconds, and its end (see
:func:`~threedsr_cli.progress_text.format_log_line`). No line follows an exception, so a failure
adds only its error line to what was already logged.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from threedsr_cli.distributed import distributed_rank
from threedsr_cli.progress_text import LogBar, format_train_stats

if TYPE_CHECKING:
    from vqcore import TrainEvent

__all__ = ["LOG_INTERVAL_S", "UI"]

# columns a progress row needs with the training stats (loss, perplexities, it/s) shown
_WIDE_TERMINAL = 120

#: Seconds of wall time between two plain progress lines of one bar when stderr is not an
#: interactive terminal (the default of :attr:`UI.log_interval`, read when a UI is made).
LOG_INTERVAL_S = 10.0


def _console(stderr: bool = False) -> Console:
    """A console that hard-wraps lines at its width on a terminal only: a file or a pipe has no
    width, and Rich's default of 80 columns there split paths and figures across lines that logs
    and scripts grep for (tables still fit 80 columns)."""
    console = Console(stderr=stderr, highlight=False)
    console.soft_wrap = not console.is_terminal
    return console


@dataclass
class UI:
    """Consoles and progress for one command.

    Args:
        quiet: no progress bars and no informational lines (errors and results still print).
        verbose: extra detail, and tracebacks on errors (see :mod:`threedsr_cli.errors`).
        out: results and informational lines (stdout).
        err: progress (stderr): Rich bars on an interactive terminal, else plain lines.
        log_interval: seconds between two plain progress lines of one bar (default
            :data:`LOG_INTERVAL_S`).
        clock: the monotonic clock of the plain lines' timing (injectable for tests).
    """

    quiet: bool = False
    verbose: bool = False
    out: Console = field(default_factory=lambda: _console())
    err: Console = field(default_factory=lambda: _console(stderr=True))
    log_interval: float = field(default_factory=lambda: LOG_INTERVAL_S)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)

    def __post_init__(self) -> None:
        if distributed_rank() != 0:
            # Under torchrun every rank runs the command: only rank 0 talks; errors still print.
            self.quiet = True
            self.out = Console(file=io.StringIO(), highlight=False)

    def info(self, message: str) -> None:
        # stdout: stderr carries only progress bars (removed on failure) and the one error line.
        if not self.quiet:
            self.out.print(message)

    def debug(self, message: str) -> None:
        if self.verbose and not self.quiet:
            self.out.print(f"[dim]{message}[/dim]")

    @property
    def logs_progress(self) -> bool:
        """True when progress goes to stderr as plain lines rather than Rich bars: stderr is not
        an interactive terminal (a file, a pipe, CI, ``nohup``, a dumb terminal), where a bar
        would print nothing until its stage ends. Jupyter keeps the bars (a live widget)."""
        return not self.quiet and not (self.err.is_interactive or self.err.is_jupyter)

    def _log_bar(self, description: str, total: int | None) -> LogBar:
        return LogBar(
            self.err, description, total, self.log_interval, self.clock, self.logs_progress
        )

    def _progress(self) -> Progress:
        # A row wider than the terminal gets cut with an ellipsis, which hides the counts and the
        # ETA; on narrow terminals the training stats and the elapsed time make room for them.
        wide = self.err.width >= _WIDE_TERMINAL
        columns = [
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=20 if wide else 10),
            MofNCompleteColumn(),
            *([TextColumn("{task.fields[stats]}"), TimeElapsedColumn()] if wide else []),
            TextColumn("ETA"),
            TimeRemainingColumn(),
        ]
        disable = self.quiet or self.logs_progress  # plain lines replace the bars there
        return Progress(*columns, console=self.err, disable=disable, transient=False)

    @contextmanager
    def _live(self) -> Iterator[Progress]:
        """A running Progress that vanishes when the stage fails, so bad input leaves exactly the
        one error line on stderr (a finished stage's bar stays on screen). Plain lines stop there
        too: a bar's last line is printed after the ``yield`` only, and its removed task makes a
        late update raise before its line."""
        progress = self._progress()
        if progress.disable:
            # Never started: rich < 15 prints a newline when a disabled Progress stops, which
            # would put blank lines before an error line (and into --quiet's silence).
            yield progress
            return
        with progress:
            try:
                yield progress
            except BaseException:
                for task in list(progress.task_ids):
                    progress.remove_task(task)
                progress.live.transient = True
                raise

    @contextmanager
    def stage(self, description: str, total: int | None = None) -> Iterator[Callable[..., None]]:
        """A progress bar for a counted stage; yields ``progress(done, total)``.

        The callback has the shape of the libraries' ``progress(done, total)`` hooks.
        """
        with self._live() as progress:
            task = progress.add_task(description, total=total, stats="")
            log = self._log_bar(description, total)

            def update(done: int, total_: int | None = None, **_: object) -> None:
                progress.update(task, completed=done, total=total_ or total)
                log.update(done, total_ or total)

            yield update
            t = progress.tasks[0]
            if t.total is not None:
                progress.update(task, completed=t.total)
            log.finish(None if t.total is None else int(t.total))

    @contextmanager
    def training(self, description: str, total: int) -> Iterator[Callable[[TrainEvent], None]]:
        """A progress bar fed by library ``TrainEvent``s (step, total, metrics)."""
        with self._live() as progress:
            task: TaskID = progress.add_task(description, total=total, stats="")
            log = self._log_bar(description, total)
            last: dict[str, float] = {}

            def on_event(event: TrainEvent) -> None:
                metrics = dict(getattr(event, "metrics", {}) or {})
                last.update(metrics)
                stats = format_train_stats(metrics)
                progress.update(
                    task, completed=int(event.step), total=int(event.total), stats=stats
                )
                log.update(int(event.step), int(event.total), stats)

            yield on_event
            log.finish()

    @contextmanager
    def trainings(
        self, bars: list[tuple[str, int]]
    ) -> Iterator[list[Callable[[int, int, dict[str, float]], None]]]:
        """Several training bars in one live display (trainings that run at the same time);
        yields one ``update(step, total, metrics)`` per bar.

        A bar's plain lines end with the update that reaches its total: a failed or interrupted
        training ends the display normally (the caller raises after it), with no line of its own.
        """
        with self._live() as progress:
            tasks = [progress.add_task(d, total=t, stats="") for d, t in bars]
            logs = [self._log_bar(d, t) for d, t in bars]

            def updater(task: TaskID, log: LogBar) -> Callable[[int, int, dict[str, float]], None]:
                def update(step: int, total: int, metrics: dict[str, float]) -> None:
                    stats = format_train_stats(metrics)
                    progress.update(task, completed=step, total=total, stats=stats)
                    log.update(step, total, stats)

                return update

            yield [updater(t, log) for t, log in zip(tasks, logs, strict=True)]
