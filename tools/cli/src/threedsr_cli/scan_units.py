"""``--depth-unit`` and ``--focal-px`` of train and pack: how own scans are read. train stores
them in the detector, so eval, predict and export read scans as training did without them."""

from __future__ import annotations

import math
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from threedsr_cli.errors import CLIError, option_error

if TYPE_CHECKING:
    from threedsr import Pack

__all__ = ["DepthUnit", "DepthUnitOpt", "FocalPxOpt", "scan_read_options"]


class DepthUnit(StrEnum):
    # pcprep.DEPTH_UNITS, spelled out (no numpy at start-up; a test keeps them equal)
    m = "m"
    mm = "mm"
    um = "um"


def _check_focal(value: float | None) -> float | None:
    if value is not None and not (math.isfinite(value) and value > 0):
        option_error(f"--focal-px: must be a positive number of pixels (got {value})")
    return value


DepthUnitOpt = Annotated[
    Optional[DepthUnit],
    typer.Option(
        "--depth-unit",
        help="Unit of own scans' depth / xyz files: m, mm or um. Default: float files in "
        "metres, 16-bit depth in millimetres; a scan that would lie under 2 mm or over 20 m "
        "from the sensor is refused. Stored in the run: eval, predict and export read as "
        "training did.",
        show_default=False,
    ),
]
FocalPxOpt = Annotated[
    Optional[float],
    typer.Option(
        "--focal-px",
        callback=_check_focal,
        help="Focal length (pixels) to back-project own depth maps through a pinhole; default: "
        "the pixel grid. Stored in the run like --depth-unit.",
        show_default=False,
    ),
]


def scan_read_options(
    data: Path, depth_unit: str | None, focal_px: float | None, pack: Pack | None
) -> dict[str, Any]:
    """The pcprep reader keywords of ``--depth-unit`` / ``--focal-px`` for ``data``: a pack's
    own when neither is given (it was read with them), refused for Eyecandies (its yaml gives
    metres and the camera)."""
    given: dict[str, Any] = {}
    if depth_unit is not None:
        given["depth_unit"] = str(depth_unit)
    if focal_px is not None:
        given["focal_px"] = float(focal_px)
    if pack is not None:
        return given or dict(pack.read_options)
    if given:
        import pcprep

        if pcprep.detect_layout(data) == "eyecandies":
            flag = "--depth-unit" if depth_unit is not None else "--focal-px"
            raise CLIError(
                f"{data}: {flag} applies to own scans; Eyecandies samples give their metres and "
                "camera in their info_depth.yaml"
            )
    return given
