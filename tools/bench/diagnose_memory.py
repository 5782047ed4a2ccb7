"""Why a descriptor memory misses, on a class's test split: where each scan's maximum lies and
which descriptor group makes the distance there, with pictures.

    uv run python tools/bench/diagnose_memory.py RUN DATA [--category C] [--png out.png]

Imported by ``diagnose.py``, which runs it for ``memory`` detectors. For every test scan it
prints the image score, the rank of the score among the good scans', and the location of the
smoothed map's maximum: inside the ground truth, on the object's rim (3 px band of the
silhouette), inside the object, or on a foreground part that touches the image border (rails
and walls that rise off the support plane are foreground too). For the cells on the defects
and on normal object cells it splits the squared distance to the nearest stored cell by
descriptor group (``surface``, ``colour``, ``texture``, ``interior``; raw squared differences,
before the local and part scales), to tell which group
measures the defect and which one only adds noise. ``--png`` draws, per picked scan, the
input colour, the preprocessed depth on the foreground, the foreground mask with the border
parts in another shade, the ground truth and the map with its maximum marked.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pcprep
import torch
import torch.nn.functional as F
from scipy import ndimage


def _border_parts(fg: np.ndarray) -> np.ndarray:
    """Foreground components (8-connected) that touch the image border."""
    return fg & ~pcprep.drop_border_components(fg)


def _group_shares(det: Any, x: torch.Tensor) -> tuple[torch.Tensor, list[str]]:
    """(B, G, h, w): each group's squared difference between a cell and its nearest row; with
    depth and colour searched apart, the nearest row of the group's own part."""
    from threedsr.memory.descriptors import group_slices
    from threedsr.memory.knn import nearest_rows

    mem = det.memory
    feats = mem.features.extract(mem.setup, x)
    b, c, h, w = feats.shape
    q = feats.permute(0, 2, 3, 1).reshape(b, h * w, c)
    if mem.center is not None:
        q = (q - mem.center) / mem.scale
    slices = group_slices(mem.setup, len(mem.features.scales), mem.features.groups)
    out = torch.zeros(b, len(slices), h * w)
    for i in range(b):
        diff2 = torch.empty_like(q[i])
        for cols, _ in mem.part_columns():
            cols = torch.arange(c) if cols is None else cols
            _, nearest = nearest_rows(q[i][:, cols], mem.bank[:, cols])
            diff2[:, cols] = (q[i][:, cols] - mem.bank[nearest][:, cols]) ** 2
        for g, sl in enumerate(slices.values()):
            out[i, g] = diff2[:, sl].sum(1)
    return out.view(b, len(slices), h, w), list(slices)


def diagnose_memory(
    run: Path, data: Path, category: str | None = None, png: Path | None = None
) -> dict[str, Any]:
    import threedsr
    from threedsr.data import foreground_of, load_split, stack_inputs

    det = threedsr.Detector.load(run, device="cpu")
    if det.memory is None:
        raise SystemExit(f"error: {run}: the {det.method} detector has no descriptor memory")
    cat = category or det.category
    test = load_split(str(data), cat, "test", det.preprocess)
    x = stack_inputs(test, det.setup)
    with torch.inference_mode():
        pred = det.predict(x)
    scores = pred.scores.numpy()
    labels = np.array([p.label for p in test])
    good_scores = np.sort(scores[labels == 0])
    rows, spots = [], {"good": {}, "defective": {}}
    shares: dict[str, list[np.ndarray]] = {"defect": [], "normal": []}
    groups: list[str] = []
    for i, p in enumerate(test):
        fg = foreground_of(p)
        border = _border_parts(fg)
        gt = p.gt > 0.5 if p.gt is not None else np.zeros_like(fg)
        rim = fg & ~ndimage.binary_erosion(fg, np.ones((7, 7), bool))
        m = pred.maps[i].numpy()
        r, c = np.unravel_index(int(m.argmax()), m.shape)
        spot = (
            "gt" if gt[r, c] else "border part" if border[r, c] else "rim" if rim[r, c] else
            "interior" if fg[r, c] else "background"
        )  # fmt: skip
        kind = "good" if p.label == 0 else "defective"
        spots[kind][spot] = spots[kind].get(spot, 0) + 1
        rank = float((good_scores < scores[i]).mean())
        rows.append(
            {
                "scan": p.path.name,
                "type": p.defect_type,
                "score": float(scores[i]),
                "above_good_share": rank,
                "max_at": spot,
            }
        )
        sh, groups = _group_shares(det, x[i : i + 1])
        size = sh.shape[2:]
        at = sh[0, :, r * size[0] // m.shape[0], c * size[1] // m.shape[1]]
        rows[-1]["groups_at_max"] = {
            g: round(float(v), 3)
            for g, v in zip(groups, at / at.sum().clamp_min(1e-12), strict=True)
        }
        gt_c = F.adaptive_max_pool2d(torch.from_numpy(gt)[None, None].float(), size)[0, 0] > 0.5
        fg_c = F.adaptive_avg_pool2d(torch.from_numpy(fg)[None, None].float(), size)[0, 0] > 0.5
        if gt_c.any():
            shares["defect"].append(sh[0][:, gt_c].numpy())
        shares["normal"].append(sh[0][:, fg_c & ~gt_c].numpy())
    share_summary = {}
    for where, parts in shares.items():
        if parts:
            allc = np.concatenate(parts, axis=1)
            share_summary[where] = {
                g: round(float(allc[k].mean()), 3) for k, g in enumerate(groups)
            }
    if png is not None:
        _draw(test, pred.maps.numpy(), scores, png)
    return {"scans": rows, "max_location": spots, "group_sq_distance": share_summary}


def _draw(test: list[Any], maps: np.ndarray, scores: np.ndarray, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from threedsr.data import foreground_of

    good = [i for i, p in enumerate(test) if p.label == 0]
    bad = [i for i, p in enumerate(test) if p.label == 1]
    pick = sorted(good, key=lambda i: -scores[i])[:3] + sorted(bad, key=lambda i: scores[i])[:4]
    on = np.stack([foreground_of(p) for p in test])
    vmin, vmax = (float(v) for v in np.percentile(maps[on], [50, 99.9]))
    fig, ax = plt.subplots(len(pick), 5, figsize=(12.5, 2.6 * len(pick)))
    for row, i in enumerate(pick):
        p, fg = test[i], foreground_of(test[i])
        border = _border_parts(fg)
        ax[row, 0].imshow(p.rgb)
        ax[row, 0].set_title(f"{p.path.name} {p.defect_type} {scores[i]:.2f}", fontsize=8)
        ax[row, 1].imshow(np.where(fg, p.depth, np.nan))
        ax[row, 1].set_title("depth on foreground", fontsize=8)
        ax[row, 2].imshow(fg.astype(float) + border, vmin=0, vmax=2)
        ax[row, 2].set_title("foreground (border parts bright)", fontsize=8)
        ax[row, 3].imshow(p.gt if p.gt is not None else np.zeros_like(fg))
        ax[row, 3].set_title("ground truth", fontsize=8)
        ax[row, 4].imshow(maps[i], vmin=vmin, vmax=vmax, cmap="jet")
        r, c = np.unravel_index(int(maps[i].argmax()), maps[i].shape)
        ax[row, 4].plot(c, r, "w+", ms=12, mew=2)
        ax[row, 4].set_title("map, maximum +", fontsize=8)
        for a in ax[row]:
            a.axis("off")
    fig.tight_layout()
    fig.savefig(png, dpi=70)


def print_summary(s: dict[str, Any]) -> None:
    for row in s["scans"]:
        print(f"{row['scan']:16s} {row['type']:28s} {row['score']:8.3f} "
              f"above {row['above_good_share']:.2f} of good  max at {row['max_at']:11s} "
              f"{row['groups_at_max']}")  # fmt: skip
    print("max location:", s["max_location"])
    print("mean squared distance per group:", s["group_sq_distance"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("data", type=Path)
    ap.add_argument("--category", default=None)
    ap.add_argument("--png", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    s = diagnose_memory(args.run, args.data, args.category, args.png)
    print_summary(s)
    if args.json:
        args.json.write_text(json.dumps(s, indent=1) + "\n")


if __name__ == "__main__":
    main()
