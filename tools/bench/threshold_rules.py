"""How well a threshold rule keeps its false-positive promise, on good validation scans only.

    uv run python tools/bench/threshold_rules.py --run RUN --data DATA --category CLASS [--splits 500]

A detector's calibrated threshold is the largest score of the class's good validation scans
(``threedsr.calibration.display_scale``). On n scans that rule flags a new good scan with
probability 1 / (n + 1) in expectation, whatever the scores' law; its threshold, the top order
statistic, moves a lot with one odd scan. A robust alternative fits a normal law to the logits of
the scores (median, 1.4826 x MAD) and puts the threshold at the same quantile, or at 1 %.

Each repeat splits the good validation scans in two halves at random, sets each rule's threshold
on one half and counts the other half's scans above it: the held-out false-positive rate, beside
the rate the rule promises, and the spread of the threshold (logit units) across splits. Test
scans are not read.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from statistics import NormalDist

import numpy as np
import pcprep
import threedsr
from threedsr.sample_predictions import predict_samples


def logit(s: np.ndarray) -> np.ndarray:
    s = np.clip(np.asarray(s, np.float64), 1e-12, 1 - 1e-12)
    return np.log(s) - np.log1p(-s)


def largest(scores: np.ndarray) -> float:
    return float(scores.max())


def robust_normal(alpha: float | None) -> Callable[[np.ndarray], float]:
    """The (1 - alpha) quantile of a normal law fitted robustly to the logits; alpha None =
    1 / (n + 1), the rate the largest score promises."""

    def rule(scores: np.ndarray) -> float:
        a = 1.0 / (len(scores) + 1) if alpha is None else alpha
        lg = logit(scores)
        med = float(np.median(lg))
        spread = 1.4826 * float(np.median(np.abs(lg - med)))
        return float(1.0 / (1.0 + np.exp(-(med + NormalDist().inv_cdf(1 - a) * spread))))

    return rule


RULES: dict[str, tuple[Callable[[np.ndarray], float], float | None]] = {
    "largest score (the calibrated threshold)": (largest, None),
    "robust normal, same rate": (robust_normal(None), None),
    "robust normal, 1 %": (robust_normal(0.01), 0.01),
}


def held_out(scores: np.ndarray, splits: int, seed: int = 0) -> list[dict[str, float | str]]:
    """Each rule's held-out false-positive rate and threshold spread over random halvings."""
    rng = np.random.default_rng(seed)
    half = len(scores) // 2
    rows = []
    for name, (rule, promised) in RULES.items():
        rates, thresholds = [], []
        for _ in range(splits):
            order = rng.permutation(len(scores))
            fit, check = scores[order[:half]], scores[order[half:]]
            t = rule(fit)
            rates.append(float((check > t).mean()))
            thresholds.append(float(logit(np.array([t]))[0]))
        rows.append(
            {
                "rule": name,
                "promised": 1.0 / (half + 1) if promised is None else promised,
                "held_out": float(np.mean(rates)),
                "threshold_sd": float(np.std(thresholds)),
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="a train run folder or detector.pt")
    ap.add_argument("--data", required=True)
    ap.add_argument("--category", required=True)
    ap.add_argument("--splits", type=int, default=500)
    args = ap.parse_args()
    det = threedsr.Detector.load(args.run, device="cpu")
    refs = [r for r in pcprep.index_dataset(args.data, args.category, "validation") if not r.label]
    scores = np.array([p.score for p in predict_samples(det, refs)])
    q = np.quantile(scores, [0.0, 0.5, 1.0])
    print(f"{args.category}: {len(scores)} good validation scans, {det.method} detector")
    print(f"scores min / median / max {q[0]:.4f} / {q[1]:.4f} / {q[2]:.4f}")
    print(f"calibrated threshold {det.display.threshold:.4f}" if det.display else "")
    print()
    print("| rule | promised rate | held-out rate | threshold spread (logit sd) |")
    print("|---|---:|---:|---:|")
    for r in held_out(scores, args.splits):
        print(
            f"| {r['rule']} | {100 * r['promised']:.1f} % | {100 * r['held_out']:.1f} % | "
            f"{r['threshold_sd']:.2f} |"
        )


if __name__ == "__main__":
    main()
