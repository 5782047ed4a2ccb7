"""vqcore.checkpoint_info (issue 15): what a backbone.pt says about itself, without the caller
reading the checkpoint's keys."""

from __future__ import annotations

import pytest
import torch
import vqcore


def _save(tmp_path, **extra):
    model = vqcore.build_backbone(vqcore.BackboneConfig.cpu("depth"))
    payload = {"config": model.config.to_dict(), "model": model.state_dict(), **extra}
    return vqcore.save_checkpoint(payload, tmp_path / "backbone.pt")


def test_checkpoint_info_reports_setup_and_progress(tmp_path) -> None:
    _save(tmp_path, step=3, total=10, complete=False, torch_version=torch.__version__)
    info = vqcore.checkpoint_info(tmp_path)  # a folder resolves to its backbone.pt
    assert info.path == tmp_path / "backbone.pt"
    assert (info.setup, info.complete, info.step, info.total) == ("depth", False, 3, 10)
    assert info.format_version == vqcore.FORMAT_VERSION
    assert info.config["setup"] == "depth"


def test_checkpoint_info_of_the_shipped_backbone() -> None:
    info = vqcore.checkpoint_info(vqcore.pretrained_path("rgbd"))
    assert info.setup == "rgbd" and info.complete


def test_checkpoint_info_rejects_a_foreign_file(tmp_path) -> None:
    (tmp_path / "x.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(vqcore.VqcoreError, match=r"x\.pt"):
        vqcore.checkpoint_info(tmp_path / "x.pt")
