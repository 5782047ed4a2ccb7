"""The text of progress: the training stats a bar shows (:func:`format_train_stats`), and the
plain lines (:func:`format_log_line`, :class:`LogBar`) that replace the Rich bars of
:mod:`threedsr_cli.ui` when stderr is not an interactive terminal."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from rich.console import Console

__all__ = ["LogBar", "format_log_line", "format_train_stats"]


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
class LogBar:
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
