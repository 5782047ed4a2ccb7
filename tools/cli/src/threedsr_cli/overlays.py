"""Anomaly maps drawn for people: a map over its scan's RGB and depth, and the map itself as a
grayscale PNG that still holds the score.

The colour scale is the detector's (:func:`~threedsr_cli.map_scale.display_scale`), never the
maps at hand: a scan must get the same picture alone or among other scans, and a good scan must
stay readable (its own image, not a glow), so the defect is read against what the detector
paints on good scans. matplotlib and pillow are imported lazily (a GPU server's python may lack
them).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from threedsr_cli.atomic import atomic_write_bytes
from threedsr_cli.map_scale import score_text
from threedsr_cli.report import pyplot, save_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "GOOD_LABEL",
    "HEAT_ALPHA",
    "OverlayRow",
    "blend",
    "colorize",
    "overlay_figure",
    "overlay_layout",
    "save_map_png",
]


#: Largest opacity of the heat map (at ``high``); it ramps down to 0 at ``low``.
HEAT_ALPHA = 0.8

#: Row label of the defect-free scan drawn under a defective one (``overlay_figure(good=...)``).
GOOD_LABEL = "good scan (reference)"


def _normalise(m: np.ndarray, low: float, high: float) -> np.ndarray:
    """``m`` mapped from [low, high] to [0, 1], clipped (float64)."""
    span = max(float(high) - float(low), 1e-12)
    return np.clip((np.asarray(m, np.float64) - float(low)) / span, 0.0, 1.0)


def colorize(m: np.ndarray, low: float, high: float, alpha: float = HEAT_ALPHA) -> np.ndarray:
    """(H, W) map -> (H, W, 4) float RGBA: the 'jet' colour of the value on [low, high] and an
    opacity ramping from 0 at ``low`` to ``alpha`` at ``high``.

    The ramp is what makes a good scan readable: its pixels sit near ``low`` (what good scans
    typically score), so they stay transparent and show the scan, and only what rises above
    them is painted, the more opaquely the higher.

    Example:
        >>> colorize(np.array([[0.0, 1.0]]), 0.0, 1.0)[..., 3].tolist()
        [[0.0, 0.8]]
    """
    from matplotlib import colormaps

    norm = _normalise(m, low, high)
    rgba = colormaps["jet"](norm)
    rgba[..., 3] = alpha * norm
    return rgba


def _base(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image, np.float64)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    if img.max(initial=0.0) > 1.0:
        img = img / 255.0
    return np.clip(img, 0.0, 1.0)


def blend(
    image: np.ndarray, m: np.ndarray, low: float, high: float, alpha: float = HEAT_ALPHA
) -> np.ndarray:
    """Heat map over an RGB or grayscale image (both in [0, 1] or uint8), float RGB in [0, 1];
    transparent at and below ``low`` (see :func:`colorize`), so a good scan shows its own image.

    Example:
        >>> img = np.full((1, 2, 3), 0.5)
        >>> blend(img, np.array([[0.0, 1.0]]), 0.0, 1.0)[0, 0].tolist()
        [0.5, 0.5, 0.5]
    """
    heat = colorize(m, low, high, alpha)
    a = heat[..., 3:]
    return (1 - a) * _base(image) + a * heat[..., :3]


@dataclass(frozen=True)
class OverlayRow:
    """One scan of an overlay figure: its RGB and depth, named maps, optional ground truth and
    image scores (``overlay_figure(good=...)`` takes one as the reference row)."""

    rgb: np.ndarray | None  # None: a scan without colour
    depth: np.ndarray
    maps: Mapping[str, np.ndarray]
    gt: np.ndarray | None = None
    scores: Mapping[str, float] | None = None


def _per_map(value: Any, names: Sequence[str]) -> dict[str, Any]:
    """``{name: value}`` from one value for every map or a mapping by map name."""
    if isinstance(value, Mapping):
        return {n: value[n] for n in names}
    return dict.fromkeys(names, value)


def _row_panels(
    row: Any, names: Sequence[str], scales: Mapping[str, tuple[float, float]], with_gt: bool
) -> list[tuple[str, np.ndarray, bool]]:
    """(title, image, is a map panel) of one row: RGB, depth, gt, each map over RGB and depth.
    A scan without colour (``rgb`` None) shows mid-grey under a title that says so."""
    rgb, rgb_title = row.rgb, "RGB"
    if rgb is None:
        rgb, rgb_title = np.full((*np.shape(row.depth)[:2], 3), 0.5), "RGB: none (depth-only scan)"
    panels = [(rgb_title, _base(rgb), False), ("depth", _base(row.depth), False)]
    if with_gt:
        gt = getattr(row, "gt", None)
        gt = np.zeros(np.shape(row.depth)[:2]) if gt is None else np.asarray(gt, np.float64)
        panels.append(("ground truth", _base(gt), False))
    scores = getattr(row, "scores", None) or {}
    for name in names:
        m, (lo, hi) = row.maps[name], scales[name]
        score = f" {scores[name]:.3f}" if name in scores else ""
        panels.append((f"{name}{score} on RGB", blend(rgb, m, lo, hi), True))
        panels.append((f"{name} on depth", blend(row.depth, m, lo, hi), True))
    return panels


def _colour_bar(
    fig: Figure, cax: Any, scale: tuple[float, float], threshold: float | None, label: str
) -> None:
    """A labelled colour bar on [low, high]; the threshold as a black line and a named tick (an
    end tick too close to it is dropped so the labels stay legible)."""
    from matplotlib import cm, colors

    lo, hi = scale
    bar = fig.colorbar(cm.ScalarMappable(colors.Normalize(lo, hi), cmap="jet"), cax=cax)
    bar.set_label(label, fontsize=7)
    bar.ax.tick_params(labelsize=6)
    if threshold is None:
        return
    y = min(max(float(threshold), lo), hi)  # a threshold off the scale sits at its end
    bar.ax.axhline(y, color="black", lw=1.6)
    ends = [v for v in (lo, hi) if abs(v - y) > 0.12 * (hi - lo)]
    labels = [*(score_text(v, 3) for v in ends), f"threshold {score_text(threshold, 3)}"]
    bar.set_ticks([*ends, y], labels=labels)


def _draw_row(
    axes: Sequence[Any], panels: Sequence[tuple[str, np.ndarray, bool]], gt: Any, label: str
) -> None:
    """One row's panels; the ground truth's outline on every map panel (where the defect is,
    whatever the map), and the row's label left of its first panel."""
    for ax, (title, img, is_map) in zip(axes, panels, strict=True):
        ax.imshow(img, interpolation="nearest")
        ax.set_title(title, fontsize=7)
        ax.axis("off")
        if is_map and gt is not None and np.any(gt):
            ax.contour(np.asarray(gt, np.float64), levels=[0.5], colors="white", linewidths=0.7)
    if label:
        axes[0].text(
            -0.08,
            0.5,
            label,
            rotation=90,
            transform=axes[0].transAxes,
            ha="right",
            va="center",
            fontsize=8,
        )


def overlay_layout(
    row: Any,
    *,
    scale: tuple[float, float] | Mapping[str, tuple[float, float]],
    threshold: float | Mapping[str, float | None] | None = None,
    good: Any = None,
    title: str = "",
) -> Figure:
    """The overlay figure (not saved): one row per scan (``row``, then ``good`` labelled
    :data:`GOOD_LABEL`), a colour bar per map after its two panels, spanning the rows.

    Both rows use the same fixed scale per map, so the reference row shows what the detector
    paints on a defect-free scan and the defect is read against it, not against a glow.
    """
    plt = pyplot()
    rows = [row] if good is None else [row, good]
    names = list(row.maps)
    scales = {n: (float(lo), float(hi)) for n, (lo, hi) in _per_map(scale, names).items()}
    thresholds = _per_map(threshold, names)
    with_gt = any(getattr(r, "gt", None) is not None for r in rows)
    grid = [_row_panels(r, names, scales, with_gt) for r in rows]
    lead = len(grid[0]) - 2 * len(names)  # RGB, depth (and gt) before the map panels
    # per map: on RGB, on depth, its colour bar, room for the bar's labels
    ratios = [1.0] * lead + [1.0, 1.0, 0.07, 0.6] * len(names)
    fig = plt.figure(figsize=(2.1 * len(grid[0]) + 1.4 * len(names) + 0.4, 2.4 * len(rows)))
    gs = fig.add_gridspec(len(rows), len(ratios), width_ratios=ratios, wspace=0.12, hspace=0.2)
    cols = list(range(lead)) + [lead + 4 * k + j for k in range(len(names)) for j in (0, 1)]
    labels = ["", ""] if good is None else ["scan", GOOD_LABEL]
    for r, (panels, sample) in enumerate(zip(grid, rows, strict=True)):
        axes = [fig.add_subplot(gs[r, c]) for c in cols]
        _draw_row(axes, panels, getattr(sample, "gt", None), labels[r])
    for k, name in enumerate(names):
        label = "anomaly score" if len(names) == 1 else f"{name} anomaly score"
        cax = fig.add_subplot(gs[:, lead + 4 * k + 2])
        _colour_bar(fig, cax, scales[name], thresholds[name], label)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def overlay_figure(
    rgb: np.ndarray | None,
    depth: np.ndarray,
    maps: Mapping[str, np.ndarray],
    path: Path,
    *,
    scale: tuple[float, float] | Mapping[str, tuple[float, float]],
    threshold: float | Mapping[str, float | None] | None = None,
    gt: np.ndarray | None = None,
    title: str = "",
    scores: Mapping[str, float] | None = None,
    good: Any = None,
) -> Path:
    """One sample: RGB, depth, gt, then each named map over RGB and over depth, saved as PNG.

    ``scale`` ((low, high), or one per map name) is fixed by the detector
    (:func:`~threedsr_cli.map_scale.display_scale`): ``low`` is transparent, so a scan is painted
    only where it scores above good scans, and the same scan always gets the same picture.
    ``threshold`` (one, or per map) is marked on the colour bar. ``good`` (an :class:`OverlayRow`,
    or anything with ``rgb``, ``depth``, ``maps``) adds a defect-free scan as a second row on the
    same scale (see :func:`overlay_layout`).
    """
    fig = overlay_layout(
        OverlayRow(rgb, depth, maps, gt, scores),
        scale=scale,
        threshold=threshold,
        good=good,
        title=title,
    )
    return save_figure(fig, path)


def save_map_png(
    m: np.ndarray,
    path: Path,
    low: float,
    high: float,
    threshold: float | None = None,
    method: str | None = None,
) -> Path:
    """The anomaly map as an 8-bit grayscale PNG: ``low`` -> 0, ``high`` -> 255 (clipped).

    The scale is the detector's (:func:`~threedsr_cli.map_scale.display_scale`), so a pixel value
    means the same score in every map it writes; the PNG's text chunks record ``low``, ``high``
    and ``threshold`` so the score can be read back (``low + v / 255 * (high - low)``), and
    ``method`` (``threedsr:method``: memory, 3dsr or fused), the one fact a grayscale map cannot
    show once it is separated from its ``scores.json``.
    """
    from PIL import Image, PngImagePlugin

    img = (_normalise(m, low, high) * 255).round().astype(np.uint8)
    info = PngImagePlugin.PngInfo()
    info.add_text("threedsr:scale", f"{float(low)!r} {float(high)!r}")
    if threshold is not None:
        info.add_text("threedsr:threshold", repr(float(threshold)))
    if method:
        info.add_text("threedsr:method", method)
    buf = io.BytesIO()
    Image.fromarray(img, mode="L").save(buf, format="PNG", pnginfo=info)
    return atomic_write_bytes(path, buf.getvalue())
