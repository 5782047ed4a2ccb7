"""The stage-1 ``sampler`` option: batches made on the training device, resume, old checkpoints."""

from __future__ import annotations

import pytest
import torch
from vqcore import (
    DeviceStageOneBatches,
    StageOneConfig,
    VqcoreError,
    host_workers,
    read_checkpoint,
    resolve_sampler,
    save_checkpoint,
    train_dada,
)


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def test_device_batches_are_pure_functions_of_seed_rank_and_step():
    data = DeviceStageOneBatches("rgbd", image_size=16, batch_size=4, seed=3)
    a, b = data[5], DeviceStageOneBatches("rgbd", image_size=16, batch_size=4, seed=3)[5]
    assert a.shape == (4, 4, 16, 16) and torch.equal(a, b)
    assert not torch.equal(a, data[6])
    assert not torch.equal(a, DeviceStageOneBatches("rgbd", image_size=16, batch_size=4)[5])
    ranks = [
        DeviceStageOneBatches("depth", image_size=16, batch_size=4, rank=r, world_size=2)[5]
        for r in (0, 1)
    ]
    assert ranks[0].shape == (2, 1, 16, 16) and not torch.equal(*ranks)
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    rgb = DeviceStageOneBatches("rgb", image_size=16, batch_size=2)[0]
    assert rgb.shape == (2, 3, 16, 16)


def test_device_sampler_resume_equals_an_uninterrupted_run(tmp_path, tiny_stage_one):
    cfg = dict(sampler="device", checkpoint_every=100)
    straight = train_dada(tiny_stage_one("rgbd", tmp_path / "a", **cfg))
    train_dada(tiny_stage_one("rgbd", tmp_path / "b", iterations=3, **cfg))
    resumed = train_dada(tiny_stage_one("rgbd", tmp_path / "b", resume=True, **cfg))
    a, b = _state(straight.model), _state(resumed.model)
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=1e-6, msg=key)
    assert read_checkpoint(tmp_path / "b")["train_config"]["sampler"] == "device"
    # ``auto`` resumes with the checkpoint's sampler, not the CPU default.
    auto = train_dada(tiny_stage_one("rgbd", tmp_path / "b", iterations=8, resume=True))
    more = train_dada(tiny_stage_one("rgbd", tmp_path / "a", iterations=8, resume=True, **cfg))
    for key, value in _state(more.model).items():
        torch.testing.assert_close(_state(auto.model)[key], value, rtol=0, atol=1e-6, msg=key)


def test_the_samplers_train_on_different_data(tmp_path, tiny_stage_one):
    runs = [
        _state(train_dada(tiny_stage_one("depth", tmp_path / s, iterations=2, sampler=s)).model)
        for s in ("host", "device")
    ]
    assert any(not torch.equal(runs[0][k], runs[1][k]) for k in runs[0])


def test_checkpoints_without_a_sampler_resume_on_the_host(tmp_path, tiny_stage_one):
    train_dada(tiny_stage_one("depth", tmp_path / "old", iterations=3, sampler="host"))
    state = read_checkpoint(tmp_path / "old")
    del state["train_config"]["sampler"]  # as written before the option existed
    save_checkpoint(state, tmp_path / "old" / "backbone.pt")
    resumed = train_dada(tiny_stage_one("depth", tmp_path / "old", resume=True))
    straight = train_dada(tiny_stage_one("depth", tmp_path / "new", sampler="host"))
    for key, value in _state(straight.model).items():
        torch.testing.assert_close(_state(resumed.model)[key], value, rtol=0, atol=1e-6)
    assert read_checkpoint(tmp_path / "old")["train_config"]["sampler"] == "host"


def test_sampler_resolution_and_errors(tmp_path):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_sampler("auto", cpu) == "host"
    assert resolve_sampler("auto", cuda) == "device"
    assert resolve_sampler("auto", cuda, rgb_dir=tmp_path) == "host"
    assert resolve_sampler("auto", cuda, depth_source="grayscale") == "host"
    assert resolve_sampler("host", cuda) == "host"
    with pytest.raises(VqcoreError, match="sampler must be one of"):
        StageOneConfig.cpu(sampler="gpu")
    with pytest.raises(VqcoreError, match="procedural RGB and Perlin depth only"):
        StageOneConfig.cpu(sampler="device", rgb_dir=tmp_path)
    with pytest.raises(VqcoreError, match="num_workers"):
        StageOneConfig.cpu(num_workers=-2)
    assert StageOneConfig.paper().sampler == "auto" and StageOneConfig.cpu().sampler == "auto"
    assert StageOneConfig.from_dict(StageOneConfig.cpu(sampler="device").to_dict()).sampler == (
        "device"
    )


def test_host_worker_count_scales_with_cores_on_cuda_only():
    assert host_workers(0, cuda=True) == 0 and host_workers(5, cuda=False) == 5
    assert host_workers(-1, cuda=False) == 0
    many = host_workers(-1, cuda=True)
    assert 1 <= many <= 16
    assert host_workers(-1, cuda=True, ranks_per_node=64) == 1


def test_device_batches_never_wait_for_the_device(monkeypatch):
    # Reading a tensor value on the host (``.item()``, ``bool()``, ``int()``, ``.cpu()``) waits,
    # on CUDA, for every queued kernel: the device sampler must let the GPU run ahead, so it
    # must never do that. Counted at torch.Tensor's public read-back methods.
    reads: list[str] = []
    for name in ("item", "tolist", "cpu", "numpy", "__bool__", "__int__", "__float__", "__index__"):
        original = getattr(torch.Tensor, name)

        def counted(self, *a, _name=name, _original=original, **k):
            reads.append(_name)
            return _original(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, counted)
    DeviceStageOneBatches("rgbd", image_size=16, batch_size=3)[0]
    assert reads == []
    bool(torch.ones(()))  # the counter sees a read-back
    assert reads == ["__bool__"]
