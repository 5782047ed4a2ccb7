"""Units of own scans' geometry files, and the check that the unit they are read in is plausible."""

from __future__ import annotations

import os

import numpy as np

from pcprep.errors import PcprepError

__all__ = [
    "DEPTH_UNITS",
    "PLAUSIBLE_DISTANCE_M",
    "check_plausible_distance",
    "scaled_xyz",
    "unit_scale",
]

#: Units a depth map or point cloud may be written in, as metres per unit.
DEPTH_UNITS = {"m": 1.0, "mm": 1e-3, "um": 1e-6}
#: Median camera distance (metres) an industrial 3D sensor plausibly measures at. A file read in
#: the wrong unit lands a factor of 1000 off: millimetres taken as metres put a 0.6 m scene at
#: 600 m, metres taken as millimetres at 0.6 mm.
PLAUSIBLE_DISTANCE_M = (0.002, 20.0)
_TYPICAL_M = 0.5
_STRIDE = 4


def unit_scale(depth_unit: str | None, default: float = 1.0) -> float:
    """Metres per unit of ``depth_unit`` (``None``: ``default``).

    Example:
        >>> unit_scale("mm"), unit_scale(None, 1e-3)
        (0.001, 0.001)
    """
    if depth_unit is None:
        return default
    if depth_unit not in DEPTH_UNITS:
        raise ValueError(f"depth_unit must be one of {sorted(DEPTH_UNITS)}, got {depth_unit!r}")
    return DEPTH_UNITS[depth_unit]


def check_plausible_distance(
    path: str | os.PathLike[str], distance_m: np.ndarray, scale: float, what: str
) -> None:
    """Refuse a file whose valid distances (metres, after ``scale`` metres per stored unit) have
    an implausible median, naming the unit that would make it plausible.

    Args:
        path: the file (named in the error).
        distance_m: distances from the camera in metres; zero and non-finite values are invalid.
        scale: metres per unit the file was read with.
        what: ``"depth"`` or ``"point cloud"`` (for the message).

    Raises:
        PcprepError: the median lies outside `PLAUSIBLE_DISTANCE_M`.

    Example:
        >>> check_plausible_distance("a.tiff", np.full((2, 2), 600.0), 1.0, "depth")
        Traceback (most recent call last):
        ...
        pcprep.errors.PcprepError: a.tiff: depth read as m puts the scene 600 m from the sensor (median of valid pixels), too far; if the file is in mm, give its depth unit (threedsr-cli --depth-unit mm; pcprep depth_unit='mm')
    """
    d = np.asarray(distance_m)
    # Every 4th row and column: the median of a 1/16 sample is as telling (a unit is off by
    # 1000x), and the check then costs a fraction of the read, not more than it.
    d = np.abs(d[::_STRIDE, ::_STRIDE] if d.ndim == 2 else d).astype(np.float64)
    d = d[np.isfinite(d) & (d > 0)]
    if d.size == 0:
        return  # all invalid: the pipeline reports it
    median = float(np.median(d))
    lo, hi = PLAUSIBLE_DISTANCE_M
    if lo <= median <= hi:
        return
    current = min(DEPTH_UNITS, key=lambda u: abs(np.log(DEPTH_UNITS[u] / scale)))
    read_as = current if np.isclose(DEPTH_UNITS[current], scale) else f"units of {scale:g} m"
    stored = median / scale
    fits = [u for u, s in DEPTH_UNITS.items() if lo <= stored * s <= hi]
    best = min(fits, key=lambda u: abs(np.log(stored * DEPTH_UNITS[u] / _TYPICAL_M)), default=None)
    advice = (
        f"if the file is in {best}, give its depth unit (threedsr-cli --depth-unit {best}; "
        f"pcprep depth_unit={best!r})"
        if best is not None
        else "give the unit it is written in (threedsr-cli --depth-unit; pcprep depth_unit)"
    )
    raise PcprepError.at(
        path,
        f"{what} read as {read_as} puts the scene {median:.3g} m from the sensor (median of "
        f"valid pixels), {'too far' if median > hi else 'too near'}; {advice}",
    )


def scaled_xyz(path: str | os.PathLike[str], xyz: np.ndarray, scale: float) -> np.ndarray:
    """``xyz`` in metres; invalid points stay zeros. The check measures distance from the origin
    rather than z, so a point cloud in a table frame (z near 0 on the table) passes."""
    if scale != 1.0:
        xyz = (xyz.astype(np.float64) * scale).astype(np.float32)
    sample = xyz[::_STRIDE, ::_STRIDE].astype(np.float64)
    check_plausible_distance(path, np.sqrt((sample**2).sum(-1)).ravel(), scale, "point cloud")
    return xyz
