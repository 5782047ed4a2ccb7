"""Choose memory options without test labels: defects implanted into a class's good validation
scans, which the memory never stores.

    uv run python tools/bench/implant.py DATA CATEGORY [--configs JSON] [--copies 3] [--box 11 ...]
        [--kinds dent bump colour both] [--pixel]

A real class's public test half holds a dozen defective scans, so its image AUROC has a
standard error near 0.1 and cannot tell options apart that differ by less (CandyCane: issue 23).
Here every good validation scan gets ``--copies`` defective twins, each with one blob on the
object (radius 3-8 px at the model size, smoothed Perlin-free disc): a dent or a bump pushed
into the depth (``threedsr.dsr.augment.deform_depth``, 1-4 % of the object's depth range) or a
patch of another colour blended in (``paint_rgb``, opacity 0.6-1); with ``--kinds ... both``
also a dent and a patch in the same disc, as a cut or a hole changes shape and colour together;
with ``swap`` the colours of another place of the same object pasted into the disc, the depth
unchanged: every colour and every shape is one the object has, only their pairing is new
(``--kinds`` picks the kinds the twins cycle through, so the default three reproduce earlier runs). The figure is the image
AUROC of the good scans against their twins, per kind: hundreds of pairs, the same scans on
both sides, so the nuisance between scans (pose, tint, lighting) is the real one.

It measures sensitivity to small local changes of the kinds the descriptors are meant to see; it
is no substitute for real defects (Eyecandies' ``normals`` change the shading only). Options
are compared here first and confirmed on the real test half second.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import time
from typing import Any

import admetrics
import numpy as np
import torch
import torch.nn.functional as F

KINDS = ("dent", "bump", "colour", "both", "swap")
DEFAULT_KINDS = ("dent", "bump", "colour")


def implant(
    x: torch.Tensor, copies: int, seed: int = 0, kinds_cycle: tuple[str, ...] = DEFAULT_KINDS
) -> tuple[torch.Tensor, list[str], torch.Tensor]:
    """``copies`` defective twins of each (C=4 rgbd) scan: (inputs, kinds, masks)."""
    from threedsr.dsr.augment import deform_depth, paint_rgb

    rng = np.random.default_rng(seed)
    n, _, h, w = x.shape
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    outs, kinds, masks = [], [], []
    for i in range(n):
        fg = x[i, 0] > 0.05
        # centres at least 2 px inside the silhouette
        inner = -F.max_pool2d(-fg[None, None].float(), 5, 1, 2)[0, 0] > 0.5
        cells = inner.nonzero()
        # Sources of a swapped patch: a whole disc of radius 8 on the object.
        deep = (-F.max_pool2d(-fg[None, None].float(), 17, 1, 8)[0, 0] > 0.5).nonzero()
        deep = deep if len(deep) else cells
        for k in range(copies):
            kind = kinds_cycle[(i * copies + k) % len(kinds_cycle)]
            cy, cx = cells[rng.integers(len(cells))].tolist()
            radius = rng.uniform(3, 8)
            m = (((yy - cy) ** 2 + (xx - cx) ** 2) <= radius**2) & fg
            m = m[None, None].float()
            xi = x[i : i + 1]
            if kind in ("colour", "both"):
                colour = torch.from_numpy(rng.uniform(0, 1, 3).astype(np.float32))
                paint = colour.view(1, 3, 1, 1).expand(1, 3, h, w)
                xi = paint_rgb(xi, m, paint, np.array([rng.uniform(0.6, 1.0)]), first=1)
            if kind == "swap":
                sy, sx = deep[rng.integers(len(deep))].tolist()
                moved = torch.roll(xi[:, 1:4], shifts=(cy - sy, cx - sx), dims=(2, 3))
                xi = paint_rgb(xi, m, moved, np.array([1.0]), first=1)
            if kind in ("dent", "bump", "both"):
                span = float(xi[0, 0][fg].max() - xi[0, 0][fg].min())
                amp = rng.uniform(0.01, 0.04) * span * (-1 if kind in ("dent", "both") else 1)
                xi = deform_depth(xi, m, np.array([amp]))
            outs.append(xi)
            kinds.append(kind)
            masks.append(m[0, 0])
    return torch.cat(outs), kinds, torch.stack(masks)


def score_twins(
    m_good: torch.Tensor,
    m_bad: torch.Tensor,
    kinds: list[str],
    kinds_cycle: tuple[str, ...],
    gts: np.ndarray | None = None,
) -> dict[str, float]:
    """Image AUROC of the good scans' smoothed maps against each kind's twins and all twins;
    with ``gts`` ((N_good + N_bad, H, W) bool) also P-AUROC and AUPRO of all maps."""
    s_good, s_bad = (m.flatten(1).amax(1).numpy() for m in (m_good, m_bad))
    row = {}
    for kind in kinds_cycle:
        sel = np.array([k == kind for k in kinds])
        labels = np.r_[np.zeros(len(s_good)), np.ones(sel.sum())]
        row[kind] = round(admetrics.image_auroc(labels, np.r_[s_good, s_bad[sel]]), 3)
    labels = np.r_[np.zeros(len(s_good)), np.ones(len(s_bad))]
    row["all"] = round(admetrics.image_auroc(labels, np.r_[s_good, s_bad]), 3)
    if gts is not None:
        maps = torch.cat([m_good, m_bad]).numpy()
        row["P-AUROC"] = round(admetrics.pixel_auroc(gts, maps), 4)
        row["AUPRO"] = round(admetrics.aupro(gts, maps), 4)
    return row


def memory_maps(memory: torch.nn.Module, *inputs: torch.Tensor) -> list[torch.Tensor]:
    """The memory's raw distance maps of each (N, C, H, W) input, four scans at a time."""
    with torch.no_grad():
        return [torch.cat([memory(x[i : i + 4]) for i in range(0, len(x), 4)]) for x in inputs]


def evaluate_configs(
    train: torch.Tensor,
    good: torch.Tensor,
    configs: dict[str, dict[str, Any]],
    copies: int,
    kinds_cycle: tuple[str, ...] = DEFAULT_KINDS,
    boxes: tuple[int, ...] = (11,),
    pixel: bool = False,
) -> dict[str, dict[str, float]]:
    from threedsr import MemoryConfig
    from threedsr.memory import fit_memory
    from threedsr.smoothing import smooth_maps

    bad, kinds, masks = implant(good, copies, kinds_cycle=kinds_cycle)
    # Good scans have no defective pixel: their masks are empty.
    gts = torch.cat([torch.zeros(len(good), *masks.shape[1:]), masks]).numpy() > 0.5
    results = {}
    for name, overrides in configs.items():
        t0 = time.time()
        # Overrides of the rgbd preset's memory, so that {} is what `train` fits.
        memory = fit_memory(train, "rgbd", MemoryConfig.for_setup("rgbd", **overrides), seed=0)

        raw_good, raw_bad = memory_maps(memory, good, bad)
        for box in boxes:
            m_good, m_bad = (smooth_maps(m, "box", box, 4.0) for m in (raw_good, raw_bad))
            row = score_twins(m_good, m_bad, kinds, kinds_cycle, gts if pixel else None)
            key = name if boxes == (11,) else f"{name} box {box}"
            results[key] = row
            print(f"{key:24s} {row}  ({time.time() - t0:.0f} s)", flush=True)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("category")
    ap.add_argument(
        "--configs",
        default='{"default": {}}',
        help="name -> MemoryConfig fields over the rgbd preset's",
    )
    ap.add_argument("--copies", type=int, default=3)
    ap.add_argument("--kinds", nargs="+", choices=KINDS, default=list(DEFAULT_KINDS))
    ap.add_argument(
        "--box", type=int, nargs="+", default=[11], help="smoothing box sides, scored on one fit"
    )
    ap.add_argument(
        "--pixel", action="store_true", help="also P-AUROC and AUPRO of all twins' smoothed maps"
    )
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from threedsr import DetectorConfig
    from threedsr.data import load_split, stack_inputs

    cfg = DetectorConfig.for_memory(
        "rgbd", data_root=args.data, category=args.category, image_size=args.size
    )
    kw = cfg.preprocess_kwargs()
    train = stack_inputs(
        [p for p in load_split(args.data, args.category, "train", kw) if p.label == 0], "rgbd"
    )
    good = stack_inputs(
        [p for p in load_split(args.data, args.category, "validation", kw) if p.label == 0],
        "rgbd",
    )
    print(f"{args.category}: {len(train)} training scans, {len(good)} good validation scans")
    results = evaluate_configs(
        train,
        good,
        json.loads(args.configs),
        args.copies,
        tuple(args.kinds),
        tuple(args.box),
        args.pixel,
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
