"""How often the fast and the reference distance forms pick different codes (issue 25).

Encodes real scans with each shipped backbone (vqcore's pretrained rgbd / depth / rgb) and, at
both code levels, compares the nearest code of every pre-quantisation feature under
``nearest_codes(distance="fast")`` and ``distance="reference"`` (fp32, this machine's CPU). A
disagreement is a near-tie that the two roundings resolve differently; ``gap < 1e-6`` counts the
rows whose two nearest codes are that close (relative to the row's squared norm, float64).

    THREEDSR_CABLE_GLAND=/work/data uv run python tools/bench/distance_forms.py --n 8
"""

from __future__ import annotations

import argparse
import os

import pcprep
import torch
import vqcore
from threedsr import DetectorConfig
from threedsr.data import stack_inputs


def scans(root: str, category: str, n: int, setup: str) -> torch.Tensor:
    """The first ``n`` test scans of ``category`` (every defect type in turn), preprocessed as
    the setup's memory preset does."""
    refs = list(pcprep.index_dataset(root, category, "test"))
    by_type: dict[str, list] = {}
    for r in refs:
        by_type.setdefault(r.defect_type, []).append(r)
    picked = [r for group in zip(*by_type.values(), strict=False) for r in group][:n]
    params = DetectorConfig.for_memory(setup, data_root=root).preprocess_kwargs()
    return stack_inputs(list(pcprep.preprocess_refs(picked, None, **params)), setup)


def compare(flat: torch.Tensor, codebook: torch.Tensor) -> dict[str, float]:
    fast = vqcore.nearest_codes(flat, codebook)
    ref = vqcore.nearest_codes(flat, codebook, distance="reference")
    exact = torch.cdist(flat.double(), codebook.double()) ** 2
    two = exact.topk(2, dim=1, largest=False).values
    rel_gap = (two[:, 1] - two[:, 0]) / flat.double().square().sum(1).clamp_min(1e-12)
    return {
        "rows": flat.shape[0],
        "differ": int((fast != ref).sum()),
        "fast_wrong": int((fast != exact.argmin(1)).sum()),
        "ref_wrong": int((ref != exact.argmin(1)).sum()),
        "near_ties": int((rel_gap < 1e-6).sum()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("THREEDSR_CABLE_GLAND", "/work/data"))
    ap.add_argument("--category", default="cable_gland")
    ap.add_argument("--n", type=int, default=8)
    args = ap.parse_args()
    print(
        "| setup | level | rows | fast != reference | fast != float64 | reference != float64 "
        "| rows with gap < 1e-6 |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for setup in ("rgbd", "depth", "rgb"):
        bb = vqcore.load_pretrained(setup)
        x = scans(args.data, args.category, args.n, setup)
        with torch.no_grad():
            enc = bb.encode(x)
        for level, f, vq in (("top", enc.f_top, bb.vq_top), ("bottom", enc.f_bot, bb.vq_bot)):
            flat = f.permute(0, 2, 3, 1).reshape(-1, f.shape[1]).float()
            r = compare(flat, vq.codebook.detach().float())
            print(
                f"| {setup} | {level} | {r['rows']} | {r['differ']} | {r['fast_wrong']} | "
                f"{r['ref_wrong']} | {r['near_ties']} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
