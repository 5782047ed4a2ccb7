"""The descriptor memory on its own (the ``memory`` method; nothing is trained): fit it on a
class's good training scans and score its test scans, for each feature choice, model size and
bank size asked for. Minutes per row. Each option below sets one field of the memory's part
(:class:`threedsr.MemoryConfig`), starting from the setup's default (``DetectorConfig.preset(
"memory", setup).memory``): ``--features`` = ``features``, ``--bank`` = ``size``, ``--scales`` =
``scales``, ``--groups`` = ``groups`` and ``weights``, ``--local-k`` = ``local_k``,
``--local-min-scans`` = ``local_min_scans``, ``--modalities`` = ``modalities``, ``--modality-fusion`` =
``modality_fusion``. The map is the memory's distance map
(``FeatureMemory``), which a ``memory``-method detector z-scores on good scans, smooths, then
squashes (``DetectorConfig.squash="smoothed"``): image scores rank as here. Detectors written
before that option squash each pixel before smoothing, which ranks differently.

    uv run python tools/bench/memory_features.py --data $THREEDSR_CABLE_GLAND \\
        --category cable_gland --features descriptors encoder --size 128 256
    # a synthetic class of your own (depthsim.scenes, any seed but the benchmark's):
    uv run python tools/bench/memory_features.py --data runs/tune-synth --category puck bar \\
        --features descriptors encoder --scales 1,2,4 1,2,4,8 --bank 40000 100000

Prints one JSON line per row: I-AUROC, per-type I-AUROC, P-AUROC, AUPRO (maps smoothed and
reduced to image scores exactly as the detector does: box filter, then max).
"""

from __future__ import annotations

import os

# Before torch loads: busy-waiting OpenMP workers slow a shared 2-core machine ~10x.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import itertools
import json
import time
from pathlib import Path

from learning_curve import add_data_arguments, data_root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_arguments(ap)
    ap.add_argument("--features", nargs="+", default=["descriptors"])
    ap.add_argument("--size", type=int, nargs="+", default=[256])
    ap.add_argument(
        "--scales", nargs="+", default=[None], help="descriptor scales, px (default: the preset's)"
    )
    ap.add_argument(
        "--groups",
        nargs="+",
        default=[None],
        help="descriptor groups[:weight], e.g. surface:2,colour,texture,interior "
        "(default: the preset's; no weights = every channel weighs 1)",
    )
    ap.add_argument("--box", type=int, nargs="+", default=[None], help="smoothing box side")
    ap.add_argument(
        "--train-scans",
        type=int,
        nargs="+",
        default=[None],
        help="fit on the first N good training scans (a learning curve); default: all",
    )
    ap.add_argument("--bank", type=int, nargs="+", default=[100_000], help="memory rows")
    ap.add_argument(
        "--local-k",
        type=int,
        nargs="+",
        default=[None],
        help="local-scale neighbour k (0 = plain distances; default: the preset's)",
    )
    ap.add_argument(
        "--modalities",
        nargs="+",
        default=[None],
        choices=["joint", "separate", "separate+joint", None],
        help="one search over every descriptor, depth and colour apart, or all three "
        "(default: the preset's)",
    )
    ap.add_argument(
        "--modality-fusion",
        nargs="+",
        default=[None],
        choices=["sum", "max", None],
        help="with separate modalities: sum the parts' distances or take the largest z-score "
        "(default: the preset's)",
    )
    ap.add_argument(
        "--local-min-scans",
        type=int,
        default=None,
        help="fewer good training scans than this keep plain distances (default: the preset's; "
        "1 = always use the local scale)",
    )
    ap.add_argument(
        "--drop-border-objects",
        choices=["auto", "on", "off"],
        default="auto",
        help="drop foreground parts touching the border (auto: on for Eyecandies only)",
    )
    ap.add_argument(
        "--depth-axis",
        choices=["camera", "plane"],
        default="camera",
        help="what the depth channel measures (pcprep.preprocess's depth_axis)",
    )
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--cache-dir", type=Path, default=Path("runs/cache"))
    args = ap.parse_args()

    import admetrics
    import numpy as np
    import pcprep
    import threedsr
    import torch
    import vqcore
    from threedsr.data import load_split, stack_inputs
    from threedsr.smoothing import smooth_maps

    torch.set_num_threads(args.threads)
    data = data_root(args)
    backbone = vqcore.load_pretrained(args.setup).eval()
    config = threedsr.DetectorConfig.preset("memory", args.setup)
    drop = {"auto": None, "on": True, "off": False}[args.drop_border_objects]
    if args.local_min_scans is not None:
        config = config.replace(memory=config.memory.replace(local_min_scans=args.local_min_scans))
    rows = itertools.product(
        args.category, args.size, args.features, args.scales, args.groups, args.bank,
        args.train_scans, args.local_k, args.modalities, args.modality_fusion,
    )  # fmt: skip
    for category, size, kind, scales, groups, bank, n_train, local_k, modalities, fusion in rows:
        modalities = modalities or config.memory.modalities
        fusion = fusion or config.memory.modality_fusion
        local_k = config.memory.local_k if local_k is None else local_k
        start = time.perf_counter()
        preprocess = config.preprocess.replace(drop_border_objects=drop, depth_axis=args.depth_axis)
        params = preprocess.kwargs(size, pcprep.detect_layout(data))
        split = {
            s: load_split(str(data), category, s, params, cache_dir=str(args.cache_dir))
            for s in ("train", "test")
        }
        scales = scales or ",".join(str(v) for v in config.memory.scales)
        if groups is None:
            names, weights = config.memory.groups, config.memory.weights
        else:
            parts = [g.split(":") for g in groups.split(",")]
            names = tuple(p[0] for p in parts)
            weights = tuple(float(p[1]) if len(p) > 1 else 1.0 for p in parts)
            weights = weights if any(len(p) > 1 for p in parts) else None
        memory_config = config.memory.replace(
            features=kind,
            size=bank,
            scales=tuple(float(v) for v in scales.split(",")),
            groups=names,
            weights=weights,
            local_k=local_k,
            modalities=modalities if kind == "descriptors" and args.setup == "rgbd" else "joint",
            modality_fusion=fusion,
        )
        train = split["train"][:n_train] if n_train else split["train"]
        memory = threedsr.fit_memory(
            stack_inputs(train, args.setup),
            args.setup,
            memory_config,
            backbone=backbone if kind == "encoder" else None,
            seed=config.seed,
        )
        test = split["test"]
        with torch.inference_mode():
            raw = torch.cat(
                [memory(stack_inputs(test[i : i + 8], args.setup)) for i in range(0, len(test), 8)]
            )
        seconds = time.perf_counter() - start
        labels = np.array([p.label for p in test])
        types = np.array([p.defect_type for p in test])
        gt = np.stack([np.zeros(raw.shape[1:], bool) if p.gt is None else p.gt > 0.5 for p in test])
        # Diagnostic: AUPRO counting only ground truth on the object. An object-only map cannot
        # reach the ground truth drawn where a cut or bent part left no surface.
        on_object = gt & np.stack([p.depth > 0.05 for p in test])
        for box in args.box:
            box = box or config.filter_size
            maps = smooth_maps(raw, config.smoothing, box, config.gaussian_sigma)
            scores = maps.flatten(1).amax(1).numpy()
            per_type = {
                t: round(admetrics.image_auroc((types[sel] == t).astype(int), scores[sel]), 4)
                for t in sorted(set(types) - {"good"})
                for sel in [(types == t) | (types == "good")]
            }
            row = {
                "category": category,
                "setup": args.setup,
                "size": size,
                "features": kind,
                "scales": scales if kind == "descriptors" else None,
                "groups": groups or "preset",
                "box": box,
                "bank": int(memory.bank.shape[0]),
                "train_scans": len(train),
                "image_auroc": round(admetrics.image_auroc(labels, scores), 4),
                "per_defect_type": per_type,
                "pixel_auroc": round(admetrics.pixel_auroc(gt, maps.numpy()), 4),
                "aupro": round(admetrics.aupro(gt, maps.numpy()), 4),
                "aupro_object_gt": round(admetrics.aupro(on_object, maps.numpy()), 4),
                "local_k": local_k,
                "modalities": memory_config.modalities,
                "modality_fusion": memory_config.modality_fusion,
                "local_min_scans": memory_config.local_min_scans,
                "local_scale": memory.local_scale is not None,
                "seconds": round(seconds, 1),
                "threads": args.threads,
            }
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
