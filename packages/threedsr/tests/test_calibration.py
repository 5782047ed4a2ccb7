"""Good-scan statistics (``MapCalibration``): refused when they would make every map NaN."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from threedsr import Detector, MapCalibration, ThreedsrError, fuse_maps, train_detector
from threedsr.checkpoint import atomic_save, read_checkpoint
from threedsr_testutil import synthetic_class, tiny_memory_config

NAN, INF = math.nan, math.inf


@pytest.mark.parametrize(
    ("mean", "std", "error", "message"),
    [
        (0.1, NAN, ValueError, "std must be a finite number >= 0, got nan"),
        (0.1, INF, ValueError, "std must be a finite number >= 0, got inf"),
        (0.1, -0.5, ValueError, "std must be a finite number >= 0, got -0.5"),
        (NAN, 1.0, ValueError, "mean must be a finite number, got nan"),
        (-INF, 1.0, ValueError, "mean must be a finite number, got -inf"),
        (torch.tensor(0.1), 1.0, TypeError, "mean must be a real number, got Tensor"),
        (0.1, True, TypeError, "std must be a real number, got bool"),
    ],
)
def test_a_calibration_that_would_make_maps_nan_or_constant_is_refused(
    mean: object, std: object, error: type, message: str
) -> None:
    with pytest.raises(error, match=f"^MapCalibration: {message}$"):
        MapCalibration(mean, std)  # type: ignore[arg-type]


def test_a_zero_spread_gives_finite_maps_and_numbers_of_any_real_type_are_kept_as_floats() -> None:
    # Maps that were constant on good scans fit a zero std: the map stays finite.
    flat = MapCalibration(0.5, 0.0)
    m = torch.tensor([[[0.0, 0.5, 1.0]]])
    fused = fuse_maps(m, m, flat, flat, 0.5, squash=False)
    assert bool(torch.isfinite(fused).all()) and float(fused[0, 0, 1]) == 0.0
    cal = MapCalibration(np.float32(1), 2)
    assert cal == (1.0, 2.0) and type(cal.mean) is float and type(cal.std) is float


def test_a_memory_run_on_one_training_scan_is_refused_before_it_writes(tmp_path) -> None:
    # Left out of its own memory, the only scan's distances are infinite: NaN calibration.
    cfg = tiny_memory_config("depth", out=str(tmp_path / "run"))
    with pytest.raises(ThreedsrError, match=r"needs at least 2 good training scans .* got 1$"):
        train_detector(cfg, data=synthetic_class("depth", n=1))
    assert not (tmp_path / "run" / "detector.pt").exists()


def test_a_checkpoint_whose_calibration_is_nan_is_refused_in_one_line(tmp_path) -> None:
    run = tmp_path / "run"
    train_detector(tiny_memory_config("depth", out=str(run)), data=synthetic_class("depth", n=2))
    ckpt = read_checkpoint(run / "detector.pt")
    atomic_save({**ckpt, "memory_calibration": [INF, NAN]}, tmp_path / "bad.pt")
    with pytest.raises(ThreedsrError, match=r"bad\.pt: inconsistent detector checkpoint") as err:
        Detector.load(tmp_path / "bad.pt")
    assert "mean must be a finite number" in str(err.value) and "\n" not in str(err.value)
