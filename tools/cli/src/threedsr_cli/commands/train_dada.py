"""``threedsr-cli train-dada``: stage 1 (DADA, or the depth-only / RGB-only backbone)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from threedsr_cli.errors import CLIError, Interrupted, finished_run
from threedsr_cli.locks import run_lock
from threedsr_cli.path_checks import check_image_folder
from threedsr_cli.runs import claim_run
from threedsr_cli.ui import UI

if TYPE_CHECKING:
    from vqcore import StageOneConfig, StageOneResult

__all__ = ["run_stage_one", "train_dada_command"]


def run_stage_one(
    ui: UI,
    config: StageOneConfig,
    description: str,
) -> StageOneResult:
    """Train stage 1 with a progress bar; Ctrl-C -> :class:`Interrupted` with the checkpoint."""
    import vqcore

    try:
        with ui.training(description, config.iterations) as on_event:
            return vqcore.train_dada(config, on_event)
    except KeyboardInterrupt:
        ckpt = config.checkpoint_path
        raise Interrupted(ckpt if ckpt.exists() else None) from None


def train_dada_command(*, out: Path, **kwargs: Any) -> None:
    """Stage 1 into ``out``, holding the run folder's write lock throughout (``locks.py``)."""
    with run_lock(out):
        _train_dada(out=out, **kwargs)


def _train_dada(
    *,
    preset: str,
    setup: str,
    rgb_dir: Path | None,
    out: Path,
    resume: bool,
    overwrite: bool,
    iterations: int | None,
    batch_size: int | None,
    image_size: int | None,
    device: str,
    precision: str | None = None,
    seed: int,
    ui: UI,
) -> None:
    import vqcore

    from threedsr_cli.libs import check_batch_memory, resolve_device

    if rgb_dir is not None:
        check_image_folder(rgb_dir)
    dev = resolve_device(device)
    config = vqcore.StageOneConfig.preset(
        preset,
        setup,
        out_dir=out,
        rgb_dir=rgb_dir,
        iterations=iterations,
        batch_size=batch_size,
        image_size=image_size,
        precision=precision,
        seed=seed,
        device=str(dev),
        resume=True,
        overwrite=False,
    )
    settings = {
        "preset": preset,
        "setup": setup,
        "rgb_dir": None if rgb_dir is None else str(Path(rgb_dir).resolve()),
        "iterations": config.iterations,
        "batch_size": config.batch_size,
        "image_size": config.image_size,
        "seed": seed,
    }
    check_batch_memory(config.batch_size, config.image_size, dev, "--batch-size")
    run = claim_run(out, "train-dada", settings, resume=resume, overwrite=overwrite)
    if run.finished:
        ui.info(f"{out}: the run is finished; nothing to do")
        return
    if not run.resumed and config.checkpoint_path.exists():
        run.rollback()
        raise CLIError(f"{config.checkpoint_path}: exists; pass --resume or --overwrite")
    ui.info(
        f"stage 1: {setup} backbone, preset {preset}, {config.iterations} iterations, "
        f"batch {config.batch_size}, {config.image_size}px, on {dev} ({config.precision})"
        + (f", RGB from {rgb_dir}" if rgb_dir else ", procedural RGB")
    )
    start = time.perf_counter()
    with run.guard(config.checkpoint_path):
        result = run_stage_one(ui, config, f"stage 1 ({setup})")
    metrics = result.metrics
    run.finish(
        checkpoint=os.path.relpath(result.checkpoint, out), steps=result.steps, metrics=metrics
    )
    with finished_run(out):  # a Ctrl-C now cuts only the summary
        from rich.table import Table

        table = Table(title="stage 1 done", show_header=False)
        table.add_row("checkpoint", str(result.checkpoint))
        table.add_row("steps", str(result.steps))
        for key in ("loss", "recon", "perplexity_top", "perplexity_bot"):
            if key in metrics:
                table.add_row(key, f"{metrics[key]:.4g}")
        table.add_row("wall time", f"{time.perf_counter() - start:.1f} s")
        ui.out.print(table)
