"""Benchmark of exported detectors: onnxruntime (CPU) against torch eager and the reference loop.

One process, the same random weights, alternating the paths ``--repeats`` times and keeping each
one's best s/img (the machine is shared: the minimum is the least disturbed measurement):

- ``ref``: the reference test loop (plain eager fp32 NCHW, batch 1, ``no_grad``, box + max),
  ``bench_threedsr.reference_forward``;
- ``torch``: ``threedsr.Detector`` with its CPU defaults (batch 1);
- ``ort``: the batch-1 ONNX export of the same detector (``threedsr.export_detector``) on
  onnxruntime's CPU provider with as many intra-op threads as torch has.

Widths: ``paper`` (384², the paper's model) and ``cpu`` (the cpu preset's widths at its size),
both the 3DSR network alone (``method="3dsr"``, which is what the reference loop computes).
``--memory`` adds the memory method's map for rgbd/depth (``DetectorConfig.preset("memory")``):
the setup's descriptor memory with a random bank of ``MemoryConfig.size`` rows (100k) and random
local scales, torch eager against onnxruntime (the reference loop has no memory). ``--run RUN``
times only that trained run's detector (its memory's parts included), torch eager against its
exported graph on onnxruntime. Both memory benches also export the detector with the search's
previous graph (``previous_traced_distance``: every cell searched, one ``Gemm`` with a bias per
atom, ``ReduceMin`` + ``ArgMin`` over the whole bank), the in-process baseline of
``threedsr.memory.traced``.

    uv run python tools/bench/bench_export.py --setups rgbd --images 2 --repeats 2 --threads 1
    uv run python tools/bench/bench_export.py --widths cpu --memory
    uv run python tools/bench/bench_export.py --run runs/cable_gland --images 2 --repeats 2
    uv run python tools/bench/bench_export.py --run runs/cable_gland --torchscript
    uv run python tools/bench/bench_export.py --run runs/cable_gland --peak --threads 2
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
import onnxruntime
import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_threedsr import CH, alternate_best, build, reference_forward
from threedsr import (
    Detector,
    DetectorConfig,
    FeatureMemory,
    MapCalibration,
    OnnxDetector,
    export_detector,
)
from threedsr.memory import MemoryFeatures
from threedsr.memory.descriptors import descriptor_channels
from threedsr.memory.knn import part_partial_distances, split_bank


def _ort(det: Detector, folder: Path, threads: int) -> OnnxDetector:
    path = folder / f"{det.setup}-{det.size}.onnx"
    export_detector(det, path)
    return OnnxDetector(path, threads=threads)


def bench_heads(setup: str, widths: str, n: int, repeats: int, folder: Path) -> dict[str, float]:
    model, cfg = build(setup, widths)
    size = 384 if widths == "paper" else cfg.image_size
    k = cfg.filter_size
    x = torch.rand(n, CH[setup], size, size)
    det = Detector(cfg, network=copy.deepcopy(model), method="3dsr", device="cpu")
    det.preprocess["size"] = size
    ort = _ort(det, folder, torch.get_num_threads())
    xn = x.numpy()
    # warm-up: oneDNN primitives, onnxruntime's first run
    reference_forward(model, x[:1], k)
    det.predict(x[:1])
    ort.predict(xn[:1])
    best, out = alternate_best(
        {
            "ref": lambda: reference_forward(model, x, k),
            "torch": lambda: det.predict(x),
            "ort": lambda: ort.predict(xn),
        },
        n,
        repeats,
    )
    ref_maps, _ = out["ref"]
    ort_maps = torch.from_numpy(out["ort"].maps)
    return {
        "size": size,
        **{f"{k}_s": v for k, v in best.items()},
        "ort_vs_ref": float((ort_maps - ref_maps).abs().max()),
        "torch_vs_ref": float((out["torch"].maps - ref_maps).abs().max()),
    }


def previous_traced_distance(memory: FeatureMemory, feats: torch.Tensor, where) -> torch.Tensor:
    """``FeatureMemory._traced_distance`` before ``threedsr.memory.traced`` (session 18's graph):
    every cell searched, in blocks of cells sized by the bank, ``||e||^2 - 2 x.e`` as one
    product with a bias per atom (``Gemm``), the nearest row as ``min(dim=1)`` over the whole
    bank (``ReduceMin`` + ``ArgMin``), the background masked after."""
    h, w = feats.shape[2], feats.shape[3]
    q = memory._queries(feats)
    c = q.shape[2]
    atoms, of_part, banks, banks_sq = split_bank(memory.bank, memory.atoms)
    local = memory._local_per_part()
    n_bank, rows = memory.bank.shape[0], max(1, (1 << 24) // memory.bank.shape[0])
    blocks = []
    for s in range(0, h * w, rows):
        qb = q[:, s : s + rows]
        n = qb.shape[1]
        flat = qb.reshape(-1, c)
        queries = [flat if cols is None else flat[:, cols] for cols in atoms]
        partials = part_partial_distances(queries, banks, banks_sq, of_part, 0, n_bank)
        per_part = []
        for p, (part, ids) in enumerate(zip(partials, of_part, strict=True)):
            v, i = part.min(dim=1)
            x_sq = sum((queries[a] * queries[a]).sum(1) for a in ids)
            v = (v + x_sq).clamp_min(0).sqrt()
            per_part.append(v if local is None else v / local[p][i])
        blocks.append(memory.combine_parts(per_part).reshape(-1, n))
    d = torch.cat(blocks, dim=1).reshape(-1, h, w)
    return d if where is None else d * where


def _torch_vs_ort(det: Detector, folder: Path, x: torch.Tensor, repeats: int) -> dict:
    """Seconds per image of torch eager, its export on onnxruntime and the export with the
    previous traced search (one warm-up image each, then alternating, best of ``repeats``), and
    the largest differences of their maps."""
    threads = torch.get_num_threads()
    ort = _ort(det, folder, threads)
    (folder / "previous").mkdir(exist_ok=True)
    with mock.patch.object(FeatureMemory, "_traced_distance", previous_traced_distance):
        previous = _ort(det, folder / "previous", threads)
    xn = x.numpy()
    det.predict(x[:1])
    ort.predict(xn[:1])
    previous.predict(xn[:1])
    runs = {
        "torch": lambda: det.predict(x),
        "ort": lambda: ort.predict(xn),
        "ort_previous": lambda: previous.predict(xn),
    }
    best, out = alternate_best(runs, len(x), repeats)
    return {
        "size": x.shape[-1],
        **{f"{k}_s": v for k, v in best.items()},
        "ort_vs_torch": np.abs(out["ort"].maps - out["torch"].maps.numpy()).max(),
        "ort_vs_previous": np.abs(out["ort"].maps - out["ort_previous"].maps).max(),
    }


def bench_memory(setup: str, n: int, repeats: int, folder: Path) -> dict[str, float]:
    """The memory method's rgbd/depth map: the setup's descriptors against a random bank."""
    cfg = DetectorConfig.preset("memory", setup)
    mem = cfg.memory
    g = torch.Generator().manual_seed(0)
    c = descriptor_channels(setup, len(mem.scales), mem.groups)
    memory = FeatureMemory(
        torch.randn(mem.size, c, generator=g),
        setup,
        features=MemoryFeatures.from_config(mem),
        center=torch.zeros(c),
        scale=torch.ones(c),
        local_scale=torch.rand(mem.size, generator=g) + 0.5 if mem.local_k else None,
    )
    det = Detector(cfg, memory=memory, memory_calibration=MapCalibration(1.0, 0.5), device="cpu")
    x = torch.rand(n, CH[setup], cfg.image_size, cfg.image_size)
    return _torch_vs_ort(det, folder, x, repeats)


def object_inputs(setup: str, size: int, n: int, fraction: float) -> torch.Tensor:
    """``n`` random inputs whose object (depth > 0) is a centred square of ``fraction`` of the
    image on a 0 background (RGB alone: no background)."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, CH[setup], size, size, generator=g)
    if setup != "rgb":
        side = round(size * fraction**0.5)
        lo, hi = (size - side) // 2, (size - side) // 2 + side
        x[:, 0] = 0
        x[:, 0, lo:hi, lo:hi] = 0.4 + 0.1 * torch.rand(n, side, side, generator=g)
    return x


def bench_run(run: Path, n: int, repeats: int, folder: Path) -> dict[str, float]:
    """A trained run's detector (its memory's parts, bank and statistics) exported and run on
    onnxruntime beside torch eager: ``n`` inputs at its size with an object of a quarter of the
    image."""
    det = Detector.load(run, device="cpu")
    x = object_inputs(det.config.setup, det.config.image_size, n, 0.25)
    return _torch_vs_ort(det, folder, x, repeats)


def peak_child(run: Path, graph: str, fraction: float) -> None:
    """In a process of its own: export ``run`` with the ``now`` or ``previous`` search, run one
    onnxruntime session 3 times on an object of ``fraction`` of the image; print the best
    seconds and the peak resident memory as JSON."""
    det = Detector.load(run, device="cpu")
    x = object_inputs(det.config.setup, det.config.image_size, 1, fraction).numpy()
    with tempfile.TemporaryDirectory() as tmp:
        if graph == "previous":
            with mock.patch.object(FeatureMemory, "_traced_distance", previous_traced_distance):
                ort = _ort(det, Path(tmp), torch.get_num_threads())
        else:
            ort = _ort(det, Path(tmp), torch.get_num_threads())
        del det
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        best, _ = alternate_best({"run": lambda: ort.predict(x)}, 1, 3)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"s": best["run"], "peak_mb": peak, "before_mb": before}))


def bench_peak(run: Path, fractions: list[float], threads: int) -> list[dict]:
    """:func:`peak_child` for both graphs and each object fraction, each in a fresh process
    (peak resident memory is per process)."""
    rows = []
    for fraction in fractions:
        for graph in ("previous", "now"):
            cmd = [sys.executable, __file__, "--run", str(run), "--threads", str(threads)]
            cmd += ["--peak-child", graph, "--object", str(fraction)]
            done = subprocess.run(cmd, capture_output=True, text=True, check=True)
            rows.append(
                {"graph": graph, "object": fraction, **json.loads(done.stdout.splitlines()[-1])}
            )
    return rows


def bench_torchscript(run: Path, n: int, repeats: int, folder: Path) -> dict[str, float]:
    """The same run's TorchScript export, with the current and the previous traced search,
    alternately (seconds per image, batch 1)."""
    det = Detector.load(run, device="cpu")
    x = object_inputs(det.config.setup, det.config.image_size, n, 0.25)
    export_detector(det, folder / "now.pt", fmt="torchscript")
    with mock.patch.object(FeatureMemory, "_traced_distance", previous_traced_distance):
        export_detector(det, folder / "previous.pt", fmt="torchscript")
    graphs = {k: torch.jit.load(str(folder / f"{k}.pt")) for k in ("now", "previous")}

    def run_all(graph: torch.jit.ScriptModule) -> list:
        with torch.no_grad():
            return [graph(x[i : i + 1]) for i in range(n)]

    for graph in graphs.values():
        run_all(graph)
    best, _ = alternate_best({k: lambda g=g: run_all(g) for k, g in graphs.items()}, n, repeats)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--setups", nargs="+", default=["rgbd", "depth", "rgb"])
    ap.add_argument("--widths", nargs="+", default=["paper", "cpu"], choices=["paper", "cpu"])
    ap.add_argument("--images", type=int, default=4, help="images per timed pass")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch and onnxruntime threads")
    ap.add_argument("--memory", action="store_true", help="add the cpu preset's memory map")
    ap.add_argument("--run", type=Path, help="only this trained run's detector, torch vs ort")
    ap.add_argument("--torchscript", action="store_true", help="with --run: TorchScript too")
    ap.add_argument(
        "--peak",
        action="store_true",
        help="with --run: peak memory of each graph, objects of "
        "a quarter and of the whole image, one process each",
    )
    ap.add_argument("--peak-child", choices=["now", "previous"], help=argparse.SUPPRESS)
    ap.add_argument("--object", type=float, default=0.25, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.run and args.peak_child:
        peak_child(args.run, args.peak_child, args.object)
        return
    if args.run and args.peak:
        print(
            "| graph | object | s/img | peak resident MB | peak before the runs (export, session) MB |"
        )
        print("|---|---|---|---|---|")
        for r in bench_peak(args.run, [0.25, 1.0], torch.get_num_threads()):
            print(
                f"| {r['graph']} | {r['object']:.0%} of the image | {r['s']:.3f} | "
                f"{r['peak_mb']:.0f} | {r['before_mb']:.0f} |",
                flush=True,
            )
        return
    if args.run:
        with tempfile.TemporaryDirectory() as tmp:
            r = bench_run(args.run, args.images, args.repeats, Path(tmp))
        print(
            f"{args.run}: torch {r['torch_s']:.3f} s/img, onnxruntime {r['ort_s']:.3f} s/img "
            f"({r['torch_s'] / r['ort_s']:.2f}x), max abs diff {r['ort_vs_torch']:.1e}; "
            f"previous graph on onnxruntime {r['ort_previous_s']:.3f} s/img "
            f"(now {r['ort_previous_s'] / r['ort_s']:.2f}x faster), "
            f"max abs diff {r['ort_vs_previous']:.1e}"
        )
        if args.torchscript:
            with tempfile.TemporaryDirectory() as tmp:
                t = bench_torchscript(args.run, args.images, args.repeats, Path(tmp))
            print(f"TorchScript: {t['now']:.3f} s/img, previous graph {t['previous']:.3f} s/img")
        return
    print(
        f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, "
        f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}; "
        f"{args.images} images, batch 1, best of {args.repeats}"
    )
    print()
    print(
        "| setup | widths | size | ref img/s | torch img/s | onnxruntime img/s | torch / ref | "
        "onnxruntime / ref | onnxruntime / torch | max abs diff ort vs ref | torch vs ref |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for widths in args.widths:
            for setup in args.setups:
                r = bench_heads(setup, widths, args.images, args.repeats, Path(tmp))
                print(
                    f"| {setup} | {widths} | {r['size']} | {1 / r['ref_s']:.3f} | "
                    f"{1 / r['torch_s']:.3f} | {1 / r['ort_s']:.3f} | "
                    f"{r['ref_s'] / r['torch_s']:.2f}x | {r['ref_s'] / r['ort_s']:.2f}x | "
                    f"{r['torch_s'] / r['ort_s']:.2f}x | {r['ort_vs_ref']:.1e} | "
                    f"{r['torch_vs_ref']:.1e} |",
                    flush=True,
                )
        if args.memory:
            print()
            print("| setup | map | size | torch img/s | onnxruntime img/s | onnxruntime / torch | "
                  "max abs diff | previous graph img/s | now / previous |")  # fmt: skip
            print("|---|---|---|---|---|---|---|---|---|")
            for setup in [s for s in args.setups if s != "rgb"]:
                r = bench_memory(setup, args.images, args.repeats, Path(tmp))
                print(
                    f"| {setup} | memory (descriptors) | {r['size']} | {1 / r['torch_s']:.3f} | "
                    f"{1 / r['ort_s']:.3f} | {r['torch_s'] / r['ort_s']:.2f}x | "
                    f"{r['ort_vs_torch']:.1e} | {1 / r['ort_previous_s']:.3f} | "
                    f"{r['ort_previous_s'] / r['ort_s']:.2f}x |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
