"""The shipped stage-1 backbones: present, small, checksum-verified, one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import vqcore
from vqcore.pretrained import MANIFEST_NAME


@pytest.mark.parametrize("setup", ["rgbd", "depth", "rgb"])
def test_shipped_backbone_loads_weights_only_and_matches_manifest(setup: str) -> None:
    manifest = vqcore.pretrained_manifest()
    entry = manifest["backbones"][setup]
    path = vqcore.pretrained_path(setup)
    assert vqcore.sha256_of(path) == entry["sha256"]
    # weights_only loading, and nothing the shipped file does not need (no optimizer state)
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert "optimizer" not in raw and raw["complete"] is True
    model = vqcore.load_pretrained(setup)
    assert model.config.setup == setup and not model.training
    # (a manifest written before a config field existed holds the default it loads with)
    assert model.config == vqcore.BackboneConfig.from_dict(entry["widths"])
    x = torch.rand(1, model.in_channels, 64, 64)
    with torch.no_grad():
        recon, _, _ = model(x)
    assert recon.shape == x.shape
    # the manifest says how it was made
    assert entry["iterations"] == raw["step"] and "train-dada" in entry["command"]
    assert len(entry["curve"]) > 10 and entry["curve"][-1]["step"] == entry["iterations"]


def test_shipped_backbones_fit_the_size_budget() -> None:
    total = sum(p.stat().st_size for p in vqcore.PRETRAINED_DIR.glob("*.pt"))
    assert 0 < total <= 25 * 1024 * 1024


def test_shipped_backbones_reconstruct_better_than_a_fresh_model() -> None:
    import depthsim

    depth = torch.from_numpy(
        depthsim.simulate_depth_batch(4, (64, 64), rng=0)[:, None].astype("float32")
    )
    trained = vqcore.load_pretrained("depth")
    torch.manual_seed(0)
    fresh = vqcore.build_backbone(trained.config).eval()
    with torch.no_grad():
        err_trained = (trained(depth)[0] - depth).abs().mean()
        err_fresh = (fresh(depth)[0] - depth).abs().mean()
    assert err_trained < 0.5 * err_fresh


def _copy_shipped(tmp_path: Path) -> Path:
    dst = tmp_path / "pretrained"
    shutil.copytree(vqcore.PRETRAINED_DIR, dst)
    return dst


def test_corrupt_file_is_one_line_naming_it(tmp_path: Path) -> None:
    folder = _copy_shipped(tmp_path)
    target = folder / "depth.pt"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(vqcore.VqcoreError, match=r"depth\.pt: sha256 .* differs") as err:
        vqcore.load_pretrained("depth", directory=folder)
    assert "\n" not in str(err.value)


def test_missing_file_and_missing_manifest(tmp_path: Path) -> None:
    folder = _copy_shipped(tmp_path)
    (folder / "rgb.pt").unlink()
    with pytest.raises(vqcore.VqcoreError, match=r"rgb\.pt: pretrained 'rgb' backbone not found"):
        vqcore.pretrained_path("rgb", folder)
    (folder / MANIFEST_NAME).unlink()
    with pytest.raises(vqcore.VqcoreError, match="manifest not found"):
        vqcore.pretrained_path("rgbd", folder)
    (folder / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(vqcore.VqcoreError, match="unreadable pretrained-backbone manifest"):
        vqcore.pretrained_manifest(folder)


def test_unknown_setup_and_unlisted_setup(tmp_path: Path) -> None:
    with pytest.raises(vqcore.VqcoreError, match="setup must be one of"):
        vqcore.pretrained_path("lidar")
    folder = _copy_shipped(tmp_path)
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    del manifest["backbones"]["depth"]
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(vqcore.VqcoreError, match="no pretrained 'depth' backbone listed"):
        vqcore.pretrained_path("depth", folder)


def test_strip_checkpoint_drops_resume_state(tmp_path: Path) -> None:
    cfg = vqcore.StageOneConfig.preset(
        "cpu",
        "depth",
        backbone=vqcore.BackboneConfig.cpu(
            "depth", hidden=8, res_hidden=4, num_embeddings=8, embedding_dim=4
        ),
        iterations=3,
        batch_size=2,
        image_size=16,
        log_every=1,
        out_dir=tmp_path / "run",
    )
    vqcore.train_dada(cfg)
    src = tmp_path / "run" / vqcore.CHECKPOINT_NAME
    full = torch.load(src, weights_only=True)
    assert [p["step"] for p in full["curve"]] == [1.0, 2.0, 3.0]
    dst = vqcore.strip_checkpoint(src, tmp_path / "small.pt")
    small = torch.load(dst, weights_only=True)
    assert {"optimizer", "scheduler", "rng"}.isdisjoint(small)
    assert small["curve"] == full["curve"]
    model = vqcore.load_backbone(dst, setup="depth")
    ref = vqcore.load_backbone(src, setup="depth")
    x = torch.rand(1, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(x)[0], ref(x)[0])
