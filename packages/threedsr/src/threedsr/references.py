"""The published per-class figures each method is compared with (its "anchor")."""

from __future__ import annotations

from collections.abc import Sequence

from vqcore import SETUPS

from threedsr.config import METHODS

__all__ = ["BTF_RESULTS", "PAPER_RESULTS", "reference_results"]

_MVTEC = (
    "bagel",
    "cable_gland",
    "carrot",
    "cookie",
    "dowel",
    "foam",
    "peach",
    "potato",
    "rope",
    "tire",
)
_EYECANDIES = (
    "CandyCane",
    "ChocolateCookie",
    "ChocolatePraline",
    "Confetto",
    "GummyBear",
    "HazelnutTruffle",
    "LicoriceSandwich",
    "Lollipop",
    "Marshmallow",
    "PeppermintCandy",
)


def _table(classes: Sequence[str], **columns: Sequence[float]) -> dict[str, dict[str, float]]:
    return {c: {k: v[i] / 100.0 for k, v in columns.items()} for i, c in enumerate(classes)}


#: The paper's per-class numbers (spec §0), as fractions, by setup then class. The paper gives no
#: per-class P-AUROC, and its "RGB" rows are DSR's numbers, so ``rgb`` is empty.
PAPER_RESULTS: dict[str, dict[str, dict[str, float]]] = {
    "depth": _table(
        _MVTEC,
        image_auroc=(94.5, 83.5, 96.9, 85.7, 95.5, 88.0, 96.3, 93.4, 99.8, 88.8),
        aupro=(92.2, 87.2, 98.4, 85.9, 94.0, 71.4, 97.0, 97.8, 97.7, 85.8),
    ),
    "rgbd": {
        **_table(
            _MVTEC,
            image_auroc=(98.1, 86.7, 99.6, 98.1, 100.0, 99.4, 98.6, 97.8, 100.0, 99.5),
            aupro=(96.4, 96.6, 98.1, 94.2, 98.0, 97.3, 98.1, 97.7, 97.9, 97.9),
        ),
        **_table(
            _EYECANDIES, image_auroc=(65.1, 99.8, 90.4, 97.8, 87.5, 86.1, 96.5, 89.9, 99.0, 97.1)
        ),
    },
    "rgb": {},
}

#: Back to the Feature (Horwitz & Hoshen, CVPR workshops 2023), the classic CPU baseline of
#: hand-made descriptors in a kNN memory: FPFH + RGB (``rgbd``) and FPFH alone (``depth``), on
#: MVTec 3D-AD, as fractions. The descriptor memory is compared with it, not with 3DSR's paper.
BTF_RESULTS: dict[str, dict[str, dict[str, float]]] = {
    "rgbd": _table(
        _MVTEC,
        image_auroc=(91.8, 74.8, 96.7, 88.3, 93.2, 58.2, 89.6, 91.2, 92.1, 88.6),
        aupro=(97.6, 96.9, 97.9, 97.3, 93.3, 88.8, 97.5, 98.1, 95.0, 97.1),
    ),
    "depth": _table(
        _MVTEC,
        image_auroc=(82.5, 55.1, 95.2, 79.7, 88.3, 58.2, 75.8, 88.9, 92.9, 65.3),
        aupro=(97.3, 87.9, 98.2, 90.6, 89.2, 73.5, 97.7, 98.2, 95.6, 96.1),
    ),
    "rgb": {},
}


def reference_results(method: str, setup: str) -> tuple[str, dict[str, dict[str, float]]]:
    """The published figures a method is compared with: the descriptor memory with BTF (the
    other hand-made-descriptor kNN), the 3DSR network and the fused map with the 3DSR paper.

    Example:
        >>> name, table = reference_results("memory", "rgbd")
        >>> name, table["cable_gland"]["image_auroc"]
        ('BTF', 0.748)
        >>> reference_results("btf", "rgbd")
        Traceback (most recent call last):
        ...
        ValueError: reference_results: method must be one of ('memory', '3dsr', 'fused'), got 'btf'
    """
    # Any other name fell through to the 3DSR paper's table, and a setup to no table at all:
    # a typo read as a method compared with the paper, or with nothing.
    if method not in METHODS:
        raise ValueError(f"reference_results: method must be one of {METHODS}, got {method!r}")
    if setup not in SETUPS:
        raise ValueError(f"reference_results: setup must be one of {SETUPS}, got {setup!r}")
    if method == "memory":
        return "BTF", BTF_RESULTS[setup]
    return "3DSR paper", PAPER_RESULTS[setup]
