"""Terminal output: Rich consoles, progress bars for stages and training, quiet/verbose modes.

Progress bars go to stderr, informational lines and result tables to stdout, so on bad input
stderr holds exactly the one error line; the
libraries report through plain callbacks, which :class:`UI` turns into Rich progress updates.
"""

from __future__ import annotations

import io
import math
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

__all__ = ["UI", "format_train_stats"]

# columns a progress row needs with the training stats (loss, perplexities, it/s) shown
_WIDE_TERMINAL = 120


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


@dataclass
class UI:
    """Consoles and progress for one command.

    Args:
        quiet: no progress bars and no informational lines (errors and results still print).
        verbose: extra detail, and tracebacks on errors (see :mod:`threedsr_cli.errors`).
    """

    quiet: bool = False
    verbose: bool = False
    out: Console = field(default_factory=lambda: Console(highlight=False))
    err: Console = field(default_factory=lambda: Console(stderr=True, highlight=False))

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
        return Progress(*columns, console=self.err, disable=self.quiet, transient=False)

    @contextmanager
    def _live(self) -> Iterator[Progress]:
        """A running Progress that vanishes when the stage fails, so bad input leaves exactly the
        one error line on stderr (a finished stage's bar stays on screen)."""
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

            def update(done: int, total_: int | None = None, **_: object) -> None:
                progress.update(task, completed=done, total=total_ or total)

            yield update
            t = progress.tasks[0]
            if t.total is not None:
                progress.update(task, completed=t.total)

    @contextmanager
    def training(self, description: str, total: int) -> Iterator[Callable[[TrainEvent], None]]:
        """A progress bar fed by library ``TrainEvent``s (step, total, metrics)."""
        with self._live() as progress:
            task: TaskID = progress.add_task(description, total=total, stats="")
            last: dict[str, float] = {}

            def on_event(event: TrainEvent) -> None:
                metrics = dict(getattr(event, "metrics", {}) or {})
                last.update(metrics)
                progress.update(
                    task,
                    completed=int(event.step),
                    total=int(event.total),
                    stats=format_train_stats(metrics),
                )

            yield on_event

    @contextmanager
    def trainings(
        self, bars: list[tuple[str, int]]
    ) -> Iterator[list[Callable[[int, int, dict[str, float]], None]]]:
        """Several training bars in one live display (trainings that run at the same time);
        yields one ``update(step, total, metrics)`` per bar."""
        with self._live() as progress:
            tasks = [progress.add_task(d, total=t, stats="") for d, t in bars]

            def updater(task: TaskID) -> Callable[[int, int, dict[str, float]], None]:
                def update(step: int, total: int, metrics: dict[str, float]) -> None:
                    progress.update(
                        task, completed=step, total=total, stats=format_train_stats(metrics)
                    )

                return update

            yield [updater(t) for t in tasks]
