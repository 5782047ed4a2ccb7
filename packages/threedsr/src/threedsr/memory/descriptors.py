"""Hand-made local descriptors of the model input: surface shape and normalised colour at a few
Gaussian scales, all invariant to in-plane rotation. The feature memory
(:mod:`threedsr.memory`) can store them instead of the backbone's encoder features.

Not in the paper or the reference code. A dent or a bump a few millimetres deep changes the
local curvature of the surface by far more than the sensor noise does, yet the stage-1 codes that
a CPU-sized backbone learns hardly change there (docs/bench/threedsr.md, "Diagnose"). Gaussian
derivatives measure that curvature directly, need no training, and cost a few convolutions.

Per scale ``s`` (pixels at model resolution) the depth channel gives three numbers:
``s |grad|``, ``s^2 (d_xx + d_yy)`` (the Laplacian, mean curvature up to sign) and
``s^2 sqrt(((d_xx - d_yy) / 2)^2 + d_xy^2)`` (how far the two principal curvatures differ); the
``s`` powers make the responses comparable across scales. Colour is the Gaussian-blurred RGB
divided by the scan's mean object colour, so that a class's tint and the light level of a scan
drop out and a stain remains.

Two more groups came later (session 7): ``texture``, the grey level's gradient magnitude and
Laplacian per scale (threads, print and scratches that blurred colour averages away), and
``interior``, how deep inside the silhouette a pixel lies relative to the object's size (a
patch that is normal on the rim can be a defect in the middle). :func:`local_descriptors`
returns the groups it is asked for, in :data:`DESCRIPTOR_GROUPS` order; detectors written
before keep ``surface`` and ``colour`` (:data:`LEGACY_GROUPS`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
import vqcore
from torch import Tensor

from threedsr.memory.traced import recording
from threedsr.smoothing import gaussian_kernel1d, separable_filter

__all__ = [
    "DESCRIPTOR_GROUPS",
    "LEGACY_GROUPS",
    "colour_descriptors",
    "descriptor_channels",
    "group_slices",
    "interior_distance",
    "local_descriptors",
    "setup_groups",
    "surface_descriptors",
    "texture_descriptors",
]

#: Foreground test on the normalised depth channel (pcprep: background 0, object in [0.1, 0.9]).
_FOREGROUND_DEPTH = 0.05


def _blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian (radius 3 sigma) with replicated borders, per channel."""
    b, c, h, w = x.shape
    k = gaussian_kernel1d(sigma, truncate=3.0, dtype=x.dtype)
    return separable_filter(x.reshape(b * c, h, w), k, mode="replicate").reshape(b, c, h, w)


def _gradient(x: Tensor) -> tuple[Tensor, Tensor]:
    """Central differences along W and H, one-sided at the border (replicated)."""
    dx = F.pad((x[..., :, 2:] - x[..., :, :-2]) / 2, (1, 1, 0, 0), mode="replicate")
    dy = F.pad((x[..., 2:, :] - x[..., :-2, :]) / 2, (0, 0, 1, 1), mode="replicate")
    return dx, dy


def _derivatives(x: Tensor, sigma: float) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """First and second Gaussian derivatives at scale ``sigma``: gx, gy, gxx, gxy, gyy."""
    gx, gy = _gradient(_blur(x, float(sigma)))
    gxx, gxy = _gradient(gx)
    _, gyy = _gradient(gy)
    return gx, gy, gxx, gxy, gyy


def _over_mean(x: Tensor, foreground: Tensor | None) -> Tensor:
    """``x`` over its mean on ``foreground`` (the whole image when None), per image and channel."""
    w = torch.ones_like(x[:, :1]) if foreground is None else foreground.to(x.dtype)
    mean = (x * w).sum((2, 3), keepdim=True) / w.sum((2, 3), keepdim=True).clamp_min(1.0)
    return x / mean.clamp_min(1e-3)


def surface_descriptors(depth: Tensor, scales: Sequence[float] = (1, 2, 4)) -> Tensor:
    """Gradient magnitude, Laplacian and curvature anisotropy of the depth at each scale.

    Args:
        depth: (B, 1, H, W) normalised depth.
        scales: Gaussian sigmas in pixels.

    Shape:
        - Output: (B, 3 * len(scales), H, W).

    Example:
        >>> d = torch.zeros(2, 1, 16, 16)
        >>> surface_descriptors(d).shape, float(surface_descriptors(d).abs().max())
        (torch.Size([2, 9, 16, 16]), 0.0)
    """
    _check(depth, 1, "depth")
    out = []
    for s in scales:
        gx, gy, gxx, gxy, gyy = _derivatives(depth, s)
        aniso = torch.sqrt(((gxx - gyy) / 2) ** 2 + gxy**2)
        out += [s * torch.hypot(gx, gy), s * s * (gxx + gyy), s * s * aniso]
    return torch.cat(out, 1)


def colour_descriptors(
    rgb: Tensor, foreground: Tensor | None = None, scales: Sequence[float] = (1, 2, 4)
) -> Tensor:
    """Blurred RGB over the scan's mean colour on ``foreground`` (the whole image when None).

    Shape:
        - rgb: (B, 3, H, W); foreground: (B, 1, H, W) in {0, 1} or None.
        - Output: (B, 3 * len(scales), H, W).

    Example:
        >>> rgb = torch.full((1, 3, 8, 8), 0.5)
        >>> torch.allclose(colour_descriptors(rgb), torch.ones(1, 9, 8, 8))
        True
    """
    _check(rgb, 3, "rgb")
    rgb = _over_mean(rgb, foreground)
    return torch.cat([_blur(rgb, float(s)) for s in scales], 1)


def texture_descriptors(
    rgb: Tensor, foreground: Tensor | None = None, scales: Sequence[float] = (1, 2, 4)
) -> Tensor:
    """Grey-level gradient magnitude and Laplacian at each scale, of the grey image over its mean
    on ``foreground`` (the whole image when None): the scratches, threads and edges of the
    object's print, which blurred colour alone averages away.

    Shape:
        - rgb: (B, 3, H, W); foreground: (B, 1, H, W) in {0, 1} or None.
        - Output: (B, 2 * len(scales), H, W).

    Example:
        >>> float(texture_descriptors(torch.full((1, 3, 8, 8), 0.3)).abs().max())
        0.0
    """
    _check(rgb, 3, "rgb")
    grey = _over_mean(rgb.mean(1, keepdim=True), foreground)
    out = []
    for s in scales:
        gx, gy, gxx, _, gyy = _derivatives(grey, s)
        out += [s * torch.hypot(gx, gy), s * s * (gxx + gyy)]
    return torch.cat(out, 1)


def _erode_cross(x: Tensor) -> Tensor:
    """The minimum over the 4-neighbourhood, the outside counted as 0."""
    pad = F.pad(x, (1, 1, 1, 1))
    left_right = torch.minimum(pad[..., 1:-1, :-2], pad[..., 1:-1, 2:])
    up_down = torch.minimum(pad[..., :-2, 1:-1], pad[..., 2:, 1:-1])
    return torch.minimum(left_right, up_down) * x


def _erode_square(x: Tensor) -> Tensor:
    """The minimum over the 3 x 3 neighbourhood within the image (``-max_pool2d(-x, 3, 1, 1)``),
    as two 3-tap minima: ``max_pool2d`` is 8x slower on a CPU."""
    pad = F.pad(x, (1, 1, 1, 1), value=float("inf"))
    rows = torch.minimum(torch.minimum(pad[..., :, :-2], pad[..., :, 1:-1]), pad[..., :, 2:])
    return torch.minimum(torch.minimum(rows[..., :-2, :], rows[..., 1:-1, :]), rows[..., 2:, :])


def interior_distance(foreground: Tensor) -> Tensor:
    """How deep inside the object each pixel lies: the number of erosions it survives (octagonal
    distance to the silhouette, alternating cross and square steps), over the object's
    equivalent radius ``sqrt(area / pi)``; 0 off the object.

    Where on the object a patch lies (rim, flank, centre) tells normal shapes apart that look
    alike locally: a straight thread is normal on the flank and a defect at the centre. The
    ratio does not change with the object's position, rotation or scale. The loop has a fixed
    length (half the shorter side), so an exported graph computes it for any input.

    Shape:
        - foreground: (B, 1, H, W) in {0, 1}.
        - Output: (B, 1, H, W).

    Example:
        >>> fg = torch.zeros(1, 1, 9, 9); fg[..., 2:7, 2:7] = 1
        >>> interior_distance(fg)[0, 0, 4, 2:7] * (25 / torch.pi) ** 0.5
        tensor([1., 2., 3., 2., 1.])
    """
    _check(foreground, 1, "foreground")
    cur = foreground.float()
    depth = torch.zeros_like(cur)
    # Eager calls stop once nothing is left to erode (the remaining steps add zeros): a scan's
    # object is far smaller than the image. A traced graph keeps every step.
    eager = not recording()
    for step in range((min(cur.shape[2:]) + 1) // 2):
        if eager and step % 8 == 0 and not bool(cur.any()):
            break
        depth = depth + cur
        cur = _erode_square(cur) if step % 2 else _erode_cross(cur)
    radius = (foreground.float().sum((2, 3), keepdim=True) / torch.pi).sqrt().clamp_min(1.0)
    return depth / radius


#: Descriptor groups in output order, with the input they need.
DESCRIPTOR_GROUPS = ("surface", "colour", "texture", "interior")
#: The groups before they could be chosen (session 6 detectors).
LEGACY_GROUPS = ("surface", "colour")
_NEEDS = {"surface": "depth", "colour": "rgb", "texture": "rgb", "interior": "depth"}
_PER_SCALE = {"surface": 3, "colour": 3, "texture": 2}


def setup_groups(setup: str, groups: Sequence[str] = LEGACY_GROUPS) -> tuple[str, ...]:
    """The groups of ``groups`` that ``setup``'s input can give, in output order.

    Example:
        >>> setup_groups("depth", DESCRIPTOR_GROUPS)
        ('surface', 'interior')
    """
    if setup not in ("rgbd", "depth", "rgb"):
        raise ValueError(f"descriptors: unknown setup {setup!r}; expected rgbd, depth or rgb")
    unknown = set(groups) - set(DESCRIPTOR_GROUPS)
    if unknown:
        raise ValueError(
            f"descriptors: unknown group(s) {sorted(unknown)}; expected some of {DESCRIPTOR_GROUPS}"
        )
    has = {"rgbd": ("depth", "rgb"), "depth": ("depth",), "rgb": ("rgb",)}[setup]
    return tuple(g for g in DESCRIPTOR_GROUPS if g in groups and _NEEDS[g] in has)


def group_channels(group: str, n_scales: int) -> int:
    """Channels one descriptor group gives at ``n_scales`` scales."""
    return 1 if group == "interior" else _PER_SCALE[group] * n_scales


def local_descriptors(
    x: Tensor,
    setup: str,
    scales: Sequence[float] = (1, 2, 4),
    groups: Sequence[str] = LEGACY_GROUPS,
) -> Tensor:
    """The descriptors of a model input, group by group in :data:`DESCRIPTOR_GROUPS` order, for
    the groups that the setup's input gives (:func:`setup_groups`). The input is in the
    backbone's channel order ([D, R, G, B] for rgbd). With depth, colour and texture are
    normalised by the object's mean (pcprep's background has depth 0).

    Shape:
        - x: (B, C, H, W) with C = 4 / 1 / 3 for rgbd / depth / rgb.
        - Output: (B, :func:`descriptor_channels`, H, W).

    Example:
        >>> local_descriptors(torch.rand(1, 4, 32, 32), "rgbd").shape
        torch.Size([1, 18, 32, 32])
        >>> local_descriptors(torch.rand(1, 4, 32, 32), "rgbd", (1, 2), DESCRIPTOR_GROUPS).shape
        torch.Size([1, 17, 32, 32])
    """
    chosen = setup_groups(setup, groups)
    x = x.float()
    _check(x, {"rgbd": 4, "depth": 1, "rgb": 3}[setup], f"{setup} input")
    depth = x[:, :1] if setup != "rgb" else None
    rgb = x[:, -3:] if setup != "depth" else None
    fg = None if depth is None else (depth > _FOREGROUND_DEPTH).float()
    out = []
    for group in chosen:
        if group == "surface":
            out.append(surface_descriptors(depth, scales))
        elif group == "colour":
            out.append(colour_descriptors(rgb, fg, scales))
        elif group == "texture":
            out.append(texture_descriptors(rgb, fg, scales))
        else:
            out.append(interior_distance(fg))
    return torch.cat(out, 1)


def descriptor_channels(setup: str, n_scales: int, groups: Sequence[str] = LEGACY_GROUPS) -> int:
    """Channels :func:`local_descriptors` returns.

    Example:
        >>> descriptor_channels("rgbd", 3), descriptor_channels("depth", 3)
        (18, 9)
        >>> descriptor_channels("rgbd", 4, DESCRIPTOR_GROUPS)
        33
    """
    return sum(group_channels(g, n_scales) for g in setup_groups(setup, groups))


def group_slices(
    setup: str, n_scales: int, groups: Sequence[str] = LEGACY_GROUPS
) -> dict[str, slice]:
    """Each chosen group's channels in :func:`local_descriptors`' output.

    Example:
        >>> group_slices("depth", 2, DESCRIPTOR_GROUPS)
        {'surface': slice(0, 6, None), 'interior': slice(6, 7, None)}
    """
    out, start = {}, 0
    for g in setup_groups(setup, groups):
        n = group_channels(g, n_scales)
        out[g] = slice(start, start + n)
        start += n
    return out


def _check(x: Tensor, channels: int, name: str) -> None:
    vqcore.check_shape(x, ("B", channels, "H", "W"), name=name, what="")
