"""Shared tiny configurations so the suite stays fast on 2 shared cores. Nothing here or in the
tests needs a file outside this package: they also run from an unpacked sdist (README)."""

from __future__ import annotations

import pytest
import torch
from vqcore import BackboneConfig, StageOneConfig


def pytest_configure(config: pytest.Config) -> None:
    # The workspace's pyproject.toml registers the marker; an unpacked sdist has no pytest config.
    if "cuda" not in {line.split(":")[0] for line in config.getini("markers")}:
        config.addinivalue_line("markers", "cuda: tests that need a CUDA device")


@pytest.fixture(autouse=True)
def _few_threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(min(previous, 2))
    yield
    torch.set_num_threads(previous)


def make_tiny_backbone(setup: str = "rgbd", **overrides) -> BackboneConfig:
    base = dict(hidden=16, res_hidden=8, num_res_layers=1, num_embeddings=32, embedding_dim=8)
    base.update(overrides)
    return BackboneConfig.cpu(setup, **base)


def make_tiny_stage_one(setup: str, out_dir, **overrides) -> StageOneConfig:
    base = dict(
        backbone=make_tiny_backbone(setup),
        out_dir=out_dir,
        image_size=16,
        batch_size=4,
        iterations=6,
        lr_milestones=(4,),
        device="cpu",
        log_every=2,
        checkpoint_every=3,
    )
    base.update(overrides)
    return StageOneConfig.cpu(setup, **base)


@pytest.fixture
def tiny_backbone():
    """Factory ``(setup, **overrides) -> BackboneConfig`` of a very small model."""
    return make_tiny_backbone


@pytest.fixture
def tiny_stage_one():
    """Factory ``(setup, out_dir, **overrides) -> StageOneConfig`` for a few 16 px steps."""
    return make_tiny_stage_one
