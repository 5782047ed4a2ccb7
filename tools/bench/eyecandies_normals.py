"""Would Eyecandies' rendered normals (``<id>_normals.png``) show a defect that the depth does not?

    uv run python tools/bench/eyecandies_normals.py $THREEDSR_CANDYCANE [--category CandyCane]

A diagnosis for issue 23, not a detector: it uses the test split's ground truth, so nothing is
chosen on it. For each defective scan of ``test_public`` it measures how far the surface tilts
away from its neighbourhood (the angle between each normal and its Gaussian-weighted mean over
the object, sigma 4 px) in two normal fields: the rendered one, and the one the memory sees,
taken from the scan's depth (cross product of the organized cloud's two gradients). A field
shows a defect when the tilt inside the ground truth (its 90th percentile) passes the tilt of
the same scan's normal object pixels (their 99th percentile).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from pcprep.pipeline import preprocess
from pcprep.readers import EYECANDIES_TYPES, read_array, read_eyecandies
from scipy import ndimage


def tilt_degrees(normals: np.ndarray, inside: np.ndarray, sigma: float = 4.0) -> np.ndarray:
    """Angle (degrees) between each unit normal and the mean of its neighbours on ``inside``."""
    weight = inside.astype(np.float64)
    mean = np.stack(
        [ndimage.gaussian_filter(normals[..., c] * weight, sigma) for c in range(3)], -1
    )
    mean /= np.linalg.norm(mean, axis=-1, keepdims=True) + 1e-12
    return np.degrees(np.arccos(np.clip((normals * mean).sum(-1), -1.0, 1.0)))


def unit(v: np.ndarray) -> np.ndarray:
    return v / (np.linalg.norm(v, axis=-1, keepdims=True) + 1e-12)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--category", default="CandyCane")
    args = parser.parse_args()
    folder = args.data / args.category / "test_public" / "data"
    rows: dict[str, list[tuple[float, float, float, float]]] = {}
    print(
        "| scan | types | rendered: defect p90 / normal p99 | from depth: defect p90 / normal p99 |"
    )
    print("|---|---|---|---|")
    for depth_file in sorted(folder.glob("*_depth.png")):
        stem = depth_file.name[: -len("_depth.png")]
        meta = (folder / f"{stem}_metadata.yaml").read_text()
        kinds = [k for k in EYECANDIES_TYPES if f"anomalous_{k}: 1" in meta]
        if not kinds:
            continue
        sample = read_eyecandies(folder / stem)
        gt = read_array(folder / f"{stem}_mask.png") > 0
        rendered = unit(read_array(folder / f"{stem}_normals.png").astype(np.float64) / 127.5 - 1)
        xyz = sample.xyz.astype(np.float64)
        from_depth = unit(np.cross(np.gradient(xyz, axis=1), np.gradient(xyz, axis=0)))
        # The memory's own foreground (Eyecandies: parts touching the border dropped), eroded so
        # the silhouette's edge does not count as a tilt.
        fg = preprocess(sample, size=xyz.shape[0], drop_border_objects=True).foreground
        inside = ndimage.binary_erosion(fg, iterations=2)
        figures = []
        for normals in (rendered, from_depth):
            tilt = tilt_degrees(normals, inside)
            figures += [np.percentile(tilt[gt & inside], 90), np.percentile(tilt[inside & ~gt], 99)]
        rows.setdefault("+".join(kinds), []).append(tuple(figures))
        a, b, c, d = figures
        print(f"| {stem} | {'+'.join(kinds)} | {a:.1f} / {b:.1f} | {c:.1f} / {d:.1f} |")
    print("\nscans where the defect's tilt passes the normal pixels' (rendered / from depth):")
    for kinds, figs in sorted(rows.items()):
        rendered_wins = sum(a > b for a, b, _, _ in figs)
        depth_wins = sum(c > d for _, _, c, d in figs)
        print(f"  {kinds}: {rendered_wins} / {depth_wins} of {len(figs)}")


if __name__ == "__main__":
    main()
