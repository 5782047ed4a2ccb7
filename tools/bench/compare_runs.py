"""Is one detector really better than another on a test set? Paired bootstrap over test scans.

    uv run python tools/bench/compare_runs.py DATA RUN [RUN ...] [--category C] [--reps 1000]
        [--method memory|3dsr|fused] [--json out.json]

Each RUN is a folder (or ``detector.pt``) written by ``threedsr-cli train``. Every detector is
evaluated on the same test scans (``threedsr.evaluate(..., keep_samples=True)``, model
resolution, the figures ``eval`` prints); then the scans are resampled with replacement, good
and defective apart so both stay present, and each resample scores every detector on the same
scans. The spread of a metric's difference between two detectors over the resamples is the
standard error of that difference: far smaller than each metric's own standard error, because
both detectors see the same hard and easy scans. Real classes hold a dozen to a few dozen
defective test scans, so a difference of a few AUROC points is often noise, and a difference of
half a pixel-AUROC point often is not.

The resampling is over the scans you have; it says nothing about scans or classes you do not
have (held-out data can still disagree).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
from pathlib import Path

import admetrics
import numpy as np

METRICS = ("I-AUROC", "P-AUROC", "AUPRO")


def scan_metrics(labels: np.ndarray, scores: np.ndarray, maps: np.ndarray, gts: np.ndarray):
    """(I-AUROC, P-AUROC, AUPRO@0.3) of the scans given."""
    return (
        admetrics.image_auroc(labels, scores),
        admetrics.pixel_auroc(gts, maps),
        admetrics.aupro(gts, maps),
    )


def paired_bootstrap(samples: list, reps: int, seed: int = 0) -> np.ndarray:
    """(reps, detectors, 3) metrics of each detector on the same resampled scans.

    ``samples``: one :class:`threedsr.EvaluatedSamples` per detector, the same scans in the
    same order (one test set).
    """
    labels = np.asarray(samples[0].labels)
    for s in samples[1:]:
        if not np.array_equal(np.asarray(s.labels), labels):
            raise SystemExit("compare_runs: the detectors were not evaluated on the same scans")
    good, bad = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
    rng = np.random.default_rng(seed)
    out = np.empty((reps, len(samples), len(METRICS)))
    for r in range(reps):
        idx = np.r_[rng.choice(good, len(good)), rng.choice(bad, len(bad))]
        for j, s in enumerate(samples):
            out[r, j] = scan_metrics(labels[idx], s.scores[idx], s.maps[idx], s.gts[idx])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", help="dataset root or pack")
    ap.add_argument("runs", nargs="+", help="run folders or detector.pt files")
    ap.add_argument("--category", default=None, help="default: the first detector's class")
    ap.add_argument("--method", default=None, help="which map of each detector (default: its own)")
    ap.add_argument("--reps", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    from threedsr import Detector, evaluate

    samples, full = [], []
    for run in args.runs:
        path = Path(run)
        path = path / "detector.pt" if path.is_dir() else path
        detector = Detector.load(path, device="cpu", method=args.method)
        category = args.category or detector.category
        result = evaluate(detector, args.data, category, native=False, keep_samples=True)[category]
        s = result["samples"]
        samples.append(s)
        full.append(scan_metrics(s.labels, s.scores, s.maps, s.gts))
        print(
            f"{run}: " + "  ".join(f"{m} {v:.4f}" for m, v in zip(METRICS, full[-1], strict=True))
        )
    boot = paired_bootstrap(samples, args.reps, args.seed)
    own_se = boot.std(0, ddof=1)
    report = {"reps": args.reps, "runs": {}, "differences": {}}
    for j, run in enumerate(args.runs):
        report["runs"][run] = {
            m: [round(full[j][k], 4), round(own_se[j, k], 4)] for k, m in enumerate(METRICS)
        }
    print(
        f"\npaired bootstrap, {args.reps} resamples of the test scans: difference (its standard error)"
    )
    for j in range(1, len(args.runs)):
        diff = np.subtract(full[j], full[0])
        se = (boot[:, j] - boot[:, 0]).std(0, ddof=1)
        key = f"{args.runs[j]} - {args.runs[0]}"
        report["differences"][key] = {
            m: [round(diff[k], 4), round(se[k], 4)] for k, m in enumerate(METRICS)
        }
        print(
            f"{key}: "
            + "  ".join(
                f"{m} {d:+.4f} ({e:.4f})" for m, d, e in zip(METRICS, diff, se, strict=True)
            )
        )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
