"""Does the memory detect better with more good cells stored? Learning curves of the rgbd memory
over the number of good scans in its bank and over its cell cap, on implanted defects.

    uv run python tools/bench/bank_curve.py DATA CATEGORY [--fractions 0.5 0.75 1]
        [--with-validation] [--sizes 100000 200000] [--json OUT]

The class's good validation scans are split by index parity: the odd half (B) gets the twins of
``implant.py`` (dent, bump, colour, both; 4 copies, seed 0) and is never stored. Banks:
the first ``fraction`` of the training scans at the preset's cap; with ``--with-validation`` also
every training scan plus the even half (A), which asks whether ``train`` should store the
validation split too; with ``--sizes`` every training scan at each cap (``memory.size``: a
seeded random subset of the object cells is kept above it). Each bank is scored as in
``implant.py`` (image AUROC of B's good scans against their twins, per kind and pooled; P-AUROC
and AUPRO of all maps), with the query time per scan.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import time
from pathlib import Path

import torch
from implant import implant, memory_maps, score_twins

KINDS = ("dent", "bump", "colour", "both")


def split_validation(validation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(A, B): the even-indexed scans, which a bank may store, and the odd-indexed ones, which
    get the twins and are never stored."""
    return validation[0::2], validation[1::2]


def banks(
    train: torch.Tensor,
    stored_validation: torch.Tensor,
    fractions: list[float],
    with_validation: bool,
    sizes: list[int],
    default_size: int,
) -> dict[str, tuple[torch.Tensor, int]]:
    """Named (scans, cell cap) banks: training prefixes at the default cap, training plus the
    stored validation half, and every training scan at each of ``sizes``.

    Example:
        >>> b = banks(torch.zeros(8, 1), torch.ones(2, 1), [0.5, 1.0], True, [10], 5)
        >>> {name: (len(x), cap) for name, (x, cap) in b.items()}
        {'train[:4]': (4, 5), 'train[:8]': (8, 5), 'train+A (10)': (10, 5), 'train, cap 10': (8, 10)}
    """
    n = len(train)
    out = {}
    for fraction in fractions:
        k = max(1, round(fraction * n))
        out[f"train[:{k}]"] = (train[:k], default_size)
    if with_validation:
        out[f"train+A ({n + len(stored_validation)})"] = (
            torch.cat([train, stored_validation]),
            default_size,
        )
    for size in sizes:
        out[f"train, cap {size}"] = (train, size)
    return out


def run(data: str, category: str, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    from threedsr import DetectorConfig, MemoryConfig
    from threedsr.data import load_split, stack_inputs
    from threedsr.memory import fit_memory
    from threedsr.smoothing import smooth_maps

    config = DetectorConfig.for_memory("rgbd", data_root=data, category=category)
    kwargs = config.preprocess_kwargs()

    def good(split: str) -> torch.Tensor:
        return stack_inputs(
            [p for p in load_split(data, category, split, kwargs) if p.label == 0], "rgbd"
        )

    train, (stored, held_out) = good("train"), split_validation(good("validation"))
    twins, kinds, masks = implant(held_out, 4, seed=0, kinds_cycle=KINDS)
    gts = torch.cat([torch.zeros(len(held_out), *masks.shape[1:]), masks]).numpy() > 0.5
    results = {}
    preset = MemoryConfig.for_setup("rgbd")
    for name, (bank, size) in banks(
        train, stored, args.fractions, args.with_validation, args.sizes, preset.size
    ).items():
        t0 = time.perf_counter()
        memory = fit_memory(bank, "rgbd", preset.replace(size=size), seed=0)
        t1 = time.perf_counter()
        maps = memory_maps(memory, held_out, twins)
        per_scan_ms = 1000 * (time.perf_counter() - t1) / (len(held_out) + len(twins))
        m_good, m_bad = (smooth_maps(m, "box", config.filter_size, 4.0) for m in maps)
        row = score_twins(m_good, m_bad, kinds, KINDS, gts)
        row.update(
            cells=int(memory.bank.shape[0]), fit_s=round(t1 - t0, 1), ms_per_scan=round(per_scan_ms)
        )
        results[name] = row
        print(f"{category} {name:22s} {row}", flush=True)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("category")
    ap.add_argument("--fractions", type=float, nargs="*", default=[0.5, 0.75, 1.0])
    ap.add_argument("--with-validation", action="store_true")
    ap.add_argument("--sizes", type=int, nargs="*", default=[])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results = run(args.data, args.category, args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
