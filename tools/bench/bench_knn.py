"""Benchmark of the descriptor memory's searches on a CPU: cache-sized blocks against whole-bank
row blocks (threedsr before session 17), in one process, alternating, best of ``--repeats``.

- ``nearest``: each query row's nearest bank row (``threedsr.memory.knn.nearest_rows``, what every
  scored cell costs, once per part); queries = the object cells of one 256² scan.
- ``local``: each bank row's k-th nearest row of another scan (``local_scales``, what ``train``
  spends most of its time on, once per part).

The baseline is the earlier code, kept here: vqcore's ``squared_distances`` on blocks of every
bank row (4M distances, 16 MB) followed by ``min`` / masked ``topk``. Both give the same values;
the table reports the largest difference and how often the nearest row's index agrees. The bank
is random (a brute-force search costs the same whatever the data), the widths those of the rgbd
memory's three parts (depth 13, colour 20, every channel 33), or the banks of a trained run
(``--run``).

``--parts`` measures session 18's change instead: the rgbd memory's three parts (depth, colour,
every channel) searched together, the joint part's products the sum of the other two's, against
each part searched alone (the code of sessions 16-17, ``nearest_rows`` / ``local_scales`` once
per part); same process, alternating.

    uv run python tools/bench/bench_knn.py
    uv run python tools/bench/bench_knn.py --run runs/cable_gland
    uv run python tools/bench/bench_knn.py --parts [--run runs/cable_gland]
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import torch
from torch import Tensor
from vqcore.search import DEFAULT_BLOCK_ELEMENTS, ranked_codes, row_chunk, squared_distances

sys.path.insert(0, str(Path(__file__).parent))
from bench_threedsr import alternate_best
from threedsr.memory.knn import nearest_rows
from threedsr.memory.local_scale import local_scales


def whole_bank_nearest(query: Tensor, bank: Tensor) -> tuple[Tensor, Tensor]:
    """The nearest-row search before session 17: row blocks of vqcore's size over every row."""
    chunk = row_chunk(bank.shape[0], DEFAULT_BLOCK_ELEMENTS)
    dist = torch.empty(query.shape[0])
    index = torch.empty(query.shape[0], dtype=torch.long)
    for s in range(0, query.shape[0], chunk):
        v, i = squared_distances(query[s : s + chunk], bank).min(1)
        dist[s : s + chunk], index[s : s + chunk] = v.sqrt(), i
    return dist, index


def whole_bank_local(bank: Tensor, ids: Tensor, k: int) -> Tensor:
    """``local_scales`` before session 17 (vqcore's ranked_codes with the scans excluded)."""
    chunk = row_chunk(bank.shape[0], DEFAULT_BLOCK_ELEMENTS)
    kth, _ = ranked_codes(bank, bank, k, exclude=(ids, ids), block_elements=chunk * bank.shape[0])
    out = kth[:, -1].sqrt()
    return out.clamp_min(max(float(out.median()) * 0.01, 1e-12))


def banks(args: argparse.Namespace) -> list[tuple[str, Tensor, Tensor]]:
    """(name, bank, scan ids) per part."""
    if args.run:
        from threedsr import Detector

        mem = Detector.load(args.run, device="cpu").memory
        assert mem is not None and mem.image_ids is not None, "--run needs a memory detector"
        return [
            (
                f"part {p}",
                mem.bank if cols is None else mem.bank[:, cols].contiguous(),
                mem.image_ids,
            )
            for p, (cols, _) in enumerate(mem.part_columns())
        ]
    g = torch.Generator().manual_seed(0)
    ids = torch.arange(args.bank) * args.scans // args.bank
    return [(f"C={c}", torch.randn(args.bank, c, generator=g), ids) for c in args.channels]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="a memory run folder: its banks instead of random ones")
    parser.add_argument("--bank", type=int, default=100_000, help="random bank rows")
    parser.add_argument("--scans", type=int, default=223, help="training scans of a random bank")
    parser.add_argument("--channels", type=int, nargs="+", default=[13, 20, 33])
    parser.add_argument("--queries", type=int, default=6000, help="object cells of one scan")
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-local", action="store_true", help="nearest-row search only")
    parser.add_argument("--parts", action="store_true", help="parts together against each alone")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{args.threads} threads"
    )
    if args.parts:
        compare_parts(args)
        return
    print("| search | bank | before (s) | blocked (s) | speed-up | max abs diff | index agrees |")
    print("|---|---|---:|---:|---:|---:|---:|")
    g = torch.Generator().manual_seed(1)
    for name, bank, ids in banks(args):
        pick = torch.randint(0, bank.shape[0], (args.queries,), generator=g)
        query = bank[pick] + 0.1 * torch.randn(args.queries, bank.shape[1], generator=g)
        print(row_nearest(name, query, bank, args.repeats), flush=True)
        if not args.skip_local:
            print(row_local(name, bank, ids, args.k), flush=True)


def compare_parts(args: argparse.Namespace) -> None:
    """Every part in one search (shared products) against each part searched alone."""
    if args.run:
        from threedsr import Detector

        mem = Detector.load(args.run, device="cpu").memory
        assert mem is not None and mem.parts is not None, "--parts --run needs a memory with parts"
        bank, ids, parts = mem.bank, mem.image_ids, mem.parts
    else:
        g = torch.Generator().manual_seed(0)
        bank = torch.randn(args.bank, 33, generator=g)
        ids = torch.arange(args.bank) * args.scans // args.bank
        depth = torch.arange(33) < 13
        parts = torch.stack([depth, ~depth, torch.ones(33, dtype=torch.bool)])
    g = torch.Generator().manual_seed(1)
    pick = torch.randint(0, bank.shape[0], (args.queries,), generator=g)
    query = bank[pick] + 0.1 * torch.randn(args.queries, bank.shape[1], generator=g)
    alone = [(bank[:, p].contiguous(), p) for p in parts]
    name = f"{tuple(bank.shape)}, parts of {parts.sum(1).tolist()} channels"
    print("| search | bank | each part alone (s) | together (s) | speed-up | max abs diff |")
    print("|---|---|---:|---:|---:|---:|")
    best, out = alternate_best(
        {
            "alone": lambda: torch.stack([nearest_rows(query[:, p], b)[0] for b, p in alone]),
            "together": lambda: nearest_rows(query, bank, parts=parts)[0],
        },
        1,
        args.repeats,
    )
    diff = float((out["alone"] - out["together"]).abs().max())
    print(
        f"| nearest, {args.queries} queries | {name} | {best['alone']:.3f} "
        f"| {best['together']:.3f} | {best['alone'] / best['together']:.2f}x | {diff:.1e} |",
        flush=True,
    )
    if args.skip_local:
        return
    best, out = alternate_best(
        {
            "alone": lambda: torch.stack([local_scales(b, ids, args.k) for b, _ in alone]),
            "together": lambda: local_scales(bank, ids, args.k, parts=parts),
        },
        1,
        1,
    )
    diff = float((out["alone"] - out["together"]).abs().max())
    print(
        f"| local scales, k={args.k} | {name} | {best['alone']:.2f} | {best['together']:.2f} "
        f"| {best['alone'] / best['together']:.2f}x | {diff:.1e} |",
        flush=True,
    )


def row_nearest(name: str, query: Tensor, bank: Tensor, repeats: int) -> str:
    best, out = alternate_best(
        {
            "before": lambda: whole_bank_nearest(query, bank),
            "blocked": lambda: nearest_rows(query, bank),
        },
        1,
        repeats,
    )
    (d0, i0), (d1, i1) = out["before"], out["blocked"]
    return (
        f"| nearest, {query.shape[0]} queries | {name} {tuple(bank.shape)} | {best['before']:.3f} "
        f"| {best['blocked']:.3f} | {best['before'] / best['blocked']:.2f}x "
        f"| {(d0 - d1).abs().max():.1e} | {(i0 == i1).float().mean():.5f} |"
    )


def row_local(name: str, bank: Tensor, ids: Tensor, k: int) -> str:
    # One round: the baseline alone takes 15-20 s a part on 2 cores.
    best, out = alternate_best(
        {
            "before": lambda: whole_bank_local(bank, ids, k),
            "blocked": lambda: local_scales(bank, ids, k),
        },
        1,
        1,
    )
    return (
        f"| local scales, k={k} | {name} {tuple(bank.shape)} | {best['before']:.2f} "
        f"| {best['blocked']:.2f} | {best['before'] / best['blocked']:.2f}x "
        f"| {(out['before'] - out['blocked']).abs().max():.1e} | |"
    )


if __name__ == "__main__":
    main()
