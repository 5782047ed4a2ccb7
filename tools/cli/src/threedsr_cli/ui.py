"""Terminal output: Rich consoles, progress bars for stages and training, quiet/verbose modes.

Progress bars go to stderr, informational lines and result tables to stdout, so on bad input
stderr holds exactly the one error line; the
libraries report through plain callbacks, which :class:`UI` turns into Rich progress updates.

When stderr is not an interactive terminal (redirected to a file, CI, ``nohup``) a Rich bar would
show nothing until its stage ends, so each bar prints plain lines instead: its first update, then
at most one every :data:`LOG_INTERVAL_S` seconds, and its end (see :func:`format_log_line`). No
line follows an exception, so a failure adds only its error line to what was already logged.
"""

from __future__ import annotations

import io
import math
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

from threedsr_cli.runs import distributed_rank

if TYPE_CHECKING:
    from vqcore import TrainEvent

__all__ = ["LOG_INTERVAL_S", "UI", "format_log_line", "format_train_stats"]

# columns a progress row needs with the training stats (loss, perplexities, it/s) shown
_WIDE_TERMINAL = 120

#: Seconds of wall time between two plain progress lines of one bar when stderr is not an
#: interactive terminal (the default of :attr:`UI.log_interval`, read when a UI is made).
LOG_INTERVAL_S = 10.0


def _fmt(value: object, digits: int = 4) -> str:
    if not isinstance(value, int | float) or not math.isfinite(float(value)):
        return "-"
    return f"{float(value):.{digits}g}"


def format_train_stats(metrics: dict[str, float]) -> str:
    """One short line of training metrics for the progress bar.

    Example:
        >>> format_train_stats({"loss": 0.123456, "perplexity_top": 12.5, "perplexity_bot": 40.0,
        ...                     "it_s": 3.21})
        'loss 0.1235  ppl 12.5/40  3.21 it/s'
        >>> format_train_stats({"total": 1.5, "it_per_s": 2.0})
        'loss 1.5  2 it/s'
    """
    parts = []
    loss = metrics.get("loss", metrics.get("total"))
    if loss is not None:
        parts.append(f"loss {_fmt(loss)}")
    if "perplexity_top" in metrics or "perplexity_bot" in metrics:
        top = _fmt(metrics.get("perplexity_top"), 3)
        bot = _fmt(metrics.get("perplexity_bot"), 3)
        parts.append(f"ppl {top}/{bot}")
    rate = metrics.get("it_s", metrics.get("it_per_s"))
    if rate is not None:
        parts.append(f"{_fmt(rate, 3)} it/s")
    return "  ".join(parts)


def _clock(seconds: float) -> str:
    """``m:ss``, or ``h:mm:ss`` from an hour on.

    Example:
        >>> _clock(40.2), _clock(93.4), _clock(3725)
        ('0:40', '1:33', '1:02:05')
    """
    h, rest = divmod(int(seconds + 0.5), 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def format_log_line(
    description: str,
    done: int | None,
    total: int | None,
    stats: str,
    elapsed: float,
    rate: float | None,
) -> str:
    """One plain progress line, for logs (stderr not a terminal).

    ``done`` of ``total`` (``None``: not known), ``stats`` from :func:`format_train_stats`,
    ``elapsed`` seconds and ``rate`` (items per second so far, ``None`` before there is one): the
    rate is shown when ``stats`` has none, and gives the ETA.

    Example:
        >>> format_log_line("train rgbd", 120, 400, "loss 0.12  3.1 it/s", 40.0, 3.0)
        'train rgbd: 120/400 (30%)  loss 0.12  3.1 it/s  elapsed 0:40  ETA 1:33'
        >>> format_log_line("predict", 3, 10, "", 2.0, None)
        'predict: 3/10 (30%)  elapsed 0:02  ETA -:--'
        >>> format_log_line("evaluate puck", 10, 10, "", 4.0, 2.5)
        'evaluate puck: 10/10 (100%)  2.5 it/s  elapsed 0:04  ETA 0:00'
        >>> format_log_line("generate dataset", None, None, "", 3.0, None)
        'generate dataset: done  elapsed 0:03'
    """
    if done is None:
        parts = [f"{description}: done"]
    elif total is None:
        parts = [f"{description}: {done}"]
    elif total > 0:
        parts = [f"{description}: {done}/{total} ({100 * done // total}%)"]
    else:
        parts = [f"{description}: {done}/{total}"]
    if stats:
        parts.append(stats)
    if rate is not None and "it/s" not in stats:
        parts.append(f"{_fmt(rate, 3)} it/s")
    parts.append(f"elapsed {_clock(elapsed)}")
    if total is not None and done is not None:
        if done >= total:
            parts.append("ETA 0:00")
        elif rate:
            parts.append(f"ETA {_clock((total - done) / rate)}")
        else:
            parts.append("ETA -:--")
    return "  ".join(parts)


@dataclass
class _LogBar:
    """The plain progress lines of one bar: the first update, then one at most every
    ``interval`` seconds, the update that reaches the total, and :meth:`finish` (called only when
    the bar's context exits normally); never a line that repeats the last one. ``enabled``
    False: prints nothing."""

    console: Console
    description: str
    total: int | None
    interval: float
    clock: Callable[[], float]
    enabled: bool
    done: int | None = None
    stats: str = ""
    started: float = field(init=False)
    # (time, done) of the first update: the origin of the rate (a resumed run starts mid-way)
    _origin: tuple[float, int] | None = field(default=None, init=False)
    _printed_at: float | None = field(default=None, init=False)
    _printed: tuple[int | None, int | None, str] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.started = self.clock()

    def update(self, done: int, total: int | None = None, stats: str | None = None) -> None:
        """Record ``done`` (and ``total``/``stats`` when given); print when a line is due."""
        if not self.enabled:
            return
        now = self.clock()
        self.done = int(done)
        if total is not None:
            self.total = int(total)
        if stats is not None:
            self.stats = stats
        if self._origin is None:
            self._origin = (now, self.done)
        finished = self.total is not None and self.done >= self.total
        if self._printed_at is None or finished or now - self._printed_at >= self.interval:
            self._print(now)

    def finish(self, done: int | None = None) -> None:
        """The bar's end (its context exited normally): print its last state unless printed."""
        if not self.enabled:
            return
        if done is not None:
            self.done = int(done)
        self._print(self.clock())

    def _print(self, now: float) -> None:
        state = (self.done, self.total, self.stats)
        if state == self._printed:
            return
        rate = None
        if self._origin is not None and self.done is not None:
            t0, d0 = self._origin
            if now > t0 and self.done > d0:
                rate = (self.done - d0) / (now - t0)
        line = format_log_line(
            self.description, self.done, self.total, self.stats, now - self.started, rate
        )
        self.console.print(line, markup=False, highlight=False, emoji=False, soft_wrap=True)
        self._printed, self._printed_at = state, now


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
    out: Console = field(default_factory=lambda: Console(highlight=False))
    err: Console = field(default_factory=lambda: Console(stderr=True, highlight=False))
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

    def _log_bar(self, description: str, total: int | None) -> _LogBar:
        return _LogBar(
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
        with self._progress() as progress:
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

            def updater(task: TaskID, log: _LogBar) -> Callable[[int, int, dict[str, float]], None]:
                def update(step: int, total: int, metrics: dict[str, float]) -> None:
                    stats = format_train_stats(metrics)
                    progress.update(task, completed=step, total=total, stats=stats)
                    log.update(step, total, stats)

                return update

            yield [updater(t, log) for t, log in zip(tasks, logs, strict=True)]
