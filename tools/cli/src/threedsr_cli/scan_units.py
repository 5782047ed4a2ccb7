"""``--depth-unit``, ``--focal-px``, ``--principal-point`` and ``--grid`` of train and pack: how
own scans are read. train stores them in the detector, so eval, predict and export read scans
as training did without them."""

from __future__ import annotations

import math
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from threedsr_cli.errors import CLIError, option_error

if TYPE_CHECKING:
    from threedsr import Pack

__all__ = [
    "DepthUnit",
    "DepthUnitOpt",
    "FocalPxOpt",
    "GridOpt",
    "PrincipalPointOpt",
    "scan_read_options",
]


class DepthUnit(StrEnum):
    # pcprep.DEPTH_UNITS, spelled out (no numpy at start-up; a test keeps them equal)
    m = "m"
    mm = "mm"
    um = "um"


def _check_focal(value: float | None) -> float | None:
    if value is not None and not (math.isfinite(value) and value > 0):
        option_error(f"--focal-px: must be a positive number of pixels (got {value})")
    return value


def _checked(parse: Callable[[str], object]) -> Callable[[str | None], str | None]:
    """A typer callback that refuses, while the command line is parsed, what ``parse`` refuses
    and passes the text on (`scan_read_options` converts it)."""

    def callback(value: str | None) -> str | None:
        if value is not None:
            parse(value)
        return value

    return callback


def grid_shape(value: str) -> tuple[int, int]:
    """``"640x480"`` (a camera's width x height) -> ``(480, 640)``, pcprep's ``(H, W)``.

    Example:
        >>> grid_shape("640x480")
        (480, 640)
    """
    width, sep, height = value.strip().lower().partition("x")
    if sep and width.strip().isdigit() and height.strip().isdigit():
        w, h = int(width), int(height)
        if min(w, h) >= 2:
            return h, w
    option_error(
        f"--grid: expected the camera's WIDTHxHEIGHT in pixels, e.g. 640x480 (got {value!r})"
    )


def principal_point(value: str) -> tuple[float, float]:
    """``"319.5,241.2"`` -> ``(319.5, 241.2)``.

    Example:
        >>> principal_point("319.5, 241")
        (319.5, 241.0)
    """
    parts = value.split(",")
    try:
        cx, cy = (float(v) for v in parts)
    except ValueError:
        cx = cy = math.nan
    if not (math.isfinite(cx) and math.isfinite(cy)):
        option_error(
            f"--principal-point: expected CX,CY in pixels, e.g. 319.5,241.2 (got {value!r})"
        )
    return cx, cy


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
        help="Focal length (pixels) to back-project own depth maps through a pinhole (and to "
        "project unorganized clouds onto --grid); default: the pixel grid. Stored in the run "
        "like --depth-unit.",
        show_default=False,
    ),
]
PrincipalPointOpt = Annotated[
    Optional[str],
    typer.Option(
        "--principal-point",
        callback=_checked(principal_point),
        metavar="CX,CY",
        help="The pinhole's principal point (pixels) with --focal-px; default: the image "
        "centre. Stored in the run like --depth-unit.",
        show_default=False,
    ),
]
GridOpt = Annotated[
    Optional[str],
    typer.Option(
        "--grid",
        callback=_checked(grid_shape),
        metavar="WxH",
        help="The camera's resolution (e.g. 640x480) that unorganized PCD / PLY clouds are "
        "projected onto through the --focal-px pinhole; without it they are refused. "
        "Organized clouds keep their own grid. Stored in the run like --depth-unit.",
        show_default=False,
    ),
]


def scan_read_options(
    data: Path,
    depth_unit: str | None,
    focal_px: float | None,
    pack: Pack | None,
    principal_point_text: str | None = None,
    grid_text: str | None = None,
) -> dict[str, Any]:
    """The pcprep reader keywords of ``--depth-unit`` / ``--focal-px`` / ``--principal-point``
    / ``--grid`` for ``data`` (pairs as json's lists: they go to run.json): a pack's own when
    none is given (it was read with them), refused for Eyecandies (its yaml gives metres and
    the camera)."""
    for flag, text in (("--principal-point", principal_point_text), ("--grid", grid_text)):
        if text is not None and focal_px is None:
            option_error(f"{flag} needs --focal-px (the camera's focal length in pixels)")
    given: dict[str, Any] = {}
    if depth_unit is not None:
        given["depth_unit"] = str(depth_unit)
    if focal_px is not None:
        given["focal_px"] = float(focal_px)
    if principal_point_text is not None:
        given["principal_point"] = list(principal_point(principal_point_text))
    if grid_text is not None:
        given["grid_shape"] = list(grid_shape(grid_text))
    if pack is not None:
        return given or dict(pack.read_options)
    if given:
        import pcprep

        if pcprep.detect_layout(data) == "eyecandies":
            flag = "--depth-unit" if depth_unit is not None else "--focal-px"  # one suffices
            raise CLIError(
                f"{data}: {flag} applies to own scans; Eyecandies samples give their metres and "
                "camera in their info_depth.yaml"
            )
    return given
