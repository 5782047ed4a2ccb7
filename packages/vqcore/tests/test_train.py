from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from vqcore import (
    BackboneConfig,
    ImageFolderSource,
    ProceduralRGBSource,
    StageOneBatches,
    StageOneConfig,
    TrainEvent,
    VqcoreError,
    build_backbone,
    load_backbone,
    read_checkpoint,
    reconstruction_loss,
    resolve_device,
    save_checkpoint,
    train_dada,
)


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def test_short_cpu_run_lowers_the_reconstruction_loss(tmp_path, tiny_stage_one):
    cfg = tiny_stage_one(
        "rgbd",
        tmp_path,
        iterations=25,
        lr=1e-2,
        lr_milestones=(),
        log_every=5,
        checkpoint_every=1000,
    )
    held_out = StageOneBatches("rgbd", ProceduralRGBSource(), image_size=16, batch_size=8, seed=99)[
        0
    ]

    def held_out_l1(model: torch.nn.Module) -> float:
        with torch.no_grad():
            return float((model.eval()(held_out)[0] - held_out).abs().mean())

    torch.manual_seed(cfg.seed)
    before = held_out_l1(build_backbone(cfg.backbone))
    events: list[TrainEvent] = []
    result = train_dada(cfg, callbacks=events.append)
    assert held_out_l1(result.model) < 0.8 * before
    assert [e.step for e in events] == [5, 10, 15, 20, 25] and all(e.total == 25 for e in events)
    for key in (
        "loss",
        "recon",
        "vq_loss",
        "recon_depth",
        "recon_rgb",
        "perplexity_top",
        "perplexity_bot",
        "it_s",
        "samples_s",
        "lr",
    ):
        assert np.isfinite(events[-1].metrics[key]), key
    assert result.steps == 25 and not result.model.training
    assert result.checkpoint == tmp_path / "backbone.pt"


def test_checkpoint_round_trip(tmp_path, tiny_stage_one):
    result = train_dada(tiny_stage_one("rgbd", tmp_path))
    loaded = load_backbone(tmp_path)  # a folder resolves to backbone.pt
    assert type(loaded) is type(result.model) and not loaded.training
    assert loaded.config == result.model.config
    for key, value in _state(result.model).items():
        assert torch.equal(loaded.state_dict()[key], value), key
    data = read_checkpoint(tmp_path / "backbone.pt")
    assert data["kind"] == "threedsr.backbone" and data["format_version"] == 1
    assert data["step"] == 6 and data["complete"] and isinstance(data["config"], dict)
    assert {"optimizer", "scheduler", "rng", "train_config"} <= set(data)
    x = torch.rand(1, 4, 16, 16)
    torch.testing.assert_close(loaded(x)[0], result.model(x)[0])
    assert not list(tmp_path.glob("*.tmp"))  # atomic write leaves no temporary file


def test_resume_continues_exactly(tmp_path, tiny_stage_one):
    straight = train_dada(tiny_stage_one("rgbd", tmp_path / "a", iterations=6))
    train_dada(tiny_stage_one("rgbd", tmp_path / "b", iterations=3))
    resumed = train_dada(tiny_stage_one("rgbd", tmp_path / "b", iterations=6, resume=True))
    assert resumed.steps == 6 and [h for h in resumed.history] and straight.steps == 6
    a, b = _state(straight.model), _state(resumed.model)
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=1e-6, msg=key)
    sa, sb = read_checkpoint(tmp_path / "a"), read_checkpoint(tmp_path / "b")
    assert sa["scheduler"]["last_epoch"] == sb["scheduler"]["last_epoch"] == 6
    torch.testing.assert_close(
        sa["optimizer"]["state"][0]["exp_avg"], sb["optimizer"]["state"][0]["exp_avg"]
    )
    # Nothing left to do: returns the stored model without training.
    again = train_dada(tiny_stage_one("rgbd", tmp_path / "b", iterations=6, resume=True))
    assert again.steps == 6 and again.history == []


def test_keyboard_interrupt_saves_then_resume_finishes(tmp_path, tiny_stage_one):
    def stop_at_4(event: TrainEvent) -> None:
        if event.step == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_dada(tiny_stage_one("depth", tmp_path, checkpoint_every=100), callbacks=stop_at_4)
    assert read_checkpoint(tmp_path)["step"] == 4
    done = train_dada(tiny_stage_one("depth", tmp_path, checkpoint_every=100, resume=True))
    straight = train_dada(tiny_stage_one("depth", tmp_path / "ref", checkpoint_every=100))
    for key, value in _state(straight.model).items():
        torch.testing.assert_close(done.model.state_dict()[key], value, rtol=0, atol=1e-6)


def test_existing_run_is_not_overwritten(tmp_path, tiny_stage_one):
    train_dada(tiny_stage_one("depth", tmp_path, iterations=1))
    with pytest.raises(VqcoreError, match="already exists"):
        train_dada(tiny_stage_one("depth", tmp_path, iterations=1))
    train_dada(tiny_stage_one("depth", tmp_path, iterations=1, overwrite=True))
    with pytest.raises(VqcoreError, match=r"backbone\.pt: cannot resume.*'depth'"):
        train_dada(tiny_stage_one("rgb", tmp_path, iterations=2, resume=True))


def test_bad_checkpoints_are_rejected_with_one_line(tmp_path, tiny_stage_one):
    train_dada(tiny_stage_one("depth", tmp_path / "run", iterations=1))
    good = tmp_path / "run" / "backbone.pt"

    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    other = tmp_path / "other.pt"
    torch.save({"kind": "threedsr.detector", "format_version": 1}, other)
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(2)}, plain)
    future = tmp_path / "future.pt"
    save_checkpoint({"config": {}, "model": {}}, future)
    data = torch.load(future, weights_only=True)
    data["format_version"] = 99
    torch.save(data, future)

    cases = [
        (truncated, "truncated or corrupt"),
        (other, "'threedsr.detector' is not a vqcore backbone"),
        (plain, "None is not a vqcore backbone"),
        (future, "format version 99"),
        (tmp_path / "missing.pt", "not found"),
    ]
    for path, message in cases:
        with pytest.raises(VqcoreError, match=message) as info:
            load_backbone(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(VqcoreError, match="is a 'depth' backbone, but a 'rgbd' one"):
        load_backbone(good, setup="rgbd")
    assert load_backbone(good, setup="depth").in_channels == 1


def test_pickled_objects_are_refused(tmp_path):
    evil = tmp_path / "evil.pt"
    torch.save({"kind": "threedsr.backbone", "format_version": 1, "x": Path("a")}, evil)
    with pytest.raises(VqcoreError, match=r"evil\.pt: holds objects"):
        load_backbone(evil)


def test_batches_are_deterministic_and_sliced_by_rank():
    kw = dict(image_size=16, batch_size=4, seed=3)
    full = StageOneBatches("rgbd", ProceduralRGBSource(), **kw)[7]
    assert full.shape == (4, 4, 16, 16) and full.dtype == torch.float32
    assert torch.equal(full, StageOneBatches("rgbd", ProceduralRGBSource(), **kw)[7])
    assert not torch.equal(full, StageOneBatches("rgbd", ProceduralRGBSource(), **kw)[8])
    parts = [
        StageOneBatches("rgbd", ProceduralRGBSource(), rank=r, world_size=2, **kw)[7]
        for r in range(2)
    ]
    assert torch.equal(torch.cat(parts), full)
    assert 0.0 <= float(full.min()) and float(full.max()) <= 1.0
    depth = StageOneBatches("depth", ProceduralRGBSource(), **kw)[7]
    rgb = StageOneBatches("rgb", ProceduralRGBSource(), **kw)[7]
    assert torch.equal(depth, full[:, :1]) and torch.equal(rgb, full[:, 1:])
    with pytest.raises(VqcoreError, match="not divisible"):
        StageOneBatches("rgbd", ProceduralRGBSource(), world_size=3, **kw)


def test_depth_ablations():
    kw = dict(image_size=16, batch_size=2, seed=1)
    no_affine = StageOneBatches("depth", ProceduralRGBSource(), affine=False, **kw)[0]
    # Without the affine map every depth image is min-max normalised P: spans [0, 1].
    assert torch.allclose(no_affine.amin(dim=(1, 2, 3)), torch.zeros(2), atol=1e-6)
    assert torch.allclose(no_affine.amax(dim=(1, 2, 3)), torch.ones(2), atol=1e-6)
    gray = StageOneBatches("rgbd", ProceduralRGBSource(), depth_source="grayscale", **kw)[0]
    rgb = gray[:, 1:]
    luma = 0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2]
    assert not torch.allclose(gray[:, 0], luma)  # unrelated image, as in the paper
    # ... but it is a grayscale image: piecewise the luma of some procedural texture.
    src = ProceduralRGBSource()
    ref = src.sample(np.random.default_rng([1, 0, 0, 1]), 16) @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_allclose(gray[0, 0].numpy(), np.clip(ref, 0, 1), atol=1e-6)


def test_image_folder_source(tmp_path):
    (tmp_path / "n01" / "deep").mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (30, 50, 3), dtype=np.uint8)).save(
        tmp_path / "n01" / "a.JPEG"
    )
    Image.fromarray(np.full((20, 20), 255, np.uint8)).save(tmp_path / "n01" / "deep" / "b.png")
    src = ImageFolderSource(tmp_path)
    assert len(src.files) == 2
    imgs = [src.sample(np.random.default_rng(i), 16) for i in range(8)]
    assert all(i.shape == (16, 16, 3) and i.dtype == np.float32 for i in imgs)
    assert any(np.allclose(i, 1.0) for i in imgs)  # the grayscale PNG became white RGB
    (tmp_path / "n01" / "broken.png").write_bytes(b"not an image")
    src = ImageFolderSource(tmp_path)
    with pytest.raises(VqcoreError, match=r"broken\.png: cannot read image"):
        for i in range(50):
            src.sample(np.random.default_rng(i), 16)


def test_image_folder_errors(tmp_path):
    with pytest.raises(VqcoreError, match="does not exist"):
        ImageFolderSource(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(VqcoreError, match="no images found"):
        ImageFolderSource(tmp_path / "empty")


def test_training_from_an_image_folder(tmp_path, tiny_stage_one):
    rng = np.random.default_rng(1)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (24, 40, 3), dtype=np.uint8)).save(
            tmp_path / f"{i}.png"
        )
    result = train_dada(tiny_stage_one("rgb", tmp_path / "run", rgb_dir=tmp_path, iterations=2))
    assert result.steps == 2


def test_reconstruction_loss_variants():
    target = torch.zeros(2, 4, 3, 3)
    recon = torch.zeros(2, 4, 3, 3)
    recon[:, 0] = 2.0  # depth error 2, rgb error 0
    l1, parts = reconstruction_loss(recon, target, kind="l1")
    assert float(l1) == pytest.approx(0.5)  # reference: mean over 4 channels
    assert float(parts["recon_depth"]) == 2.0 and float(parts["recon_rgb"]) == 0.0
    l2, _ = reconstruction_loss(recon, target, kind="l2", lambda_depth=10.0, lambda_rgb=1.0)
    assert float(l2) == pytest.approx(40.0)
    with pytest.raises(ValueError, match="4-channel"):
        reconstruction_loss(recon[:, :1], target[:, :1], lambda_depth=1.0, lambda_rgb=1.0)


def test_configs_and_presets():
    paper = StageOneConfig.paper("rgbd")
    assert (paper.batch_size, paper.lr, paper.iterations, paper.lr_milestones) == (
        64,
        2e-4,
        100_000,
        (80_000, 90_000),
    )
    assert paper.image_size == 256 and paper.loss == "l1" and paper.lr_gamma == 0.1
    assert paper.backbone == BackboneConfig.paper("rgbd")
    assert StageOneConfig.paper("depth").loss == "l2"  # the depth script's MSE
    # spec §2.2: the Perlin simulator with its random affine map; RGB from an image folder only
    # when given one (procedural textures otherwise: the vqcore README says so).
    assert paper.affine and paper.depth_source == "perlin" and paper.rgb_dir is None
    assert (paper.lambda_depth, paper.lambda_rgb, paper.precision) == (None, None, "fp32")
    assert StageOneConfig.preset("paper", "rgbd", iterations=1000).lr_milestones == (800, 900)
    cpu = StageOneConfig.preset("cpu", "rgb", iterations=None, batch_size=4)
    assert cpu.iterations == 300 and cpu.batch_size == 4 and cpu.backbone.hidden == 64
    assert cpu.lr_milestones == (240, 270)
    assert StageOneConfig.from_dict(cpu.to_dict()) == cpu
    with pytest.raises(VqcoreError, match="unknown stage-1 preset"):
        StageOneConfig.preset("huge")
    with pytest.raises(VqcoreError, match="backbone setup 'depth' differs"):
        StageOneConfig(setup="rgbd", backbone=BackboneConfig.cpu("depth"))
    with pytest.raises(VqcoreError, match="multiple of 8"):
        StageOneConfig.cpu(image_size=30)
    with pytest.raises(VqcoreError, match="both"):
        StageOneConfig.cpu(lambda_depth=1.0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_resolve_device_without_cuda():
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("CPU") == torch.device("cpu")
    with pytest.raises(VqcoreError, match="CUDA is not available"):
        resolve_device("cuda")
    with pytest.raises(VqcoreError, match=r"unknown device|unsupported device"):
        resolve_device("tpu9")


def test_environment_is_clean():
    assert int(os.environ.get("WORLD_SIZE", "1")) == 1


def test_dataloader_workers_do_not_change_the_result(tmp_path, tiny_stage_one):
    states = [
        _state(
            train_dada(tiny_stage_one("rgbd", tmp_path / str(w), iterations=2, num_workers=w)).model
        )
        for w in (0, 1)
    ]
    for key, value in states[0].items():
        assert torch.equal(states[1][key], value), key


def _ctrl_c_after_adam_step(monkeypatch, nth: int) -> None:
    """A real SIGINT right after the ``nth`` Adam update, before the scheduler and the step
    counter move (where a Ctrl-C lands with some probability every step)."""
    real = torch.optim.Adam.step
    calls: list[int] = []

    def step_then_ctrl_c(self, *args, **kwargs):
        out = real(self, *args, **kwargs)
        calls.append(1)
        if len(calls) == nth:
            signal.raise_signal(signal.SIGINT)
        return out

    monkeypatch.setattr(torch.optim.Adam, "step", step_then_ctrl_c)


def test_ctrl_c_inside_a_step_resumes_to_the_uninterrupted_run(
    tmp_path, tiny_stage_one, monkeypatch
):
    # The checkpoint written on Ctrl-C held the third update's weights and codebooks under
    # step 2; the resumed run did step 3 again and drifted from the uninterrupted one.
    straight = train_dada(tiny_stage_one("rgbd", tmp_path / "ref", iterations=6))
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _ctrl_c_after_adam_step(monkeypatch, 3)
        with pytest.raises(KeyboardInterrupt):
            train_dada(tiny_stage_one("rgbd", tmp_path / "cut", iterations=6))
    finally:
        monkeypatch.undo()
        signal.signal(signal.SIGINT, previous)
    assert read_checkpoint(tmp_path / "cut")["step"] == 3
    done = train_dada(tiny_stage_one("rgbd", tmp_path / "cut", iterations=6, resume=True))
    for key, value in _state(straight.model).items():
        torch.testing.assert_close(done.model.state_dict()[key], value, rtol=0, atol=0, msg=key)
