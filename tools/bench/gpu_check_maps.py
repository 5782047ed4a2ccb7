"""``gpu_check``'s map measurements: inference speed against the reference loop, bf16 against
fp32, and the paper preset's fp32 maps against the reference (issue 25)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
import vqcore
from bench_threedsr import CH, alternate_best, reference_forward
from gpu_check_setup import PRECISIONS, Sizes, build_model, flops_once, sync, with_flops
from threedsr import Detector


def bench_inference(setup: str, sz: Sizes) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Reference loop vs Detector at each batch and precision (alternated, best of repeats);
    then the bf16-vs-fp32 map differences at the largest batch."""
    dev = torch.device(sz.device)
    model, cfg = build_model(setup, sz)
    k = cfg.filter_size
    x = torch.rand(
        sz.images, CH[setup], sz.size, sz.size, generator=torch.Generator().manual_seed(1)
    )
    ref_model = copy.deepcopy(model).to(dev)
    x_dev = x.to(dev)

    def ref() -> tuple[torch.Tensor, torch.Tensor]:
        maps, scores = reference_forward(ref_model, x_dev, k)
        return maps.cpu(), scores.cpu()

    runs: dict[str, Callable[[], Any]] = {"ref": ref}
    for b in sz.batches:
        for p in PRECISIONS:
            det = Detector(
                cfg,
                network=copy.deepcopy(model),
                method="3dsr",
                device=dev,
                batch_size=b,
                bf16=p == "bf16",
            )
            runs[f"{b}/{p}"] = lambda det=det: det.predict(x)
    for run in runs.values():  # warm-up: cuDNN autotune, kernels
        run()
    sync(dev)
    best, out = alternate_best(runs, sz.images, sz.repeats)
    ref_maps, _ = out["ref"]
    flops = flops_once("inference", setup, lambda: runs[f"{sz.batches[-1]}/fp32"](), sz.images)
    rows = []
    for b in sz.batches:
        for p in PRECISIONS:
            pred = out[f"{b}/{p}"]
            row = {
                "setup": setup,
                "batch": b,
                "precision": p,
                "ref_ips": 1.0 / best["ref"],
                "ips": 1.0 / best[f"{b}/{p}"],
                "max_diff": float((pred.maps - ref_maps).abs().max()),
            }
            rows.append(with_flops(row, flops, row["ips"], dev))
    b = sz.batches[-1]
    p32, p16 = out[f"{b}/fp32"], out[f"{b}/bf16"]
    diff = (p16.maps - p32.maps).abs()
    raw = (p16.raw_maps - p32.raw_maps).abs()
    bf16 = {
        "setup": setup,
        "map_max": float(diff.max()),
        "map_mean": float(diff.mean()),
        "raw_max": float(raw.max()),
        "frac_over_1e2": float((raw > 1e-2).float().mean()),
        "score_max": float((p16.scores - p32.scores).abs().max()),
    }
    return rows, bf16


#: The bound the paper preset's fp32 maps must keep to the reference loop (issue 25).
PAPER_TOLERANCE = 1e-4


def bench_precision(setup: str, sz: Sizes) -> list[dict[str, Any]]:
    """Paper preset, fp32 (TF32 off): max |map - reference loop| (the loop in fp32 too), then
    max |map - fp32 map| of the same Detector in tf32 and bf16, and with the fast distance form
    (fp32) instead of the reference one. One row per variant."""
    dev = torch.device(sz.device)
    model, cfg = build_model(setup, sz)
    x = torch.rand(
        sz.images, CH[setup], sz.size, sz.size, generator=torch.Generator().manual_seed(1)
    )
    with vqcore.precision_scope("fp32"):
        ref_maps, _ = reference_forward(copy.deepcopy(model).to(dev), x.to(dev), cfg.filter_size)
    ref_maps = ref_maps.cpu()
    fast = copy.deepcopy(model)
    for vq in (fast.backbone.vq_top, fast.backbone.vq_bot):
        vq.set_distance("fast")
    variants = {
        "fp32": (model, "fp32"),
        "tf32": (model, "tf32"),
        "bf16": (model, "bf16"),
        "fp32, fast distance": (fast, "fp32"),
    }
    preds = {}
    for name, (net, precision) in variants.items():
        det = Detector(
            cfg,
            network=copy.deepcopy(net),
            method="3dsr",
            device=dev,
            batch_size=sz.batches[-1],
            precision=precision,
        )
        preds[name] = det.predict(x)
    base = preds["fp32"]
    rows = [
        {
            "setup": setup,
            "what": "fp32 (TF32 off) vs the reference loop (fp32)",
            "map_max": float((base.maps - ref_maps).abs().max()),
            "raw_max": None,
            "score_max": None,
            "bound": PAPER_TOLERANCE,
        }
    ]
    for name, pred in preds.items():
        if name == "fp32":
            continue
        rows.append(
            {
                "setup": setup,
                "what": f"{name} vs fp32",
                "map_max": float((pred.maps - base.maps).abs().max()),
                "raw_max": float((pred.raw_maps - base.raw_maps).abs().max()),
                "score_max": float((pred.scores - base.scores).abs().max()),
                "bound": None,
            }
        )
    return rows


def precision_lines(sz: Sizes, rows: list[dict[str, Any]]) -> list[str]:
    """The report section of :func:`bench_precision`."""

    def num(v: float | None) -> str:
        return "-" if v is None else f"{v:.1e}"

    lines = [
        "",
        f"## Precision: paper preset ({sz.size}², {sz.images} images, batch {sz.batches[-1]})",
        "",
        "fp32: TF32 off and the reference distance form; the reference loop runs in fp32 too. "
        f"check: max smoothed-map diff <= {PAPER_TOLERANCE:g}.",
        "",
        "| setup | comparison | max smoothed-map diff | max raw-map diff | max score diff | check |",
        "|---|---|---:|---:|---:|---|",
    ]
    for r in rows:
        check = "-" if r["bound"] is None else ("ok" if r["map_max"] <= r["bound"] else "FAIL")
        lines.append(
            f"| {r['setup']} | {r['what']} | {num(r['map_max'])} | {num(r['raw_max'])} | "
            f"{num(r['score_max'])} | {check} |"
        )
    return lines
