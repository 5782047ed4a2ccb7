"""Benchmark of the descriptor memory's hand-made descriptors on a CPU: depthwise row filters
and slice erosions against the one-channel convolutions and ``max_pool2d`` of threedsr before
session 18, in one process, alternating, best of ``--repeats``.

- ``blur``: the separable Gaussian of the colour (3 channels) and depth (1 channel) descriptors
  at each scale (``threedsr.smoothing.separable_filter``).
- ``interior``: ``interior_distance``, the erosions counted inside the silhouette.
- ``all groups``: ``local_descriptors`` of an rgbd batch, every group at the preset's four scales
  (what ``train``, ``eval`` and ``predict`` compute for every scan).
- ``gaussian smoothing``: ``threedsr.gaussian_filter`` of a batch of maps (``--smoothing gaussian``).

The baseline is the earlier code, kept here: each image a one-channel ``conv2d`` (1 x K, then
K x 1), which PyTorch's CPU convolution runs image by image; the square erosion as
``-max_pool2d(-x, 3, 1, 1)``; the erosion loop always to half the image's side. Both give the
same values (the table reports the largest difference). Inputs: a synthetic rgbd batch at the
model size, the object a disc of about a fifth of the image (as a cable gland at 256 px).

    uv run python tools/bench/bench_descriptors.py
"""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import torch
import torch.nn.functional as F
from torch import Tensor

sys.path.insert(0, str(Path(__file__).parent))
from bench_threedsr import alternate_best
from threedsr import gaussian_filter
from threedsr.memory import descriptors
from threedsr.smoothing import gaussian_kernel1d

SCALES = (1.0, 2.0, 4.0, 8.0)
GROUPS = ("surface", "colour", "texture", "interior")


def conv_blur(x: Tensor, sigma: float) -> Tensor:
    """The descriptors' blur before session 18: every channel of every image a one-channel
    ``conv2d``, 1 x K then K x 1, replicated borders."""
    k = gaussian_kernel1d(sigma, truncate=3.0, dtype=x.dtype)
    r, (b, c, h, w) = (k.numel() - 1) // 2, x.shape
    x = x.reshape(b * c, 1, h, w)
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))
    return x.reshape(b, c, h, w)


def conv_gaussian_filter(maps: Tensor, sigma: float) -> Tensor:
    """``gaussian_filter`` before session 18 (zero padding)."""
    k = gaussian_kernel1d(sigma, dtype=maps.dtype)
    r = (k.numel() - 1) // 2
    x = F.conv2d(maps[:, None], k.view(1, 1, 1, -1), padding=(0, r))
    return F.conv2d(x, k.view(1, 1, -1, 1), padding=(r, 0))[:, 0]


def pool_interior(foreground: Tensor) -> Tensor:
    """``interior_distance`` before session 18: ``max_pool2d`` erosions, the full loop."""
    cur = foreground.float()
    depth = torch.zeros_like(cur)
    for step in range((min(cur.shape[2:]) + 1) // 2):
        depth = depth + cur
        cur = -F.max_pool2d(-cur, 3, 1, 1) if step % 2 else descriptors._erode_cross(cur)
    radius = (foreground.float().sum((2, 3), keepdim=True) / torch.pi).sqrt().clamp_min(1.0)
    return depth / radius


def before_descriptors(x: Tensor) -> Tensor:
    """``local_descriptors`` with the earlier blur and erosions patched in."""
    with (
        mock.patch.object(descriptors, "_blur", conv_blur),
        mock.patch.object(descriptors, "interior_distance", pool_interior),
    ):
        return descriptors.local_descriptors(x, "rgbd", SCALES, GROUPS)


def scan_batch(batch: int, size: int) -> Tensor:
    """(batch, 4, size, size) rgbd inputs: a textured disc on a zero background."""
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    disc = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2 <= (0.22 * size) ** 2).float()
    x = torch.rand(batch, 4, size, size, generator=g)
    x[:, 0] = disc * (0.3 + 0.1 * x[:, 0])
    return x


def row(name: str, shape: tuple[int, ...], runs: dict[str, Callable[[], Tensor]], n: int) -> str:
    best, out = alternate_best(runs, 1, n)
    diff = float((out["before"] - out["now"]).abs().max())
    return (
        f"| {name} | {tuple(shape)} | {best['before'] * 1e3:.1f} | {best['now'] * 1e3:.1f} "
        f"| {best['before'] / best['now']:.1f}x | {diff:.1e} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4, help="scans per call (the memory's batch)")
    parser.add_argument("--size", type=int, default=256, help="model input side")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x = scan_batch(args.batch, args.size)
    rgb, depth = x[:, 1:], x[:, :1]
    fg = (depth > 0.05).float()
    print(
        f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{args.threads} threads"
    )
    print("| what | input | before (ms) | now (ms) | speed-up | max abs diff |")
    print("|---|---|---:|---:|---:|---:|")
    for s in SCALES:
        for name, t in (("colour", rgb), ("depth", depth)):
            runs = {"before": lambda t=t, s=s: conv_blur(t, s)}
            runs["now"] = lambda t=t, s=s: descriptors._blur(t, s)
            print(row(f"blur {name}, sigma {s:g}", t.shape, runs, args.repeats), flush=True)
    runs = {"before": lambda: pool_interior(fg), "now": lambda: descriptors.interior_distance(fg)}
    print(row("interior", fg.shape, runs, args.repeats), flush=True)
    runs = {
        "before": lambda: before_descriptors(x),
        "now": lambda: descriptors.local_descriptors(x, "rgbd", SCALES, GROUPS),
    }
    print(row("all groups, 4 scales", x.shape, runs, args.repeats), flush=True)
    maps = torch.rand(args.batch, args.size, args.size)
    runs = {
        "before": lambda: conv_gaussian_filter(maps, 4.0),
        "now": lambda: gaussian_filter(maps, 4.0),
    }
    print(row("gaussian smoothing, sigma 4", maps.shape, runs, args.repeats), flush=True)


if __name__ == "__main__":
    main()
