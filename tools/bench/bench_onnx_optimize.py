"""ONNX export of a trained detector: onnxscript's graph optimizer (what torch's exporter runs by
default, the baseline) against onnxruntime's basic level (``threedsr.onnx_optimize``, the export
now), in one process: export time, nodes, file size, onnxruntime s/scan (alternating, best of
``--repeats``) and the maps' difference.

    uv run python tools/bench/bench_onnx_optimize.py --run RUN --data DATA --category CLASS
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import pcprep
import threedsr
import threedsr.export
from threedsr import OnnxDetector


def onnxscript_optimizer(path: Path) -> str:
    """What ``torch.onnx.export(..., optimize=True)`` runs: onnxscript's optimizer."""
    from onnxscript import optimizer

    onnx.save(optimizer.optimize(onnx.load(str(path))), str(path))
    return "onnxscript"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--category", required=True)
    ap.add_argument("--scans", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    det = threedsr.Detector.load(args.run, device="cpu")
    refs = list(pcprep.index_dataset(args.data, args.category, "test"))[: args.scans]
    prepared = [det.prepare(r.load()) for r in refs]
    product = threedsr.export.optimize_onnx_file
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, optimizer in (
            ("onnxscript (baseline)", onnxscript_optimizer),
            ("onnxruntime basic", product),
        ):
            threedsr.export.optimize_onnx_file = optimizer
            path = Path(tmp) / f"{len(rows)}.onnx"
            start = time.perf_counter()
            threedsr.export_detector(det, path)
            seconds = time.perf_counter() - start
            rows[name] = {
                "export_s": seconds,
                "nodes": len(onnx.load(str(path)).graph.node),
                "mb": path.stat().st_size / 1e6,
                "session": OnnxDetector(path, threads=args.threads),
            }
        threedsr.export.optimize_onnx_file = product
        best = dict.fromkeys(rows, float("inf"))
        maps = {}
        for _ in range(args.repeats):
            for name, row in rows.items():
                start = time.perf_counter()
                maps[name] = np.asarray(row["session"].predict(prepared).maps)
                best[name] = min(best[name], time.perf_counter() - start)
    base, now = rows
    print(
        f"{det.method} {det.setup} detector, {det.size} px, {len(prepared)} scans of {args.category}"
    )
    print()
    print("| optimizer | export s | nodes | file MB | onnxruntime s/scan |")
    print("|---|---:|---:|---:|---:|")
    for name, row in rows.items():
        print(
            f"| {name} | {row['export_s']:.1f} | {row['nodes']} | {row['mb']:.1f} | "
            f"{best[name] / len(prepared):.3f} |"
        )
    print()
    print(
        f"export {rows[base]['export_s'] / rows[now]['export_s']:.2f}x faster; onnxruntime "
        f"now / baseline {best[now] / best[base]:.3f}; max map diff "
        f"{float(np.abs(maps[now] - maps[base]).max()):.1e}"
    )


if __name__ == "__main__":
    main()
