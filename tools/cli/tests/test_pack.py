"""``threedsr-cli pack``, and train / eval / predict reading the pack in place of the folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

CATEGORY = "puck"  # the class the conftest fixtures generate

IDENTITY = ("detector", "detector_sha256")


@pytest.fixture(scope="module")
def pack64(cli, tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pack") / "puck.3dsrpack"
    res = cli("pack", "--data", tiny_data, "--category", CATEGORY, "--size", 64, "--out", out)
    assert res.exit_code == 0, res.stderr
    assert "train 4, validation 2, test 5 scans" in " ".join(res.stdout.split())
    return out


def _metrics(folder: Path) -> dict:
    m = json.loads((folder / "metrics.json").read_text())[CATEGORY]
    return {k: v for k, v in m.items() if k not in IDENTITY}


def _train(cli, data: Path, out: Path, *extra: object) -> None:
    res = cli("train", "--data", data, "--out", out, "--size", 64, "--device", "cpu", "--quiet",
              *extra)  # fmt: skip
    assert res.exit_code == 0, res.stderr


def test_memory_train_and_eval_on_the_pack_equal_the_folder(cli, tiny_data, pack64, tmp_path):
    _train(cli, tiny_data, tmp_path / "folder", "--category", CATEGORY)
    _train(cli, pack64, tmp_path / "pack")  # the class comes from the pack
    results = {}
    for run in ("folder", "pack"):
        for data in (tiny_data, pack64):
            out = tmp_path / f"{run}-on-{data.name}"
            res = cli("eval", "--run", tmp_path / run, "--data", data, "--out", out,
                      "--device", "cpu", "--quiet")  # fmt: skip
            assert res.exit_code == 0, res.stderr
            results[run, data.name] = _metrics(out)
    first = results["folder", tiny_data.name]
    assert first["n_defective"] == 4 and first["image_auroc"] is not None
    res = cli("eval", "--run", tmp_path / "pack", "--data", pack64, "--out", tmp_path / "said",
              "--device", "cpu")  # fmt: skip
    said = " ".join(res.stdout.split())
    assert res.exit_code == 0 and f"on the test split of {pack64} (fp32)" in said, said
    assert all(r == first for r in results.values()), results
    a = json.loads((tmp_path / "folder" / "run.json").read_text())["settings"]
    b = json.loads((tmp_path / "pack" / "run.json").read_text())["settings"]
    assert b["category"] == CATEGORY and b["data"] == str(pack64.resolve())
    assert {k: v for k, v in a.items() if k != "data"} == {
        k: v for k, v in b.items() if k != "data"
    }


def test_predict_auto_threshold_reads_the_training_pack(cli, tiny_data, pack64, tmp_path):
    sample = tiny_data / CATEGORY / "test" / "dent"
    thresholds = {}
    for name, data in (("folder", tiny_data), ("pack", pack64)):
        _train(cli, data, tmp_path / name, "--category", CATEGORY)
        res = cli("predict", "--run", tmp_path / name, sample, "--threshold", "auto", "--out",
                  tmp_path / f"p-{name}", "--device", "cpu", "--quiet")  # fmt: skip
        assert res.exit_code == 0, res.stderr
        scores = json.loads((tmp_path / f"p-{name}" / "scores.json").read_text())
        assert scores["threshold_source"].startswith("max score of 2 good validation samples")
        thresholds[name] = scores["threshold"]
    assert thresholds["folder"] == thresholds["pack"]


def test_pack_refuses_other_size_class_and_damage(bad_input, cli, pack64, tmp_path):
    res = cli("train", "--data", pack64, "--out", tmp_path / "r", "--size", 96, "--quiet")
    bad_input(res, str(pack64), "size 64 (asked 96)")
    assert not (tmp_path / "r").exists()
    res = cli("train", "--data", pack64, "--category", "bagel", "--out", tmp_path / "r")
    bad_input(res, str(pack64), "holds class 'puck', not 'bagel'")
    broken = tmp_path / "broken.3dsrpack"
    broken.write_bytes(pack64.read_bytes()[:-1000])
    res = cli("train", "--data", broken, "--out", tmp_path / "r", "--size", 64)
    bad_input(res, str(broken), "truncated or corrupt")
    res = cli("eval", "--run", tmp_path / "nothing", "--data", broken)
    assert res.exit_code == 2


def test_pack_output_rules(bad_input, cli, tiny_data, pack64, tmp_path):
    base = ("pack", "--data", tiny_data, "--category", CATEGORY, "--size", 64, "--quiet")
    bad_input(cli(*base, "--out", tmp_path / "x.npz"), "x.npz", "must end in .3dsrpack")
    inside = tiny_data / "x.3dsrpack"
    bad_input(cli(*base, "--out", inside), "lies inside the dataset")
    assert not inside.exists()
    copy = tmp_path / "again.3dsrpack"
    copy.write_bytes(pack64.read_bytes())
    bad_input(cli(*base, "--out", copy), str(copy), "exists; pass --overwrite")
    assert cli(*base, "--out", copy, "--overwrite").exit_code == 0
    other = tmp_path / "notes.3dsrpack"
    other.write_text("my notes")
    bad_input(cli(*base, "--out", other, "--overwrite"), str(other), "not written by pack")
    assert other.read_text() == "my notes"
    bad_input(cli(*base[:2], pack64, *base[3:], "--out", tmp_path / "y.3dsrpack"), "a pack")
    bad_input(cli("train", "--data", tiny_data, "--out", tmp_path / "r"), "--category")


def test_uint8_pack_warns_that_colour_is_rounded(cli, tiny_data, tmp_path):
    out = tmp_path / "u.3dsrpack"
    res = cli("pack", "--data", tiny_data, "--category", CATEGORY, "--size", 64, "--rgb",
              "uint8", "--out", out, "--quiet")  # fmt: skip
    assert res.exit_code == 0, res.stderr
    res = cli("train", "--data", out, "--out", tmp_path / "run", "--size", 64, "--quiet")
    assert res.exit_code == 0, res.stderr
    assert "rounded to 8 bits (--rgb uint8)" in " ".join(res.stderr.split())


def test_tiny_3dsr_run_on_the_pack_equals_the_folder(cli, tiny_data, pack64, tmp_path):
    """The network's training (seeded) sees the same inputs: the same weights, the same maps."""
    import torch

    net = ("--method", "3dsr", "--preset", "cpu", "--iterations", 2, "--batch-size", 2)
    _train(cli, tiny_data, tmp_path / "folder", "--category", CATEGORY, *net)
    _train(cli, pack64, tmp_path / "pack", *net)
    states = [
        torch.load(tmp_path / run / "detector.pt", weights_only=True)["heads_state"]
        for run in ("folder", "pack")
    ]

    def same(a: object, b: object) -> bool:
        if isinstance(a, dict) and isinstance(b, dict):
            return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
        return torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b

    assert states[0] and same(states[0], states[1])
    for run in ("folder", "pack"):
        res = cli("eval", "--run", tmp_path / run, "--data", tiny_data, "--out",
                  tmp_path / f"m-{run}", "--device", "cpu", "--quiet")  # fmt: skip
        assert res.exit_code == 0, res.stderr
    assert _metrics(tmp_path / "m-folder") == _metrics(tmp_path / "m-pack")
