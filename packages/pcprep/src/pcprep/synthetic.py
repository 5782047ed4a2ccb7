"""Synthetic organized scans with known geometry (for tests, examples and benchmarks)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pcprep.records import Sample

__all__ = ["SyntheticScan", "synthetic_scan"]


@dataclass(eq=False)
class SyntheticScan:
    """A `Sample` plus the truth it was built from.

    Attributes:
        sample: the scan (``xyz`` in metres, invalid points exact zeros).
        plane: ``(4,)`` true support plane (unit normal, oriented to +z).
        object_mask: ``(H, W)`` bool, pixels on the box/bump (height above the plane > 0).
        height: ``(H, W)`` height of each point above the plane (metres).
    """

    sample: Sample
    plane: np.ndarray
    object_mask: np.ndarray
    height: np.ndarray


def synthetic_scan(
    shape: tuple[int, int] = (128, 128),
    *,
    tilt: tuple[float, float] = (0.2, -0.1),
    distance: float = 0.6,
    extent: float = 0.1,
    bump_height: float = 0.02,
    bump_box: tuple[float, float, float, float] = (0.35, 0.65, 0.35, 0.65),
    noise: float = 0.0,
    dropout: float = 0.0,
    rng: np.random.Generator | int | None = 0,
) -> SyntheticScan:
    """A square extent of a tilted plane seen by an orthographic camera, with a box-shaped bump.

    Args:
        shape: ``(H, W)``.
        tilt: plane slopes ``(dz/dx, dz/dy)``.
        distance: z of the plane at the image centre (metres).
        extent: field of view in metres (x and y span ``[0, extent]``).
        bump_height: height of the box along the plane normal (towards the camera, -z).
        bump_box: ``(row0, row1, col0, col1)`` of the box as fractions of the image.
        noise: std of Gaussian noise added along z (metres).
        dropout: fraction of points set invalid at random.
        rng: seed or generator.

    Examples:
        >>> scan = synthetic_scan((32, 32))
        >>> scan.sample.xyz.shape, int(scan.object_mask.sum())
        ((32, 32, 3), 81)
    """
    gen = np.random.default_rng(rng)
    h, w = shape
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    x = cols / max(w - 1, 1) * extent
    y = rows / max(h - 1, 1) * extent
    ax, ay = tilt
    # plane z = distance + ax (x - c) + ay (y - c)  ->  ax x + ay y - z + d = 0
    c = extent / 2
    normal = np.array([ax, ay, -1.0])
    d0 = distance - ax * c - ay * c
    norm = np.linalg.norm(normal)
    plane = np.append(normal, d0) / norm
    if plane[2] < 0:
        plane = -plane
    r0, r1, c0, c1 = bump_box
    box = (rows >= r0 * h) & (rows < r1 * h) & (cols >= c0 * w) & (cols < c1 * w)
    height = np.where(box, bump_height, 0.0)
    z_plane = distance + ax * (x - c) + ay * (y - c)
    # moving a point by `height` along the normal towards the camera: only z changes in this
    # orthographic model, by height * norm (the vertical offset giving that normal distance)
    z = z_plane - height * norm
    if noise > 0:
        z = z + gen.normal(0.0, noise, size=z.shape)
    xyz = np.stack([x, y, z], axis=-1).astype(np.float32)
    if dropout > 0:
        xyz[gen.random(shape) < dropout] = 0.0
    rgb = (gen.random((h, w, 3)) * 60 + 100).astype(np.uint8)
    rgb[box] = (200, 80, 40)
    sample = Sample(xyz=xyz, rgb=rgb, gt=None, label=0, defect_type="good", path=None)
    return SyntheticScan(sample=sample, plane=plane, object_mask=box, height=height)
