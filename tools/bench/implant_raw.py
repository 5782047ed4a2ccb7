"""Choose preprocessing options without test labels: metric defects implanted into the raw point
clouds of a class's good validation scans, then every option preprocesses the same twins.

    uv run python tools/bench/implant_raw.py DATA CATEGORY [--axes camera plane] [--copies 4]

``implant.py`` implants into the model input, whose depth is already normalised per scan; that
cannot compare two preprocessings, whose normalised depths differ (``depth_axis``: a dent of 2 %
of a CandyCane's camera-z range is 10-20 mm, of its height above the belt 0.5 mm). Here a twin
is made before preprocessing: a disc on the object (radius 3-8 px at the model size) whose
points move along the background plane's normal by 5-20 % of the object's height above the plane
(its 99th percentile; a dent away from the camera, a bump towards it, a smooth dome profile),
and/or whose colour is blended towards a random one (opacity 0.6-1). Each option then prepares
the training scans, the good scans and their twins, fits the rgbd memory preset, and is scored
as in ``implant.py`` (image AUROC of the good scans against their twins, per kind and pooled;
P-AUROC and AUPRO of all maps).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch
from implant import memory_maps, score_twins
from scipy import ndimage

KINDS = ("dent", "bump", "colour", "both")


def _disc_profile(shape: tuple[int, int], cy: float, cx: float, radius: float) -> np.ndarray:
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    r2 = ((yy - cy) ** 2 + (xx - cx) ** 2) / radius**2
    return np.where(r2 <= 1.0, (1.0 - r2) ** 2, 0.0)


def implant_sample(sample, prepared, kind: str, rng: np.random.Generator):
    """A defective twin of the raw ``sample`` (``prepared``: the same scan at the model size,
    for the object mask and the plane) and its native-resolution mask."""
    import pcprep

    size = prepared.depth.shape[0]
    h, w = sample.shape
    fg_model = prepared.foreground
    inner = np.argwhere(ndimage.binary_erosion(fg_model, iterations=2))  # 2 px inside
    cy, cx = inner[rng.integers(len(inner))] + 0.5
    scale_y, scale_x = h / size, w / size
    radius = rng.uniform(3, 8)
    profile = _disc_profile((h, w), cy * scale_y, cx * scale_x, radius * (scale_y + scale_x) / 2)
    native_fg = pcprep.resize_mask(fg_model, (h, w), mode="nearest") > 0.5
    valid = (sample.xyz != 0).any(-1)
    profile = profile * (native_fg & valid)
    twin = copy.copy(sample)
    normal, offset = prepared.plane[:3], float(prepared.plane[3])
    towards_camera = normal * (1.0 if offset >= 0 else -1.0)
    if kind in ("dent", "bump", "both"):
        height = pcprep.plane_height(sample.xyz[native_fg & valid], prepared.plane)
        amplitude = rng.uniform(0.05, 0.2) * float(np.percentile(height, 99))
        amplitude *= 1.0 if kind == "bump" else -1.0
        shift = (amplitude * profile)[..., None] * towards_camera[None, None, :]
        twin.xyz = (sample.xyz + shift).astype(np.float32)
    if kind in ("colour", "both"):
        colour = rng.uniform(0, 255, 3)
        alpha = (rng.uniform(0.6, 1.0) * (profile > 0))[..., None]
        twin.rgb = np.clip((1 - alpha) * sample.rgb + alpha * colour, 0, 255).astype(np.uint8)
    return twin, profile > 0


def run(data: str, category: str, axes: list[str], copies: int, size: int) -> dict:
    import pcprep
    from threedsr import DetectorConfig, MemoryConfig
    from threedsr.data import load_split, stack_inputs
    from threedsr.memory import fit_memory
    from threedsr.smoothing import smooth_maps

    base = DetectorConfig.for_memory("rgbd", data_root=data, category=category, image_size=size)
    refs = [r for r in pcprep.index_dataset(data, category, "validation") if r.label == 0]
    reference_kwargs = base.preprocess_kwargs()
    rng = np.random.default_rng(0)
    goods, twins, kinds, masks = [], [], [], []
    for i, ref in enumerate(refs):
        sample = ref.load()
        prepared = pcprep.preprocess(sample, **reference_kwargs)
        goods.append(sample)
        for k in range(copies):
            kind = KINDS[(i * copies + k) % len(KINDS)]
            twin, mask = implant_sample(sample, prepared, kind, rng)
            twins.append(twin)
            kinds.append(kind)
            masks.append(pcprep.resize_mask(mask, size, mode="area") > 0.5)
    gts = np.concatenate([np.zeros((len(goods), size, size), bool), np.stack(masks)])
    results = {}
    for axis in axes:
        t0 = time.time()
        config = base.replace(preprocess=base.preprocess.replace(depth_axis=axis))
        kwargs = config.preprocess_kwargs()
        train = stack_inputs(
            [p for p in load_split(data, category, "train", kwargs) if p.label == 0], "rgbd"
        )
        good, bad = (
            stack_inputs([pcprep.preprocess(s, **kwargs) for s in group], "rgbd")
            for group in (goods, twins)
        )
        memory = fit_memory(train, "rgbd", MemoryConfig.for_setup("rgbd"), seed=0)
        raw_good, raw_bad = memory_maps(memory, good, bad)
        m_good, m_bad = (smooth_maps(m, "box", 11, 4.0) for m in (raw_good, raw_bad))
        row = score_twins(m_good, m_bad, kinds, KINDS, gts)
        results[axis] = row
        print(f"{category} {axis:8s} {row}  ({time.time() - t0:.0f} s)", flush=True)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("category")
    ap.add_argument("--axes", nargs="+", default=["camera", "plane"])
    ap.add_argument("--copies", type=int, default=4)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results = run(args.data, args.category, args.axes, args.copies, args.size)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
