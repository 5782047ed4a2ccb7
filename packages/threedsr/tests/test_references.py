"""The published figures a method is compared with (``reference_results``)."""

from __future__ import annotations

import pytest
from threedsr import BTF_RESULTS, PAPER_RESULTS, format_markdown, reference_results


@pytest.mark.parametrize(
    ("method", "setup", "message"),
    [
        ("btf", "rgbd", r"method must be one of \('memory', '3dsr', 'fused'\), got 'btf'"),
        ("3DSR", "depth", r"method must be one of \('memory', '3dsr', 'fused'\), got '3DSR'"),
        ("memory", "rgb-d", r"setup must be one of \('rgbd', 'depth', 'rgb'\), got 'rgb-d'"),
        ("3dsr", "", r"setup must be one of \('rgbd', 'depth', 'rgb'\), got ''"),
    ],
)
def test_an_unknown_method_or_setup_is_refused_naming_the_known_ones(
    method: str, setup: str, message: str
) -> None:
    # Any other method read as the 3DSR paper's and any other setup as an empty table: a typo
    # came back as a comparison with the paper, or with nothing.
    with pytest.raises(ValueError, match=f"^reference_results: {message}$"):
        reference_results(method, setup)


def test_every_method_and_setup_has_its_anchor() -> None:
    for setup in ("rgbd", "depth", "rgb"):
        assert reference_results("memory", setup) == ("BTF", BTF_RESULTS[setup])
        for method in ("3dsr", "fused"):
            assert reference_results(method, setup) == ("3DSR paper", PAPER_RESULTS[setup])
    # rgb has no published per-class figures: the report's anchor columns read "-".
    line = format_markdown({"bagel": {"image_auroc": 0.9}}, setup="rgb").splitlines()[4]
    assert line == "| bagel | 90.0 | - | - | - | - | - |"
