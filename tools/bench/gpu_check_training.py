"""``gpu_check``'s training measurements: stage-1 and stage-2 it/s, peak memory and FLOP/s at the
``paper`` presets' widths and batches."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
import vqcore
from bench_threedsr import CH
from gpu_check_setup import (
    Sizes,
    backbone_config,
    detector_config,
    flops_once,
    peak_gib,
    peak_reset,
    with_flops,
)
from threedsr import TrainData, train_detector


def _rate(history: list[dict[str, float]], key: str) -> float:
    # The last logged window excludes the first steps (cuDNN autotune, allocator warm-up).
    return float(history[-1][key]) if history else float("nan")


#: Stage-1 runs (setup, precision, sampler): both samplers at the issue-25 target (rgbd, bf16),
#: the host sampler in fp32 too (the paper preset's precision), and depth alone.
STAGE1_RUNS = (
    ("rgbd", "bf16", "device"),
    ("rgbd", "bf16", "host"),
    ("rgbd", "fp32", "device"),
    ("rgbd", "fp32", "host"),
    ("depth", "bf16", "device"),
    ("depth", "bf16", "host"),
)


def bench_stage1(
    setup: str, precision: str, sz: Sizes, tmp: Path, sampler: str = "host"
) -> dict[str, Any]:
    """Stage-1 it/s with ``sampler`` making the batches (``host``: DataLoader workers, one per
    core on the GPU box; ``device``: the GPU, in the training process)."""
    dev = torch.device(sz.device)
    n = sz.stage1_steps
    cfg = vqcore.StageOneConfig.paper(
        setup,
        backbone=backbone_config(setup, sz),
        out_dir=tmp / f"s1-{setup}-{precision}-{sampler}",
        image_size=sz.stage1_size,
        batch_size=sz.stage1_batch,
        iterations=n,
        log_every=max(1, n // 3),
        checkpoint_every=10 * n,
        num_workers=0 if sz.tiny else -1,
        sampler=sampler,
        device=str(dev),
        precision=precision,
    )
    peak_reset(dev)
    res = vqcore.train_dada(cfg)
    row = {
        "stage": "1",
        "setup": f"{setup}, {sampler} sampler",
        "precision": precision,
        "batch": sz.stage1_batch,
        "size": sz.stage1_size,
        "its": _rate(res.history, "it_s"),
        "peak": peak_gib(dev),
    }
    one = cfg.replace(iterations=1, out_dir=tmp / f"s1-{setup}-flops")
    flops = flops_once("1", setup, lambda: vqcore.train_dada(one))
    return with_flops(row, flops, row["its"], dev)


def bench_stage2(
    setup: str, precision: str, sz: Sizes, tmp: Path, sampler: str = "device", note: str = ""
) -> dict[str, Any]:
    """Stage-2 it/s with ``sampler`` making the batches; ``note`` is added to the setup label."""
    dev = torch.device(sz.device)
    n = sz.stage2_steps
    s = sz.stage2_size
    g = torch.Generator().manual_seed(0)
    fg = torch.zeros(8, 1, s, s)
    fg[:, :, s // 4 : 3 * s // 4, s // 4 : 3 * s // 4] = 1
    data = TrainData(torch.rand(8, CH[setup], s, s, generator=g), fg)
    torch.manual_seed(0)
    backbone = vqcore.build_backbone(backbone_config(setup, sz)).eval()
    cfg = detector_config(
        setup,
        sz,
        out_dir=str(tmp / f"s2-{setup}-{precision}-{sampler}-{time.monotonic_ns()}"),
        image_size=s,
        batch_size=sz.stage2_batch,
        iterations=n,
        log_every=max(1, n // 3),
        checkpoint_every=10 * n,
        device=str(dev),
        precision=precision,
        sampler=sampler,
    )
    peak_reset(dev)
    res = train_detector(cfg, backbone=backbone, data=data)
    row = {
        "stage": "2",
        "setup": f"{setup}, {sampler} sampler{note}",
        "precision": precision,
        "batch": sz.stage2_batch,
        "size": s,
        "its": _rate(res.history, "it_per_s"),
        "peak": peak_gib(dev),
    }
    one = cfg.replace(iterations=1, out_dir=cfg.out_dir + "-flops")
    flops = flops_once("2", setup, lambda: train_detector(one, backbone=backbone, data=data))
    return with_flops(row, flops, row["its"], dev)
