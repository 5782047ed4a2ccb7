"""``--precision`` of train-dada and train (issues 13, 25) reaches the training config; unset keeps
the preset's value (paper: fp32, cpu: auto)."""

from __future__ import annotations

import pytest

CATEGORY = "puck"  # the class the conftest fixtures generate


def _capture(monkeypatch, module, name: str) -> list:
    """Replace ``module.name`` by a stub that records the config and stops like Ctrl-C would."""
    seen: list = []

    def stop(config, *args, **kwargs):
        seen.append(config)
        raise KeyboardInterrupt

    monkeypatch.setattr(module, name, stop)
    return seen


@pytest.mark.parametrize(
    ("preset", "flag", "expected"),
    [
        ("cpu", None, "auto"),
        ("paper", None, "fp32"),
        ("paper", "bf16", "bf16"),
        ("cpu", "fp32", "fp32"),
        ("paper", "tf32", "tf32"),
    ],
)
def test_train_dada_precision(cli, tmp_path, monkeypatch, preset, flag, expected) -> None:
    import vqcore

    seen = _capture(monkeypatch, vqcore, "train_dada")
    args = ["train-dada", "--out", tmp_path / "d", "--preset", preset, "--setup", "depth"]
    args += ["--iterations", 1, "--device", "cpu", "-q"]
    res = cli(*args, *(["--precision", flag] if flag else []))
    assert res.exit_code == 130, res.stderr
    assert [c.precision for c in seen] == [expected]


@pytest.mark.parametrize(
    ("preset", "flag", "expected"),
    [("cpu", None, "auto"), ("paper", "bf16", "bf16"), ("paper", "tf32", "tf32")],
)
def test_train_precision(cli, tmp_path, tiny_data, monkeypatch, preset, flag, expected) -> None:
    import threedsr

    seen = _capture(monkeypatch, threedsr, "train_detector")
    args = ["train", "--data", tiny_data, "--category", CATEGORY, "--out", tmp_path / "r"]
    args += [
        "--method",
        "3dsr",
        "--preset",
        preset,
        "--setup",
        "depth",
        "--size",
        64,
        "--device",
        "cpu",
        "-q",
    ]
    res = cli(*args, *(["--precision", flag] if flag else []))
    assert res.exit_code == 130, res.stderr
    assert [c.precision for c in seen] == [expected]


def test_bad_precision_is_a_usage_error(cli, tmp_path) -> None:
    res = cli("train-dada", "--out", tmp_path / "d", "--precision", "fp16")
    assert res.exit_code == 2


@pytest.mark.parametrize(("preset", "iterations"), [(None, 400), ("gpu", 7_000)])
def test_train_preset_default_and_gpu(
    cli, tmp_path, tiny_data, monkeypatch, preset, iterations
) -> None:
    # Without --preset the CPU gets the cpu schedule (CUDA would get gpu: default_preset's
    # doctest); --preset gpu is the paper's network on a short schedule.
    import threedsr

    seen = _capture(monkeypatch, threedsr, "train_detector")
    args = ["train", "--data", tiny_data, "--category", CATEGORY, "--out", tmp_path / "r"]
    args += ["--method", "3dsr", "--setup", "depth", "--size", 64, "--device", "cpu", "-q"]
    res = cli(*args, *(["--preset", preset] if preset else []))
    assert res.exit_code == 130, res.stderr
    assert [(c.iterations, c.model.unet_base) for c in seen] == [
        (iterations, 32 if preset == "gpu" else 8)
    ]


@pytest.mark.parametrize(
    ("preset", "use_dada", "warned"),
    [("paper", False, True), ("paper", True, False), ("cpu", False, False)],
)
def test_paper_preset_on_the_shipped_backbone_is_named(
    cli, tmp_path, tiny_data, dada_rgbd, monkeypatch, preset, use_dada, warned
) -> None:
    # The heads take their widths from the backbone: on the shipped one, the paper preset is not
    # the paper's network, and a user reproducing the paper must hear it before training.
    import threedsr

    _capture(monkeypatch, threedsr, "train_detector")
    args = ["train", "--data", tiny_data, "--category", CATEGORY, "--out", tmp_path / "r"]
    args += ["--method", "3dsr", "--preset", preset, "--setup", "rgbd", "--size", 64]
    args += ["--device", "cpu", "-q", *(["--dada", dada_rgbd] if use_dada else [])]
    res = cli(*args)
    assert res.exit_code == 130, res.stderr
    assert ("--preset paper without --dada" in res.stderr) == warned, res.stderr
