"""Benchmark depthsim against the reference-style numpy implementation (and pyfastnoisesimd).

Run from the repository root:
    uv run python tools/bench/bench_depthsim.py
pyfastnoisesimd is compared when it imports (see docs/bench/depthsim.md for building it).
Prints a Markdown table; every ratio is measured in this process, on the same inputs sizes.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numba
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import baselines_depthsim as base
import depthsim
from depthsim.scenes import generate_dataset


def timeit(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Best wall time and best process CPU time of ``repeats`` calls, after one warm-up call.

    Minimums, not medians: on shared cores the spread comes from other processes taking the CPU,
    and the fastest run is the closest to what the code itself costs. CPU time (all threads of
    this process) is much less sensitive to that contention than wall time.
    """
    fn()
    walls, cpus = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return min(walls), min(cpus)


def fastnoise_batch(n: int, size: int, res: int, workers: int) -> Callable[[], object] | None:
    if not hasattr(np, "product"):  # pyfastnoisesimd 0.4.2's helpers still call np.product
        setattr(np, "product", np.prod)  # noqa: B010
    try:
        import pyfastnoisesimd as fns
    except Exception:  # not installed, or built against another numpy
        return None
    noise = fns.Noise(seed=0, numWorkers=workers)
    noise.noiseType = fns.NoiseType.Perlin
    noise.frequency = res / size

    def run() -> np.ndarray:
        out = np.empty((n, size, size), np.float32)
        for k in range(n):
            noise.seed = k
            out[k] = noise.genAsGrid([1, size, size])[0]
        return out

    return run


def bench_size(
    size: int,
    n: int,
    rep: int,
    lattice: int,
    threads: int,
    row: Callable[[str, str, tuple[float, float], tuple[float, float] | None], None],
) -> None:
    """All noise workloads at one image size, each against its numpy baseline."""
    res = (lattice, lattice)
    gen = np.random.default_rng(0)
    wl = f"Perlin {size}², res {lattice}, batch {n}"
    t_np = timeit(lambda: [base.rand_perlin_2d_np((size, size), res, gen) for _ in range(n)], rep)
    row(wl, "numpy (reference recipe)", t_np, t_np)
    t_ds = timeit(lambda: depthsim.perlin_batch(n, size, res, rng=gen), rep)
    row(wl, f"depthsim.perlin_batch ({threads} threads)", t_ds, t_np)
    numba.set_num_threads(1)
    try:
        t_one = timeit(lambda: depthsim.perlin_batch(n, size, res, rng=gen), rep)
    finally:
        numba.set_num_threads(threads)
    row(wl, "depthsim.perlin_batch (1 thread)", t_one, t_np)
    fns_run = fastnoise_batch(n, size, lattice, threads)
    if fns_run is not None:
        row(wl, f"pyfastnoisesimd Perlin ({threads} workers)", timeit(fns_run, rep), t_np)
    else:
        print(f"| {wl} | pyfastnoisesimd | not importable | - | - | - | - |")

    wl = f"simulate_depth {size}², batch {n}"
    t_np = timeit(lambda: [base.simulate_depth_np((size, size), gen) for _ in range(n)], rep)
    row(wl, "numpy + scipy rotation", t_np, t_np)
    t_ds = timeit(lambda: depthsim.simulate_depth_batch(n, size, rng=gen), rep)
    row(wl, "depthsim.simulate_depth_batch", t_ds, t_np)

    wl = f"anomaly_mask {size}², batch {n}"
    t_np = timeit(lambda: [base.anomaly_mask_np((size, size), gen) for _ in range(n)], rep)
    row(wl, "numpy + scipy rotation", t_np, t_np)
    t_ds = timeit(lambda: depthsim.anomaly_mask_batch(n, size, rng=gen), rep)
    row(wl, "depthsim.anomaly_mask_batch", t_ds, t_np)

    wl = f"procedural_rgb {size}², batch {n}"
    row(
        wl,
        "depthsim.procedural_rgb",
        timeit(lambda: depthsim.procedural_rgb(n, size, rng=gen), rep),
        None,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 384])
    ap.add_argument("--res", type=int, default=8, help="Perlin lattice cells per axis")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="batch 8, 2 repeats (smoke run)")
    args = ap.parse_args()
    if args.quick:
        args.batch, args.repeats = 8, 2
    n, rep = args.batch, args.repeats
    threads = numba.get_num_threads()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} logical CPUs, numba threads {threads}, "
        f"numpy {np.__version__}, numba {numba.__version__}, python {platform.python_version()}, "
        f"load average {os.getloadavg()}\n"
    )
    print(
        "| workload | implementation | wall ms / batch | images/s | wall speed-up vs numpy "
        "| CPU ms / batch | CPU-time ratio vs numpy |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")

    def row(
        workload: str, impl: str, t: tuple[float, float], ref: tuple[float, float] | None
    ) -> None:
        wall, cpu = t
        ratio = f"{ref[0] / wall:.1f}x" if ref else "-"
        cpu_ratio = f"{ref[1] / cpu:.1f}x" if ref else "-"
        print(
            f"| {workload} | {impl} | {wall * 1e3:.1f} | {n / wall:.0f} | {ratio} "
            f"| {cpu * 1e3:.1f} | {cpu_ratio} |",
            flush=True,
        )

    for size in args.sizes:
        bench_size(size, n, rep, args.res, threads, row)

    with tempfile.TemporaryDirectory() as tmp:
        counter = iter(range(10**6))

        def gen_ds() -> None:
            generate_dataset(Path(tmp) / str(next(counter)), classes=["puck", "bar"], size=128)

        sec = timeit(gen_ds, max(1, rep // 2))[0]
    scenes = 2 * (40 + 8 + 6 * 5)
    print(f"\nload average (1, 5, 15 min) at the end: {os.getloadavg()}")
    print(
        f"scenes: generate_dataset(classes=['puck', 'bar'], size=128, defaults 40/8/6 per type) "
        f"= {scenes} scans written in {sec:.2f} s ({scenes / sec:.0f} scans/s)"
    )


if __name__ == "__main__":
    main()
