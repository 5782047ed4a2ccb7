"""``threedsr-cli train``: stage 2 (the 3DSR detector of one class)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from threedsr_cli.errors import Interrupted
from threedsr_cli.runs import claim_run
from threedsr_cli.ui import UI

if TYPE_CHECKING:
    from threedsr import DetectorConfig, TrainData, TrainResult

__all__ = ["prepare_train_data", "run_stage_two", "train_command"]


def prepare_train_data(ui: UI, config: DetectorConfig) -> TrainData:
    """``threedsr.load_train_data`` (good samples of ``<root>/<category>/train``) with a bar."""
    import threedsr

    with ui.stage(f"preprocess {config.category}/train") as progress:
        return threedsr.load_train_data(config, progress=progress)


def run_stage_two(
    ui: UI, config: DetectorConfig, data: TrainData | None, description: str
) -> TrainResult:
    """Train the detector with a progress bar; Ctrl-C -> :class:`Interrupted`."""
    import threedsr

    try:
        with ui.training(description, config.iterations) as on_event:
            return threedsr.train_detector(config, on_event, data=data)
    except KeyboardInterrupt:
        ckpt = config.run_dir() / "detector.pt"
        raise Interrupted(ckpt if ckpt.exists() else None) from None


def train_command(
    *,
    data: Path,
    category: str,
    setup: str,
    preset: str,
    dada: Path | None,
    out: Path,
    resume: bool,
    overwrite: bool,
    iterations: int | None,
    batch_size: int | None,
    size: int | None,
    cache_dir: Path | None,
    device: str,
    precision: str | None = None,
    seed: int,
    ui: UI,
) -> None:
    import threedsr

    from threedsr_cli.libs import (
        check_backbone,
        check_batch_memory,
        check_category,
        pretrained_backbone,
        resolve_device,
    )
    from threedsr_cli.options import check_cache_dir

    check_category(data, category)
    check_cache_dir(cache_dir, data)
    if dada is None:
        backbone_file = pretrained_backbone(setup)
        backbone = None
    else:
        backbone_file = check_backbone(dada, setup)
        backbone = str(backbone_file)
    dev = resolve_device(device)
    config = threedsr.DetectorConfig.preset(
        preset,
        setup=setup,
        data_root=str(data),
        category=category,
        backbone=backbone,
        out_dir=str(out),
        iterations=iterations,
        batch_size=batch_size,
        image_size=size,
        cache_dir=None if cache_dir is None else str(cache_dir),
        precision=precision,
        device=str(dev),
        seed=seed,
        resume=True,
    )
    settings = {
        "data": str(Path(data).resolve()),
        "category": category,
        "setup": setup,
        "preset": preset,
        "dada": "pretrained" if backbone is None else str(backbone_file.resolve()),
        "iterations": config.iterations,
        "batch_size": config.batch_size,
        "size": config.image_size,  # run.json keeps the CLI's option names
        "seed": seed,
    }
    check_batch_memory(config.batch_size, config.image_size, dev, "--batch-size")
    run = claim_run(out, "train", settings, resume=resume, overwrite=overwrite)
    ui.info(
        f"stage 2: {setup} detector for {category!r}, preset {preset}, backbone "
        f"{'pretrained (' + backbone_file.name + ')' if backbone is None else backbone_file}, "
        f"{config.iterations} "
        f"iterations, batch {config.batch_size}, {config.image_size}px, on {dev} ({config.precision})"
    )
    start = time.perf_counter()
    # On a failure before the first checkpoint (bad data, out of memory, Ctrl-C) the folder goes
    # back to what it was: a replaced run (--overwrite) returns, a new folder disappears.
    with run.guard(Path(out) / "detector.pt"):
        train_data = prepare_train_data(ui, config)
        result = run_stage_two(ui, config, train_data, f"stage 2 ({setup}, {category})")
    run.finish(checkpoint=str(result.path), steps=result.step, metrics=result.metrics)
    from rich.table import Table

    table = Table(title="stage 2 done", show_header=False)
    table.add_row("checkpoint", str(result.path))
    table.add_row("steps", str(result.step))
    for key, value in result.metrics.items():
        if key in ("total", "focal", "image"):
            table.add_row(key, f"{value:.4g}")
    table.add_row("wall time", f"{time.perf_counter() - start:.1f} s")
    table.add_row("next", f"threedsr-cli eval --run {out} --data {data}")
    ui.out.print(table)
