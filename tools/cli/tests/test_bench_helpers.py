"""The pure helpers of tools/bench that the GPU session relies on (the folder is not a package
and not in the doctest paths, so its doctests run here)."""

from __future__ import annotations

import doctest
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[3] / "tools" / "bench"


def _load(name: str):
    if str(BENCH) not in sys.path:  # the scripts import each other, as run from their folder
        sys.path.append(str(BENCH))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["flops", "learning_curve"])
def test_doctests(name: str) -> None:
    result = doctest.testmod(_load(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_flops_of_a_convolution_forward_and_backward() -> None:
    import torch

    flops = _load("flops")
    conv = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)
    x = torch.rand(2, 3, 16, 16)
    forward = flops.count_flops(lambda: conv(x))
    assert forward == 2 * 2 * 8 * 16 * 16 * 3 * 3 * 3  # 2 x batch x out x H x W x in x k x k
    # Backward: the input gradient and the weight gradient cost one forward each.
    both = flops.count_flops(lambda: conv(x.requires_grad_()).sum().backward())
    assert both == 3 * forward
    assert flops.fraction_of_peak(forward, 1.0, "cpu", "bf16") is None


def test_measured_rate_skips_the_start_up_window(tmp_path) -> None:
    lc = _load("learning_curve")
    history = tmp_path / "train_history.json"
    history.write_text(json.dumps([{"it_per_s": r} for r in (1.0, 9.0, 10.0, 11.0)]))
    assert lc.measured_rate(history) == 10.0
    history.write_text(json.dumps([{"it_per_s": 4.0}]))
    assert lc.measured_rate(history) == 4.0


def test_btf_greedy_coreset_is_k_centre_against_brute_force() -> None:
    import torch

    btf = _load("btf_baseline")
    bank = torch.rand(60, 5, generator=torch.Generator().manual_seed(0))
    chosen = btf.greedy_coreset(bank, 0.2).tolist()
    expected = [0]
    for _ in range(11):  # each step: the row whose nearest chosen row is farthest
        gaps = [min(float((bank[r] - bank[c]).norm()) for c in expected) for r in range(60)]
        expected.append(max(range(60), key=lambda r: (gaps[r], -r)))
    assert chosen == expected


def test_btf_image_score_is_patchcore_reweighted_maximum() -> None:
    import math

    import torch

    btf = _load("btf_baseline")
    memory = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [5.0, 5.0]])
    patches = torch.tensor([[0.1, 0.0], [0.0, 3.0]])
    score, patch_scores = btf.score_patches(patches, memory)
    assert patch_scores.tolist() == pytest.approx([0.1, 1.0])
    # worst patch (0, 3) -> nearest memory row (0, 2); that row's 3 nearest rows are itself,
    # (0, 0) and (1, 0); their distances to the patch are 3 and sqrt(10)
    d = math.sqrt(2)
    weight = 1 - math.exp(1.0 / d) / (math.exp(3.0 / d) + math.exp(math.sqrt(10) / d))
    assert score == pytest.approx(weight * 1.0)
    assert 0 < weight < 1


@pytest.mark.parametrize("kind", ["dent", "bump", "colour", "both"])
def test_implant_raw_moves_the_object_along_the_plane_normal_inside_its_disc(
    kind, monkeypatch
) -> None:
    import numpy as np
    import pcprep
    from pcprep.synthetic import synthetic_scan

    monkeypatch.syspath_prepend(str(BENCH))  # implant_raw imports implant's scoring
    implant_raw = _load("implant_raw")
    sample = synthetic_scan((96, 96), bump_box=(0.2, 0.8, 0.2, 0.8)).sample
    prepared = pcprep.preprocess(sample, size=64)
    twin, mask = implant_raw.implant_sample(sample, prepared, kind, np.random.default_rng(1))
    foreground = pcprep.resize_mask(prepared.foreground, (96, 96), mode="nearest") > 0.5
    assert mask.any() and not mask[~foreground].any()
    height = pcprep.plane_height(sample.xyz, prepared.plane)
    moved = pcprep.plane_height(twin.xyz, prepared.plane) - height
    recoloured = (twin.rgb != sample.rgb).any(-1)
    assert not moved[~mask].any() and not recoloured[~mask].any()
    if kind in ("dent", "bump", "both"):
        top = np.percentile(height[foreground], 99)
        peak = moved[mask].min() if kind != "bump" else moved[mask].max()
        # 5-20 % of the top, times the dome profile at the pixel nearest the centre (>= 0.9)
        assert (peak < 0) == (kind != "bump") and 0.045 * top <= abs(peak) <= 0.2 * top + 1e-6
        # along the normal: the points keep their place in the plane
        shift = twin.xyz - sample.xyz
        normal = prepared.plane[:3] / np.linalg.norm(prepared.plane[:3])
        along = shift @ normal
        np.testing.assert_allclose(shift, along[..., None] * normal, atol=1e-6)
    else:
        assert not moved.any()
    assert recoloured.any() == (kind in ("colour", "both"))


def test_bank_curve_never_stores_the_scans_that_get_twins(monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(BENCH))  # bank_curve imports implant's twins and scoring
    bank_curve = _load("bank_curve")
    assert doctest.testmod(bank_curve).failed == 0
    validation = torch.arange(7.0)[:, None]
    stored, held_out = bank_curve.split_validation(validation)
    assert sorted(torch.cat([stored, held_out]).flatten().tolist()) == list(range(7))
    train = 100 + torch.arange(5.0)[:, None]
    for bank, _ in bank_curve.banks(train, stored, [0.5, 1.0], True, [3], 9).values():
        assert not set(bank.flatten().tolist()) & set(held_out.flatten().tolist())


def test_threshold_rules_held_out_rates() -> None:
    # On normal logits each rule keeps its promise; on heavy-tailed ones (what real good scans
    # gave) only the largest score does: the evidence that keeps the calibrated threshold.
    import numpy as np

    rules = _load("threshold_rules")
    rng = np.random.default_rng(0)
    for logits, robust_keeps in (
        (rng.normal(3, 0.3, 400), True),
        (rng.standard_t(1.5, 400), False),
    ):
        rows = rules.held_out(1 / (1 + np.exp(-logits)), splits=200)
        by = {r["rule"].split(",")[0].split(" (")[0]: r for r in rows if "1 %" not in r["rule"]}
        largest, robust = by["largest score"], by["robust normal"]
        assert largest["promised"] == pytest.approx(1 / 201)
        assert largest["held_out"] == pytest.approx(largest["promised"], rel=0.35)
        assert (robust["held_out"] < 2 * robust["promised"]) == robust_keeps, robust


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bench_organize_numpy_reference_is_pcprep_s_zbuffer(seed: int) -> None:
    """The numpy z-buffer the projection benchmark times pcprep against places the same points:
    nearest on each pixel, the first of equal depths, off-grid and invalid points dropped."""
    import numpy as np
    import pcprep

    bench = _load("bench_organize")
    rng = np.random.default_rng(seed)
    points = rng.normal(0.0, 1.0, (400, 3))
    points[:, 2] = rng.choice([0.5, 1.0, 2.0, -1.0, np.nan], 400)  # ties, behind, invalid
    colours = rng.integers(0, 256, (400, 3), dtype=np.uint8)
    want = pcprep.organize_points(points, colours, shape=(9, 13), focal_px=4.0)
    got = bench.numpy_zbuffer(points, colours, (9, 13), 4.0)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    assert (want[0][..., 2] > 0).sum() > 20
