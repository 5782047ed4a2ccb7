"""Independent trainings side by side in worker processes (the demo's rgbd and rgb pipelines).

At the demo's sizes (96 px, batch 8) a training step is a chain of small ops that a second
intra-op thread does not speed up (measured 3.0 it/s with one torch thread and with two on 2
cores), so two trainings at one thread each finish in about half the time of two in a row.
Processes, not threads: the libraries seed their initial weights (and stage 1 its dead-code
restarts) from the global torch RNG, which threads would share and interleave. Each worker gets
``threads // n_jobs`` torch threads; progress events come back through a queue to one Rich
display; a worker's error is re-raised here, so it is reported as if raised in-process.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import queue as queue_mod
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from threedsr_cli.errors import Interrupted
from threedsr_cli.ui import UI

if TYPE_CHECKING:
    from multiprocessing.queues import Queue

    from threedsr import DetectorConfig, TrainData
    from vqcore import StageOneConfig, TrainEvent

__all__ = ["TrainJob", "train_concurrently"]

#: A worker's message to the parent: ("event", job, (step, total, metrics)), ("done" or
#: "interrupted", job, None), or ("error", job, the exception).
Message = tuple[str, int, "tuple[int, int, dict[str, float]] | BaseException | None"]

# seconds a worker that exited 0 may take to deliver its last message through the queue
_FLUSH_GRACE_S = 10.0
_POLL_S = 0.25
# seconds an interrupted worker gets to save and exit before it is sent SIGINT itself
_INTERRUPT_GRACE_S = 20.0


@dataclass(frozen=True)
class TrainJob:
    """One training: ``kind`` "stage1" (``vqcore.train_dada(config)``) or "stage2"
    (``threedsr.train_detector(config, data=data)``)."""

    kind: str
    description: str
    config: StageOneConfig | DetectorConfig
    checkpoint: Path
    data: TrainData | None = None


def _run_job(job: TrainJob, on_event: Callable[[TrainEvent], None]) -> None:
    if job.kind == "stage1":
        import vqcore

        vqcore.train_dada(job.config, on_event)
    elif job.kind == "stage2":
        import threedsr

        network = job.config.uses_network

        def forward(event: TrainEvent) -> None:
            # A network run's bar counts its steps; the memory's phases would restart it.
            if not (network and event.stage == "memory"):
                on_event(event)

        threedsr.train_detector(job.config, forward, data=job.data)
    else:
        raise ValueError(f"unknown training kind {job.kind!r}")


def _steps(job: TrainJob) -> int:
    """Steps of a job's bar: the network's iterations, or the memory's 4 phases."""
    if job.kind == "stage2" and not job.config.uses_network:
        return 4
    return int(job.config.iterations)


def _worker(index: int, job: TrainJob, threads: int, messages: Queue[Message]) -> None:
    import torch

    torch.set_num_threads(threads)

    def on_event(event: TrainEvent) -> None:
        metrics = {k: float(v) for k, v in dict(getattr(event, "metrics", {}) or {}).items()}
        messages.put(("event", index, (int(event.step), int(event.total), metrics)))

    try:
        _run_job(job, on_event)
        messages.put(("done", index, None))
    except KeyboardInterrupt:
        messages.put(("interrupted", index, None))
    except BaseException as exc:  # every failure, whatever its type, goes back to the parent
        try:
            pickle.dumps(exc)
            err: BaseException = exc
        except Exception:  # an exception that cannot travel: keep its type name and message
            err = RuntimeError(f"{type(exc).__name__}: {exc}")
        messages.put(("error", index, err))


def train_concurrently(ui: UI, jobs: list[TrainJob]) -> None:
    """Run ``jobs`` at the same time, one spawned process each, with one progress bar each.

    Raises:
        the first worker's exception (a library error stays a library error);
        :class:`Interrupted` on Ctrl-C, after every worker has saved its checkpoint.
    """
    if not jobs:
        return
    ctx = mp.get_context("spawn")
    messages = ctx.Queue()
    import torch

    threads = max(1, torch.get_num_threads() // len(jobs))
    procs = [
        ctx.Process(target=_worker, args=(i, job, threads, messages), name=f"train-{i}")
        for i, job in enumerate(jobs)
    ]
    pending = set(range(len(jobs)))
    exited_at: dict[int, float] = {}
    failure: BaseException | None = None
    interrupted = False
    with ui.trainings([(j.description, _steps(j)) for j in jobs]) as bars:
        for p in procs:
            p.start()
        try:
            waited = 0.0
            while pending and failure is None and not interrupted:
                try:
                    kind, index, payload = messages.get(timeout=_POLL_S)
                except queue_mod.Empty:
                    waited += _POLL_S
                    for i in sorted(pending):
                        code = procs[i].exitcode
                        if code is None:
                            continue
                        if code != 0:
                            failure = RuntimeError(
                                f"{jobs[i].description}: worker process exited with code {code}"
                            )
                        elif waited - exited_at.setdefault(i, waited) > _FLUSH_GRACE_S:
                            failure = RuntimeError(
                                f"{jobs[i].description}: worker process ended without a result"
                            )
                    continue
                if kind == "event":
                    bars[index](*payload)
                elif kind == "done":
                    pending.discard(index)
                elif kind == "interrupted":
                    interrupted = True
                else:
                    failure = payload
        except KeyboardInterrupt:
            # Ctrl-C reached the workers too (same process group): they save and exit.
            interrupted = True
        finally:
            deadline = time.monotonic() + _INTERRUPT_GRACE_S
            for p in procs:
                if p.is_alive() and interrupted:
                    # A terminal Ctrl-C reached the worker too and it is saving: a second SIGINT
                    # could cut that save short, so it is sent only to a worker still training.
                    p.join(timeout=max(0.0, deadline - time.monotonic()))
                    if p.is_alive() and p.pid is not None:
                        os.kill(p.pid, signal.SIGINT)
                elif p.is_alive() and pending:  # a failure, or an error in this process
                    p.terminate()
                p.join()
            messages.close()
    if interrupted:
        saved = [j.checkpoint for j in jobs if j.checkpoint.exists()]
        if len(saved) > 1:  # name the folder that holds them all
            raise Interrupted(Path(os.path.commonpath([str(p) for p in saved])))
        raise Interrupted(saved[0] if saved else None)
    if failure is not None:
        raise failure
