"""Why a trained detector misses, stage by stage, on a class's test split.

    uv run python tools/bench/diagnose.py RUN DATA [--category C] [--method M] [--json out.json]

A ``memory`` detector has no network stages: for it this runs ``diagnose_memory.py`` (where
each scan's maximum lies, which descriptor group makes the distance, ``--png`` pictures).

For every stage of the 3DSR forward pass it prints one figure on the defects (inside the
ground truth) against the same figure on normal object pixels:

1. backbone: share of fine (bottom-level) code cells whose code never occurs on the training
   scans' foreground ("novel"): does the code change at a defect;
2. subspace restriction: share of fine cells whose code it changes after re-quantisation, inside
   the ground truth (restored) and on normal foreground (normal codes it should keep);
3. object decoder: mean |object reconstruction - input| on normal foreground pixels, depth and
   RGB apart, next to the general reconstruction's error (what the heads must tell apart);
4. anomaly UNet: mean raw anomaly probability inside the ground truth, on normal foreground and
   on the background;
5. image maxima: where each test scan's smoothed-map maximum lies (inside the ground truth, on
   the object's rim (3 px band of the silhouette), inside the object, background), in the map
   of ``--method`` (default: the detector's own; ``3dsr`` reads a fused detector's network
   alone).
"""

from __future__ import annotations

import os

# Before torch loads: busy-waiting OpenMP workers slow a shared 2-core machine ~10x.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


def _cells(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A pixel mask (B, H, W) as a cell mask: a cell counts when any of its pixels is set."""
    return F.adaptive_max_pool2d(mask[:, None].float(), size)[:, 0] > 0.5


def diagnose(
    run: Path, data: Path, category: str | None = None, method: str | None = None
) -> dict[str, Any]:
    import threedsr
    from threedsr.data import foreground_of, load_split, stack_inputs

    det = threedsr.Detector.load(run, device="cpu", method=method)
    model, setup = det.network, det.setup
    if model is None:
        raise SystemExit(
            f"error: {run} runs the {det.method} method, which has no 3DSR network to diagnose "
            "(use a 3dsr or fused detector)"
        )
    cat = category or det.category
    bb = model.backbone
    train = load_split(str(data), cat, "train", det.preprocess)
    test = load_split(str(data), cat, "test", det.preprocess)

    with torch.inference_mode():
        seen = torch.zeros(bb.vq_bot.codebook.shape[0], dtype=torch.bool)
        for i in range(0, len(train), 8):
            part = train[i : i + 8]
            enc = bb.encode(stack_inputs(part, setup))
            fg = torch.from_numpy(np.stack([foreground_of(p) for p in part]) > 0)
            seen[enc.idx_bot[_cells(fg, enc.idx_bot.shape[1:])]] = True

        acc: dict[str, list[float]] = {}

        def add(key: str, values: torch.Tensor) -> None:
            if values.numel():
                acc.setdefault(key, []).extend(values.float().flatten().tolist())

        where = {"gt": 0, "rim": 0, "interior": 0, "background": 0}
        where_good = dict(where)
        for i in range(0, len(test), 8):
            part = test[i : i + 8]
            x = stack_inputs(part, setup)
            fg = torch.from_numpy(np.stack([foreground_of(p) for p in part]) > 0)
            gt = torch.from_numpy(
                np.stack([(p.gt if p.gt is not None else np.zeros(fg.shape[1:])) for p in part])
                > 0.5
            )
            enc = bb.encode(x)
            out = model(x)
            restored = bb.vq_bot(out.srm_bot).indices
            cells = enc.idx_bot.shape[1:]
            gt_c, fg_c = _cells(gt, cells), _cells(fg, cells)
            normal_c = fg_c & ~gt_c
            novel = ~seen[enc.idx_bot]
            add("code_novel_defect", novel[gt_c])
            add("code_novel_normal", novel[normal_c])
            changed = restored != enc.idx_bot
            add("srm_changes_defect", changed[gt_c])
            add("srm_changes_normal", changed[normal_c])
            normal_px = fg & ~gt
            for name, ch in (("depth", slice(0, 1)), ("rgb", slice(1, 4))):
                if (setup == "depth" and name == "rgb") or (setup == "rgb" and name == "depth"):
                    continue
                chs = ch if setup == "rgbd" else slice(None)
                obj_err = (out.object_recon[:, chs] - x[:, chs]).abs().mean(1)
                gen_err = (out.general_recon[:, chs] - x[:, chs]).abs().mean(1)
                add(f"objdec_err_normal_{name}", obj_err[normal_px])
                add(f"general_err_normal_{name}", gen_err[normal_px])
            raw = out.anomaly_map
            add("unet_defect", raw[gt])
            add("unet_normal", raw[normal_px])
            add("unet_background", raw[~fg])
            pred = det.predict(x)
            rim = fg & ~((-F.max_pool2d(-fg[:, None].float(), 7, 1, 3))[:, 0] > 0.5)
            for b, p in enumerate(part):
                k = int(pred.maps[b].flatten().argmax())
                r, c = divmod(k, pred.maps.shape[-1])
                spot = (
                    "gt" if gt[b, r, c] else
                    "rim" if rim[b, r, c] else
                    "interior" if fg[b, r, c] else "background"
                )  # fmt: skip
                (where_good if p.label == 0 else where)[spot] += 1
    summary = {k: float(np.mean(v)) for k, v in sorted(acc.items())}
    summary["max_location_defective"] = where
    summary["max_location_good"] = where_good
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("data", type=Path)
    ap.add_argument("--category", default=None)
    ap.add_argument(
        "--method",
        default=None,
        choices=["3dsr", "fused"],
        help="the map whose maxima are located (default: the detector's)",
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--png", type=Path, default=None, help="memory detectors: pictures")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import threedsr

    if threedsr.detector_info(args.run).method == "memory":
        from diagnose_memory import diagnose_memory, print_summary

        summary = diagnose_memory(args.run, args.data, args.category, args.png)
        print_summary(summary)
        if args.json:
            args.json.write_text(json.dumps(summary, indent=1) + "\n")
        return
    s = diagnose(args.run, args.data, args.category, args.method)
    for key, value in s.items():
        print(f"{key:28s} {value if isinstance(value, dict) else f'{value:.4f}'}")
    if args.json:
        args.json.write_text(json.dumps(s, indent=1) + "\n")


if __name__ == "__main__":
    main()
