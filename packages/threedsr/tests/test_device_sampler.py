"""The device sampler (issue 25): torch-only batches and anomalies with no host sync."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy import stats
from threedsr.checkpoint import atomic_save, read_checkpoint
from threedsr.dsr.anomaly_generator import MODE_BOTH, MODE_HI, MODE_LO
from threedsr.dsr.augment import anomaly_masks
from threedsr.dsr.code_sampling import code_rank_bounds
from threedsr.dsr.device_batch import (
    device_anomaly_masks,
    generate_anomalies_device,
    image_space_anomalies_device,
    make_batch_device,
)
from threedsr.dsr.device_generator import DeviceAnomalyGenerator, sample_codes_dense
from threedsr.dsr.trainer import _DetectorTrainer
from threedsr.fit import train_detector
from threedsr_testutil import synthetic_class, tiny_backbone, tiny_config
from vqcore import DistContext
from vqcore.search import squared_distances


def test_masks_have_the_host_masks_statistics() -> None:
    n, shape = 300, (64, 64)
    host = anomaly_masks(n, shape, rng=np.random.default_rng(0), threshold=(0.4, 0.8))
    dev = device_anomaly_masks(n, shape, generator=torch.Generator().manual_seed(0))[:, 0]
    cov_h = host.reshape(n, -1).mean(1)
    cov_d = dev.reshape(n, -1).mean(1).numpy()
    assert set(np.unique(dev.numpy())) <= {0.0, 1.0}
    # zeroed masks: ~50 % (+ the few whose noise never passes the threshold) on both paths
    assert abs((cov_d == 0).mean() - (cov_h == 0).mean()) < 0.12
    # coverage of the masks that are not zeroed: the same distribution
    assert stats.ks_2samp(cov_h[cov_h > 0], cov_d[cov_d > 0]).pvalue > 1e-3


def test_batch_is_a_function_of_the_generator_seed() -> None:
    data = synthetic_class("rgbd", n=6)
    cfg = tiny_config("rgbd")

    def draw(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        return make_batch_device(data.x, data.foreground, cfg, 4, g)

    (x1, m1), (x2, m2), (x3, _) = draw(1), draw(1), draw(2)
    assert torch.equal(x1, x2) and torch.equal(m1, m2) and not torch.equal(x1, x3)
    assert set(torch.unique(m1).tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("setup", ["rgbd", "depth", "rgb"])
def test_image_space_anomalies_change_the_input_only_under_the_mask(setup: str) -> None:
    data = synthetic_class(setup, n=6)
    cfg = tiny_config(setup, image_anomaly_prob=1.0, depth_anomaly_amplitude=(0.3, 0.3))
    mask = torch.zeros_like(data.foreground)
    mask[:, :, 8:20, 8:20] = 1
    y = image_space_anomalies_device(data.x, mask, cfg, torch.Generator().manual_seed(0))
    outside = (mask == 0).expand_as(y)
    assert torch.equal(y[outside], data.x[outside])
    assert bool((y != data.x).flatten(1).any(1).all())  # every sample got a defect


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    k=st.integers(3, 80),
    strengths=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=3),
    exclude=st.floats(0.0, 0.5),
)
# float32(0.7) * 10 is 7.0 in float32 and 6.99999988 in float64 (code_rank_bounds's product)
@example(seed=0, k=10, strengths=[0.7], exclude=0.0)
def test_dense_code_sampling_draws_ranks_inside_the_bounds(seed, k, strengths, exclude) -> None:
    b = len(strengths)
    g = torch.Generator().manual_seed(seed)
    feats, cb = torch.randn(b, 4, 5, 5, generator=g), torch.randn(k, 4, generator=g)
    mask = torch.rand(b, 5, 5, generator=g) > 0.3
    s = torch.tensor(strengths)
    _, idx = sample_codes_dense(feats, cb, mask, s, exclude_nearest=exclude, generator=g)
    assert torch.equal(idx >= 0, mask)
    # the ranking's own distances (cdist would round near-ties differently)
    d = squared_distances(feats.permute(0, 2, 3, 1).reshape(-1, 4), cb, row_norms=False)
    rank = d.argsort(1).argsort(1)  # rank of every code for every cell
    picked = rank.gather(1, idx.reshape(-1, 1).clamp_min(0))[:, 0].view(b, 5, 5)
    for i in range(b):
        lo, hi = code_rank_bounds(float(s[i]), k, exclude)
        r = picked[i][mask[i]]
        assert bool(((r >= lo) & (r < hi)).all()), (lo, hi, r)


def test_dense_code_sampling_covers_the_whole_rank_range() -> None:
    g = torch.Generator().manual_seed(0)
    feats, cb = torch.randn(1, 4, 40, 40, generator=g), torch.randn(64, 4, generator=g)
    mask = torch.ones(1, 40, 40, dtype=torch.bool)
    _, idx = sample_codes_dense(feats, cb, mask, torch.tensor([0.5]), generator=g)
    d = squared_distances(feats.permute(0, 2, 3, 1).reshape(-1, 4), cb, row_norms=False)
    r = d.argsort(1).argsort(1).gather(1, idx.reshape(-1, 1))[:, 0]
    lo, hi = code_rank_bounds(0.5, 64)
    counts = torch.bincount(r - lo, minlength=hi - lo)
    assert len(counts) == hi - lo and bool((counts > 0).all())  # every allowed rank is drawn
    # uniform over [lo, hi): chi-square against equal counts
    assert stats.chisquare(counts.numpy()).pvalue > 1e-3


def test_device_generator_changes_only_masked_cells_and_draws_every_mode() -> None:
    bb = tiny_backbone("rgbd")
    x = synthetic_class("rgbd", n=6).x.repeat(4, 1, 1, 1)
    mask = torch.zeros(24, 1, 64, 64)
    mask[:12, :, 16:40, 16:40] = 1  # the last 12 samples have no anomaly
    gen = DeviceAnomalyGenerator(modality_split_prob=0.5)(
        bb, x, mask, generator=torch.Generator().manual_seed(0), rng=np.random.default_rng(0)
    )
    clean = bb.encode(x)
    torch.testing.assert_close(gen.q_top_anom[12:], clean.q_top[12:])
    torch.testing.assert_close(gen.q_bot_anom[12:], clean.q_bot[12:])
    assert float(gen.gt[12:].sum()) == 0
    outside = torch.ones(24, 8, 8, dtype=torch.bool)
    outside[:, 2:5, 2:5] = False  # coarse cells (stride 8) of the 16:40 square
    diff = (gen.q_top_anom != clean.q_top).any(1)
    assert not bool(diff[outside].any())
    assert set(gen.mode.tolist()) == {MODE_BOTH, MODE_LO, MODE_HI}


def _trainer(tmp_path, sampler: str, **over) -> _DetectorTrainer:
    cfg = tiny_config("rgbd", out=str(tmp_path), sampler=sampler, **over)
    ctx = DistContext(0, 1, 0, torch.device("cpu"), False)
    return _DetectorTrainer(
        cfg, ctx, tmp_path, backbone=tiny_backbone("rgbd"), data=synthetic_class("rgbd")
    )


_READS = ("item", "cpu", "numpy", "tolist", "__bool__", "__int__", "__float__")


def _count_reads(monkeypatch, trainer: _DetectorTrainer) -> list[str]:
    """Count every Tensor read-back in the trainer's steps, except inside the optimizer's
    step: the CPU's Adam keeps its step counter as a CPU tensor by design (CUDA's fused Adam
    keeps it on the device)."""
    calls: list[str] = []
    paused = [False]
    for name in _READS:
        original = getattr(torch.Tensor, name)

        def counted(self, *a, _name=name, _orig=original, **k):
            if not paused[0]:
                calls.append(_name)
            return _orig(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, counted)
    step = trainer.optimizer.step

    def optimizer_step(*a, **k):
        paused[0] = True
        try:
            return step(*a, **k)
        finally:
            paused[0] = False

    monkeypatch.setattr(trainer.optimizer, "step", optimizer_step)
    return calls


@pytest.mark.filterwarnings("ignore:Seems like `optimizer.step\\(\\)` has been overridden")
@pytest.mark.parametrize("prob", [0.0, 0.5, 1.0])
def test_a_device_step_reads_nothing_back_from_the_device(tmp_path, monkeypatch, prob) -> None:
    # 0: feature-space anomalies only (the paper preset), 1: image space only (the cpu preset)
    trainer = _trainer(tmp_path, "device", image_anomaly_prob=prob)
    trainer.model.train()
    trainer.train_step()  # warm up lazily built state
    calls = _count_reads(monkeypatch, trainer)
    trainer.train_step()
    trainer.train_step()
    monkeypatch.undo()
    assert calls == []
    # the counter does see the host sampler's read-backs (what the device sampler removes)
    host = _trainer(tmp_path / "host", "host")
    host.model.train()
    calls = _count_reads(monkeypatch, host)
    host.train_step()
    monkeypatch.undo()
    assert "cpu" in calls and "__bool__" in calls


def test_device_steps_are_a_function_of_seed_and_step(tmp_path) -> None:
    a, b = _trainer(tmp_path / "a", "device"), _trainer(tmp_path / "b", "device")
    la = [float(a.train_step().total.detach()) for _ in range(2)]
    lb = [float(b.train_step().total.detach()) for _ in range(2)]
    assert la == lb
    c = _trainer(tmp_path / "c", "device", seed=1)
    assert float(c.train_step().total.detach()) != la[0]


def test_a_non_finite_loss_is_reported_at_the_next_log(tmp_path) -> None:
    trainer = _trainer(tmp_path, "device")
    trainer.model.train()
    with torch.no_grad():
        next(trainer.model.parameters()).fill_(float("nan"))
    losses = trainer.train_step()  # no check in the step itself
    with pytest.raises(Exception, match="non-finite at step 0"):
        trainer.log(losses, [])


def test_device_resume_equals_uninterrupted(tmp_path) -> None:
    data = synthetic_class("depth")
    full = tiny_config("depth", out=str(tmp_path / "full"), iterations=6, sampler="device")
    train_detector(full, backbone=tiny_backbone("depth"), data=data)
    half = full.replace(out_dir=str(tmp_path / "half"), iterations=3)
    train_detector(half, backbone=tiny_backbone("depth"), data=data)
    resumed = train_detector(half.replace(iterations=6), backbone=tiny_backbone("depth"), data=data)
    assert resumed.step == 6
    a = read_checkpoint(tmp_path / "full" / "detector.pt")
    b = read_checkpoint(tmp_path / "half" / "detector.pt")
    assert a["detector_config"]["anomaly"]["sampler"] == "device"
    for mod in a["heads_state"]:
        for k in a["heads_state"][mod]:
            torch.testing.assert_close(
                a["heads_state"][mod][k], b["heads_state"][mod][k], rtol=0, atol=1e-6
            )


def test_files_without_a_sampler_load_as_host_and_auto_resumes_them(tmp_path) -> None:
    data = synthetic_class("depth")
    cfg = tiny_config("depth", out=str(tmp_path / "run"), iterations=2, sampler="device")
    train_detector(cfg, backbone=tiny_backbone("depth"), data=data)
    for name in ("detector.pt", "train_state.pt"):
        path = tmp_path / "run" / name
        kind = "threedsr.detector" if name == "detector.pt" else "threedsr.train_state"
        ck = read_checkpoint(path, kind=kind)
        del ck["detector_config"]["anomaly"]["sampler"]  # as written before the field
        atomic_save(ck, path)
        assert read_checkpoint(path, kind=kind)["detector_config"]["anomaly"]["sampler"] == "host"
    more = train_detector(
        cfg.replace(iterations=3, anomaly=cfg.anomaly.replace(sampler="auto")),
        backbone=tiny_backbone("depth"),
        data=data,
    )
    assert more.sampler == "host"
    final = read_checkpoint(tmp_path / "run" / "detector.pt")
    assert final["detector_config"]["anomaly"]["sampler"] == "host"


@pytest.mark.slow
def test_device_sampler_learns_like_the_host_sampler(tmp_path) -> None:
    # Measured (40 steps, tiny rgbd): focal 0.32 -> 0.11 on both samplers, total 5.09 -> 4.21
    # (host) and 5.09 -> 4.20 (device).
    data = synthetic_class("rgbd")
    last = {}
    for sampler in ("host", "device"):
        cfg = tiny_config("rgbd", out=str(tmp_path / sampler), iterations=40, sampler=sampler)
        res = train_detector(cfg, backbone=tiny_backbone("rgbd"), data=data)
        hist = {k: [h[k] for h in res.history] for k in ("total", "focal")}
        first = {k: np.mean(v[:5]) for k, v in hist.items()}
        last[sampler] = {k: np.mean(v[-5:]) for k, v in hist.items()}
        assert last[sampler]["focal"] < 0.6 * first["focal"], (sampler, first, last)
        assert last[sampler]["total"] < 0.9 * first["total"], (sampler, first, last)
    ratio = last["device"]["total"] / last["host"]["total"]
    assert 0.8 < ratio < 1.25, last


def test_all_image_space_anomalies_skip_the_code_replacement() -> None:
    data = synthetic_class("rgbd", n=4)
    cfg = tiny_config("rgbd", image_anomaly_prob=1.0)
    bb = tiny_backbone("rgbd")
    mask = torch.zeros_like(data.foreground)
    mask[:2, :, 16:40, 16:40] = 1  # samples 2 and 3: no anomaly
    gen, x_anom = generate_anomalies_device(
        DeviceAnomalyGenerator(),
        bb,
        data.x,
        mask,
        cfg,
        torch.Generator().manual_seed(0),
        np.random.default_rng(0),
    )
    assert torch.equal(gen.gt, mask)
    assert torch.equal(x_anom[2:], data.x[2:]) and not torch.equal(x_anom[:2], data.x[:2])
    clean, anom = bb.encode(data.x), bb.encode(x_anom)
    torch.testing.assert_close(gen.q_top, clean.q_top)
    torch.testing.assert_close(gen.q_bot_anom, anom.q_bot)
    torch.testing.assert_close(gen.q_bot_anom[2:], clean.q_bot[2:])
