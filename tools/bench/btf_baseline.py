"""BTF's FPFH detector ("Back to the Feature", Horwitz & Hoshen, CVPRW 2023), measured on the
same scans as threedsr, so that the comparison in the README is a measurement, not a quote.

    uv run --with open3d-cpu --with libusb-package python tools/bench/btf_baseline.py \\
        $THREEDSR_CABLE_GLAND --category cable_gland --json btf-cable_gland.json

BTF's RGB + FPFH variant needs ImageNet WideResNet-50 weights, which nothing here may download,
so this is its geometry-only variant (the paper's "FPFH" rows). What it does, after the paper
and its PatchCore memory:

1. each scan's organized point cloud resized to 224 x 224 (nearest);
2. the background removed: a RANSAC plane through the points of a 10-pixel border strip (points
   within 5 mm of it dropped), then the largest DBSCAN cluster kept (eps 6 mm, 30 points);
3. open3d FPFH at voxel size 0.05 (normals from 30 neighbours within 0.1 m, histograms from 100
   within 0.25 m), 33 numbers per point, zeros where no point is;
4. a 3 x 3 average, then an adaptive average to 28 x 28 patches;
5. the memory: every training patch, thinned by greedy k-centre to ``--coreset`` of them;
6. a patch's score is its nearest-neighbour distance; the image score is the largest, reweighted
   by how dense the memory is around its neighbour (PatchCore, 3 neighbours); the map is the
   patch scores upsampled bilinearly to 224 and blurred with a Gaussian of sigma 4.

Metrics (admetrics) are computed at 224 x 224 against the nearest-resized ground truth.
open3d needs ``libusb-1.0.so.0``, which a bare machine lacks; the ``libusb-package`` wheel ships
it, and this script loads it before open3d.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

SIZE = 224
PATCHES = 28
VOXEL = 0.05


def open3d_module():
    """open3d, with libusb loaded first when the system has none (see the module docstring)."""
    import ctypes

    try:
        import libusb_package

        ctypes.CDLL(str(libusb_package.get_library_path()), mode=ctypes.RTLD_GLOBAL)
    except ImportError:
        pass
    import open3d

    open3d.utility.set_verbosity_level(open3d.utility.VerbosityLevel.Error)
    open3d.utility.random.seed(0)
    return open3d


def remove_background(o3d, xyz: np.ndarray, border: int = 10) -> np.ndarray:
    """``xyz`` (H, W, 3) with the support plane and all but the largest cluster set to zero."""
    valid = (xyz != 0).any(-1)
    strip = np.zeros(valid.shape, bool)
    strip[:border] = strip[-border:] = strip[:, :border] = strip[:, -border:] = True
    edge = xyz[strip & valid].astype(np.float64)
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(edge))
    (a, b, c, d), _ = cloud.segment_plane(distance_threshold=0.005, ransac_n=3, num_iterations=1000)
    distance = np.abs(xyz @ np.array([a, b, c]) + d) / np.linalg.norm([a, b, c])
    keep = valid & (distance > 0.005)
    points = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(xyz[keep].astype(np.float64)))
    labels = np.asarray(points.cluster_dbscan(eps=0.006, min_points=30))
    if (labels >= 0).any():
        largest = np.bincount(labels[labels >= 0]).argmax()
        rows, cols = np.nonzero(keep)
        drop = labels != largest
        keep[rows[drop], cols[drop]] = False
    return np.where(keep[..., None], xyz, 0.0).astype(np.float32)


def fpfh_map(o3d, xyz: np.ndarray) -> torch.Tensor:
    """(33, H, W) FPFH of every point of ``xyz``; zeros where there is none."""
    h, w, _ = xyz.shape
    flat = xyz.reshape(-1, 3)
    index = np.nonzero((flat != 0).all(axis=1))[0]
    out = np.zeros((h * w, 33), np.float32)
    if index.size:
        cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(flat[index].astype(np.float64)))
        search = o3d.geometry.KDTreeSearchParamHybrid
        cloud.estimate_normals(search(radius=VOXEL * 2, max_nn=30))
        fpfh = o3d.pipelines.registration.compute_fpfh_feature(
            cloud, search(radius=VOXEL * 5, max_nn=100)
        )
        out[index] = np.asarray(fpfh.data).T
    return torch.from_numpy(out.reshape(h, w, 33)).permute(2, 0, 1)


def patch_features(fpfh: torch.Tensor) -> torch.Tensor:
    """(PATCHES**2, 33) patch descriptors of a (33, H, W) FPFH map."""
    pooled = F.adaptive_avg_pool2d(F.avg_pool2d(fpfh[None], 3, stride=1), PATCHES)
    return pooled[0].reshape(fpfh.shape[0], -1).T.contiguous()


def greedy_coreset(bank: torch.Tensor, fraction: float) -> torch.Tensor:
    """Indices of ``fraction`` of ``bank``'s rows chosen by greedy k-centre, starting at row 0.

    Each step adds the row farthest from those chosen so far (ties: the first such row).
    """
    count = max(1, int(len(bank) * fraction))
    chosen = torch.zeros(count, dtype=torch.long)
    nearest = torch.linalg.vector_norm(bank - bank[0], dim=1)
    for i in range(1, count):
        chosen[i] = int(torch.argmax(nearest))
        nearest = torch.minimum(nearest, torch.linalg.vector_norm(bank - bank[chosen[i]], dim=1))
    return chosen


def score_patches(
    patches: torch.Tensor, memory: torch.Tensor, neighbours: int = 3
) -> tuple[float, torch.Tensor]:
    """PatchCore's image score (largest patch distance, density-reweighted) and patch scores."""
    distance = torch.cdist(patches, memory)
    patch_scores, nearest = distance.min(dim=1)
    worst = int(torch.argmax(patch_scores))
    s_star = patch_scores[worst]
    m_star = memory[nearest[worst]]
    around = torch.topk(torch.cdist(m_star[None], memory)[0], neighbours, largest=False).indices
    knn = torch.linalg.vector_norm(patches[worst] - memory[around[1:]], dim=1)
    scale = np.sqrt(patches.shape[1])
    weight = 1.0 - torch.exp(s_star / scale) / torch.exp(knn / scale).sum()
    return float(weight * s_star), patch_scores


def anomaly_map(patch_scores: torch.Tensor) -> np.ndarray:
    grid = patch_scores.reshape(1, 1, PATCHES, PATCHES)
    up = F.interpolate(grid, size=(SIZE, SIZE), mode="bilinear", align_corners=False)[0, 0]
    return ndimage.gaussian_filter(up.numpy().astype(np.float64), sigma=4)


def scan(o3d, ref) -> tuple[torch.Tensor, np.ndarray | None]:
    from pcprep import resize_mask, resize_xyz

    sample = ref.load()
    xyz, _ = resize_xyz(sample.xyz, SIZE)
    gt = None if sample.gt is None else resize_mask(sample.gt, SIZE, mode="nearest") > 0.5
    return patch_features(fpfh_map(o3d, remove_background(o3d, xyz))), gt


def run(data: Path, category: str, coreset: float) -> dict:
    from admetrics.functional import aupro, image_auroc, pixel_auroc
    from pcprep import index_dataset

    o3d = open3d_module()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    start = time.perf_counter()
    bank = torch.cat([scan(o3d, ref)[0] for ref in index_dataset(data, category, "train")])
    features_s = time.perf_counter() - start
    memory = bank[greedy_coreset(bank, coreset)] if coreset < 1 else bank
    fit_s = time.perf_counter() - start
    labels, scores, masks, maps, types = [], [], [], [], []
    start = time.perf_counter()
    refs = index_dataset(data, category, "test")
    for ref in refs:
        patches, gt = scan(o3d, ref)
        score, patch_scores = score_patches(patches, memory)
        labels.append(int(ref.label))
        scores.append(score)
        types.append(ref.defect_type)
        maps.append(anomaly_map(patch_scores))
        masks.append(np.zeros((SIZE, SIZE), bool) if gt is None else gt)
    test_s = time.perf_counter() - start
    per_type: dict[str, float] = {}
    by_type = defaultdict(list)
    for i, t in enumerate(types):
        by_type[t].append(i)
    good = by_type.get("good", [])
    for t, idx in sorted(by_type.items()):
        if t != "good" and good:
            sel = good + idx
            per_type[t] = image_auroc([labels[i] for i in sel], [scores[i] for i in sel])
    return {
        "method": "BTF FPFH (geometry only), 224 px, 28 x 28 patches",
        "category": category,
        "train_scans": int(len(bank) // PATCHES**2),
        "memory_rows": len(memory),
        "coreset": coreset,
        "test_scans": len(refs),
        "i_auroc": image_auroc(labels, scores),
        "p_auroc": pixel_auroc(np.stack(masks), np.stack(maps)),
        "aupro": aupro(np.stack(masks), np.stack(maps)),
        "per_type": per_type,
        "features_s": round(features_s, 1),
        "fit_s": round(fit_s, 1),
        "test_s_per_scan": round(test_s / len(refs), 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("--category", required=True)
    ap.add_argument("--coreset", type=float, default=0.1, help="memory fraction kept (BTF: 0.1)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    result = run(args.data, args.category, args.coreset)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
