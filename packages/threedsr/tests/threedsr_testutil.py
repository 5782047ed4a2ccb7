"""Tiny backbones, configs and synthetic data shared by the unit tests."""

from __future__ import annotations

import torch
import vqcore
from threedsr import Detector, DetectorConfig, MapCalibration, TrainData, fit_memory

TINY = dict(hidden=16, res_hidden=8, num_res_layers=1, num_embeddings=32, embedding_dim=8)


def tiny_backbone(setup: str = "rgbd", seed: int = 0) -> vqcore.DiscreteAutoencoder:
    torch.manual_seed(seed)
    return vqcore.build_backbone(vqcore.BackboneConfig.cpu(setup, **TINY)).eval()


def tiny_config(setup: str = "rgbd", out: str | None = None, **over: object) -> DetectorConfig:
    base = dict(
        image_size=64,
        batch_size=4,
        iterations=6,
        log_every=1,
        checkpoint_every=3,
        srm_base=4,
        objdec_width=4,
        objdec_bottleneck=4,
        objdec_hidden=8,
        objdec_res_hidden=4,
        unet_base=4,
        out_dir=out,
        device="cpu",
        # Test classes have a handful of scans: keep the preset's local scale in the path tested.
        local_min_scans=1,
    )
    base.update(over)
    return DetectorConfig.preset("cpu", setup=setup, **base)


def tiny_memory_config(
    setup: str = "rgbd", out: str | None = None, **over: object
) -> DetectorConfig:
    """The memory preset (method ``memory``: nothing trained) at 64 px with two descriptor scales;
    the local scale stays on with a handful of scans."""
    base = dict(image_size=64, out_dir=out, device="cpu", scales=(1.0, 2.0), local_min_scans=1)
    base.update(over)
    return DetectorConfig.preset("memory", setup=setup, **base)


def synthetic_class(setup: str = "rgbd", n: int = 6, size: int = 64, seed: int = 0) -> TrainData:
    """A disc on a plane: depth bump + coloured object, foreground = the disc."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    xs, fgs = [], []
    for _ in range(n):
        cx, cy = (torch.rand(2, generator=g) - 0.5) * 0.3
        r = ((xx - cx) ** 2 + (yy - cy) ** 2).sqrt()
        fg = (r < 0.6).float()
        depth = fg * (0.1 + 0.8 * (1 - r / 0.6).clamp(0, 1))
        rgb = torch.stack([0.2 + 0.6 * fg, 0.3 + 0.2 * fg * torch.cos(6 * xx), 0.5 - 0.3 * fg])
        full = torch.cat([depth[None], rgb])
        xs.append({"rgbd": full, "depth": full[:1], "rgb": full[1:]}[setup])
        fgs.append(fg[None])
    return TrainData(torch.stack(xs), torch.stack(fgs))


def ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    """One ``torchrun``-like process (env rendezvous, gloo) training a tiny detector."""
    import os

    from threedsr import train_detector

    torch.set_num_threads(1)
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
    )
    cfg = tiny_config("depth", out=out, iterations=3, batch_size=4)
    train_detector(cfg, backbone=tiny_backbone("depth"), data=synthetic_class("depth"))


def random_parts(g: torch.Generator, n_parts: int, c: int) -> torch.Tensor:
    """(P, C) channel masks of memory parts, none empty, overlapping at random."""
    parts = torch.rand(n_parts, c, generator=g) < 0.5
    parts[torch.arange(n_parts), torch.randint(0, c, (n_parts,), generator=g)] = True
    return parts


def plain_memory_detector() -> Detector:
    """An rgbd memory detector of three synthetic scans at 64 px: one scale, plain distances,
    a unit calibration (nothing fitted beyond the bank)."""
    cfg = DetectorConfig.for_memory("rgbd", image_size=64, memory={"local_k": 0, "scales": (1.0,)})
    memory = fit_memory(synthetic_class("rgbd", n=3, seed=1).x, "rgbd", cfg.memory)
    return Detector(cfg, memory=memory, memory_calibration=MapCalibration(0.0, 1.0))
