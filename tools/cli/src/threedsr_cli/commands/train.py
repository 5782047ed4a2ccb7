"""``threedsr-cli train``: the detector of one class, made by the method the user names."""

from __future__ import annotations

import os
import shlex
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from threedsr_cli.errors import CLIError, Interrupted, finished_run
from threedsr_cli.locks import run_lock
from threedsr_cli.map_scale import score_text
from threedsr_cli.runs import claim_run
from threedsr_cli.ui import UI

if TYPE_CHECKING:
    from threedsr import DetectorConfig, TrainData, TrainResult

__all__ = ["build_config", "prepare_train_data", "run_training", "train_command"]


def prepare_train_data(ui: UI, config: DetectorConfig) -> TrainData:
    """``threedsr.load_train_data`` (good samples of ``<root>/<category>/train``) with a bar."""
    import threedsr

    with ui.stage(f"preprocess {config.category}/train") as progress:
        return threedsr.load_train_data(config, progress=progress)


def run_training(
    ui: UI, config: DetectorConfig, data: TrainData | None, description: str
) -> TrainResult:
    """``threedsr.train_detector`` with progress (the network's steps, then the memory's
    phases); Ctrl-C -> :class:`Interrupted`."""
    import threedsr

    total = config.iterations if config.uses_network else 4
    try:
        with ui.training(description, total) as on_event:

            def forward(event: threedsr.TrainEvent) -> None:
                # The memory reports its 4 phases after the network's steps: one bar for both.
                if config.uses_network and event.stage == "memory":
                    return
                on_event(event)

            return threedsr.train_detector(config, forward, data=data)
    except KeyboardInterrupt:
        ckpt = config.run_dir() / "detector.pt"
        raise Interrupted(ckpt if ckpt.exists() else None) from None


def build_config(
    *,
    method: str,
    preset: str | None,
    setup: str,
    **fields: object,
) -> DetectorConfig:
    """The detector config of ``method``: the memory's own preset, or the 3DSR schedule
    ``preset`` (default ``cpu``; ``train`` picks :func:`default_preset`) for ``3dsr`` and
    ``fused``."""
    import threedsr

    if method == "memory":
        network_only = [k for k in ("iterations", "batch_size", "precision") if fields.get(k)]
        if preset is not None or network_only:
            flag = (
                f"--preset {preset}"
                if preset is not None
                else "--" + network_only[0].replace("_", "-")
            )
            raise CLIError(
                f"{flag}: sets the 3DSR network's training, and the method is memory (the "
                "default), which trains no network: drop it, or add --method 3dsr or fused"
            )
        return threedsr.DetectorConfig.preset("memory", setup=setup, **fields)
    return threedsr.DetectorConfig.preset(preset or "cpu", setup=setup, method=method, **fields)


def default_preset(device: object) -> str:
    """The 3DSR schedule when ``--preset`` is not given: ``gpu`` on CUDA, ``cpu`` elsewhere.

    Example:
        >>> default_preset("cuda:0"), default_preset("cpu")
        ('gpu', 'cpu')
    """
    return "gpu" if str(device).startswith("cuda") else "cpu"


def train_command(*, out: Path, **kwargs: Any) -> None:
    """Make the detector into ``out``, holding the run folder's write lock throughout: a second
    command writing the folder stops at once with one line (``locks.py``)."""
    with run_lock(out):
        _train(out=out, **kwargs)


def _train(
    *,
    data: Path,
    category: str | None,
    setup: str,
    method: str = "memory",
    preset: str | None,
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
    depth_unit: str | None = None,
    focal_px: str | None = None,
    principal_point: str | None = None,
    grid: str | None = None,
    camera: Path | None = None,
    seed: int,
    ui: UI,
) -> None:
    import threedsr

    from threedsr_cli.commands.pack import open_pack
    from threedsr_cli.libs import (
        check_backbone,
        check_batch_memory,
        check_category,
        pretrained_backbone,
        resolve_device,
        warn,
    )
    from threedsr_cli.path_checks import check_cache_dir, check_outside_data
    from threedsr_cli.scan_units import scan_read_options

    category = check_category(data, category)
    check_cache_dir(cache_dir, data)
    check_outside_data(out, data, "--out")
    if dada is None:
        backbone_file = pretrained_backbone(setup)
        backbone = None
    else:
        backbone_file = check_backbone(dada, setup)
        backbone = str(backbone_file)
    dev = resolve_device(device)
    pack = open_pack(data)
    read_options = scan_read_options(
        data,
        pack,
        depth_unit=depth_unit,
        focal_px=focal_px,
        principal_point=principal_point,
        grid=grid,
        camera=camera,
    )
    if method != "memory" and preset is None:
        preset = default_preset(dev)
    config = build_config(
        method=method,
        preset=preset,
        setup=setup,
        # absolute: predict --threshold auto finds it from any working directory
        data_root=str(Path(data).absolute()),
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
        **read_options,
    )
    if pack is not None:  # refused now, before the run folder is claimed
        pack.check(category, config.preprocess_kwargs(), read_options)
    reads_backbone = config.uses_network or config.memory.features == "encoder"
    settings = {
        "method": method,
        "data": str(Path(data).resolve()),
        "category": category,
        "setup": setup,
        "preset": preset if config.uses_network else None,
        "dada": (
            None
            if not reads_backbone
            else "pretrained"
            if backbone is None
            else str(backbone_file.resolve())
        ),
        "iterations": config.iterations if config.uses_network else 0,
        "batch_size": config.batch_size if config.uses_network else None,
        "size": config.image_size,  # run.json keeps the CLI's option names
        "seed": seed,
        # only when given: a run.json written before these options resumes as it was
        **read_options,
    }
    if config.uses_network:
        check_batch_memory(config.batch_size, config.image_size, dev, "--batch-size")
    run = claim_run(out, "train", settings, resume=resume, overwrite=overwrite)
    if run.finished:
        ui.info(f"{out}: the run is finished; nothing to do")
        return
    what = threedsr.METHOD_SUMMARY[method]
    if config.uses_network:
        source = (
            "pretrained (" + backbone_file.name + ")" if backbone is None else str(backbone_file)
        )
        if preset == "paper" and backbone is None:
            # The heads take their widths from the backbone, as the reference's do: on the
            # shipped cpu-width one they are a tenth of the paper's network.
            warn(
                "--preset paper without --dada trains the heads on the shipped cpu-width "
                "backbone (about 4.9 M trainable parameters, not the paper's 55 M); for the "
                "paper's network: train-dada --preset paper, then train --dada RUN"
            )
        ui.info(
            f"method {method}: {what}\n{setup} detector for {category!r}, 3DSR preset "
            f"{preset}, backbone {source}, {config.iterations} iterations, batch "
            f"{config.batch_size}, {config.image_size}px, on {dev} ({config.precision})"
        )
    else:
        ui.info(
            f"method {method}: {what}\n{setup} detector for {category!r}, {config.image_size}px, "
            f"on {dev}"
        )
    start = time.perf_counter()
    # On a failure before the first checkpoint (bad data, out of memory, Ctrl-C) the folder goes
    # back to what it was: a replaced run (--overwrite) returns, a new folder disappears.
    with run.guard(Path(out) / "detector.pt"):
        train_data = prepare_train_data(ui, config)
        result = run_training(ui, config, train_data, f"{method} ({setup}, {category})")
    # Relative to the run folder, which works wherever it is copied or mounted.
    run.finish(
        checkpoint=os.path.relpath(result.path, out), steps=result.step, metrics=result.metrics
    )
    with finished_run(Path(out)):  # a Ctrl-C now cuts only the summary
        from rich.table import Table

        info = threedsr.detector_info(result.path)
        table = Table(title=f"{method} detector done", show_header=False)
        table.add_row("method", f"{method}: {what}")
        table.add_row("checkpoint", str(result.path))
        if config.uses_network:
            table.add_row("3DSR steps", str(result.step))
            for key, value in result.metrics.items():
                if key in ("total", "focal", "image"):
                    table.add_row(key, f"{value:.4g}")
        if info.display is not None:
            table.add_row(
                "threshold",
                f"{score_text(info.display.threshold)} (largest score of the good "
                f"{info.display.source} scans)",
            )
        table.add_row("wall time", f"{time.perf_counter() - start:.1f} s")
        # quoted, so that the line can be pasted into a shell as it is (paths with spaces)
        table.add_row(
            "next",
            f"threedsr-cli eval --run {shlex.quote(str(out))} --data {shlex.quote(str(data))}",
        )
        ui.out.print(table)
