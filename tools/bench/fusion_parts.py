"""The joint search as a third part beside depth and colour, scored on implanted defects.

    uv run python tools/bench/fusion_parts.py DATA CATEGORY [KIND,KIND,...]

Fits the rgbd memory twice on the same bank (separate parts, and one joint search), measures each
part's per-scan-maximum mean and spread on the same 16 left-out training scans as
``fit_memory``, and scores implanted twins (``implant.py``'s kinds, default dent, bump, colour,
both) with the largest z-score of the depth and colour parts (``max of 2``: the default map), of
all three (``max of 3``) and of the joint part alone. An experiment, not an option: session 15's
figures in docs/benchmarks.md.
"""

import os
import sys

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from implant import implant, score_twins
from threedsr import DetectorConfig, MemoryConfig
from threedsr.data import load_split, stack_inputs
from threedsr.memory import fit_memory
from threedsr.memory.features import object_cells
from threedsr.memory.torch_model import FeatureMemory
from threedsr.smoothing import smooth_maps

data, cat = sys.argv[1], sys.argv[2]
kinds = tuple(sys.argv[3].split(",")) if len(sys.argv) > 3 else ("dent", "bump", "colour", "both")
torch.set_num_threads(int(os.environ.get("THREADS", "2")))
cfg = DetectorConfig.for_memory("rgbd", data_root=data, category=cat, image_size=256)
kw = cfg.preprocess_kwargs()
train = stack_inputs([p for p in load_split(data, cat, "train", kw) if p.label == 0], "rgbd")
good = stack_inputs([p for p in load_split(data, cat, "validation", kw) if p.label == 0], "rgbd")
bad, bkinds, bmasks = implant(good, 3, kinds_cycle=kinds)
mem = fit_memory(train, "rgbd", MemoryConfig.for_setup("rgbd"), seed=0)
mj = fit_memory(train, "rgbd", MemoryConfig.for_setup("rgbd", modalities="joint"), seed=0)
assert torch.equal(mem.bank, mj.bank)
parts = [
    FeatureMemory(mem.bank[:, c], "rgbd", mem.image_ids, local_scale=local)
    for c, local in mem.part_columns()
]
parts.append(FeatureMemory(mj.bank, "rgbd", mj.image_ids, local_scale=mj.local_scale))
cols = [c for c, _ in mem.part_columns()] + [torch.arange(mem.bank.shape[1])]


def cell_parts(x, exclude=None):
    out = []
    for s in range(0, len(x), 4):
        xb = x[s : s + 4]
        f = mem.features.extract("rgbd", xb)
        w = object_cells("rgbd", xb, (f.shape[2], f.shape[3]))
        q = (f - mem.center.view(1, -1, 1, 1)) / mem.scale.view(1, -1, 1, 1)
        ex = None if exclude is None else exclude[s : s + 4]
        d = torch.stack(
            [p.distance(q[:, c], where=w, exclude=ex) for p, c in zip(parts, cols, strict=True)], 1
        )
        out.append((d, w))
    return torch.cat([o[0] for o in out]), torch.cat([o[1] for o in out])


picks = torch.linspace(0, len(train) - 1, min(16, len(train))).round().long()
with torch.no_grad():
    dl, _ = cell_parts(train[picks], exclude=picks)
    mx = dl.flatten(2).amax(2)
    m, s = mx.mean(0), mx.std(0)
    print("part stats", m, s, "vs fit", mem.part_center, mem.part_scale, flush=True)
    dg, wg = cell_parts(good)
    db, wb = cell_parts(bad)


def up(x):
    return F.interpolate(x[:, None], size=(256, 256), mode="bilinear", align_corners=False)[:, 0]


def rule(d, w, which):
    z = (d[:, which] - m[which].view(1, -1, 1, 1)) / s[which].view(1, -1, 1, 1)
    C = float((m[which] / s[which]).max())
    return up((z.amax(1) + C).clamp_min(0) * w)


def score(name, mg, mb):
    sg, sb = smooth_maps(mg, "box", 11, 4.0), smooth_maps(mb, "box", 11, 4.0)
    gts = torch.cat([torch.zeros(len(sg), *bmasks.shape[1:]), bmasks]).numpy() > 0.5
    row = score_twins(sg, sb, bkinds, kinds, gts)
    print(f"{cat} {name:10s} {row}", flush=True)


for name, which in (("max2", [0, 1]), ("max3", [0, 1, 2]), ("joint-z", [2])):
    score(name, rule(dg, wg, which), rule(db, wb, which))
