"""``--depth-unit``, ``--focal-px``, ``--principal-point``, ``--grid`` and ``--camera`` of train
and pack: how own scans are read. train stores them in the detector, so eval, predict and export
read scans as training did without them."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from threedsr_cli.errors import CLIError, option_error

if TYPE_CHECKING:
    from threedsr import Pack

__all__ = [
    "CameraOpt",
    "DepthUnit",
    "DepthUnitOpt",
    "FocalPxOpt",
    "GridOpt",
    "PrincipalPointOpt",
    "cloud_camera",
    "scan_read_options",
]


class DepthUnit(StrEnum):
    # pcprep.DEPTH_UNITS, spelled out (no numpy at start-up; a test keeps them equal)
    m = "m"
    mm = "mm"
    um = "um"


def _checked(parse: Callable[[str], object]) -> Callable[[str | None], str | None]:
    """A typer callback that refuses, while the command line is parsed, what ``parse`` refuses
    and passes the text on (`scan_read_options` converts it)."""

    def callback(value: str | None) -> str | None:
        if value is not None:
            parse(value)
        return value

    return callback


def parse_grid(value: str) -> tuple[int, int]:
    """``"640x480"`` (a camera's width x height) -> ``(480, 640)``, pcprep's ``(H, W)``.

    Example:
        >>> parse_grid("640x480")
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


def parse_focal(value: str) -> float | tuple[float, float]:
    """``"600"`` -> ``600.0``; ``"600.2,601.7"`` (fx, fy) -> ``(600.2, 601.7)``.

    Example:
        >>> parse_focal("2758.3"), parse_focal("600.2, 601.7")
        (2758.3, (600.2, 601.7))
    """
    try:
        values = [float(v) for v in value.split(",")]
    except ValueError:
        values = []
    if len(values) in (1, 2) and all(math.isfinite(v) and v > 0 for v in values):
        return values[0] if len(values) == 1 else (values[0], values[1])
    option_error(
        "--focal-px: expected a positive focal length in pixels, F or FX,FY, e.g. 600 or "
        f"600.2,601.7 (got {value!r})"
    )


def parse_principal_point(value: str) -> tuple[float, float]:
    """``"319.5,241.2"`` -> ``(319.5, 241.2)``.

    Example:
        >>> parse_principal_point("319.5, 241")
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
    Optional[str],
    typer.Option(
        "--focal-px",
        callback=_checked(parse_focal),
        metavar="F|FX,FY",
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
        callback=_checked(parse_principal_point),
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
        callback=_checked(parse_grid),
        metavar="WxH",
        help="The camera's resolution (e.g. 640x480) that unorganized PCD / PLY clouds are "
        "projected onto through the --focal-px pinhole; without it they are refused. "
        "Organized clouds keep their own grid. Stored in the run like --depth-unit.",
        show_default=False,
    ),
]


CameraOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--camera",
        help="The camera's calibration file (ROS camera_info or OpenCV YAML, Open3D intrinsic "
        "JSON, MVTec 3D-AD's calibration/camera_parameters.json): its resolution, focal "
        "lengths, principal point and lens distortion, in place of --grid, --focal-px and "
        "--principal-point. Stored in the run like --depth-unit (the values, not the path).",
        show_default=False,
    ),
]


def scan_read_options(
    data: Path,
    pack: Pack | None,
    *,
    depth_unit: str | None = None,
    focal_px: str | None = None,
    principal_point: str | None = None,
    grid: str | None = None,
    camera: Path | None = None,
) -> dict[str, Any]:
    """The pcprep reader keywords of ``--depth-unit`` / ``--focal-px`` / ``--principal-point``
    / ``--grid`` / ``--camera`` for ``data`` (json's forms: they go to run.json): a pack's own
    when none is given (it was read with them), refused for Eyecandies (its yaml gives metres
    and the camera)."""
    given: dict[str, Any] = {}
    if depth_unit is not None:
        given["depth_unit"] = str(depth_unit)
    if camera is not None:
        given.update(_camera_options(camera, focal_px, principal_point, grid))
    else:
        for flag, text in (("--principal-point", principal_point), ("--grid", grid)):
            if text is not None and focal_px is None:
                option_error(f"{flag} needs --focal-px (the camera's focal length in pixels)")
        if focal_px is not None:
            focal = parse_focal(focal_px)
            given["focal_px"] = list(focal) if isinstance(focal, tuple) else focal
        if principal_point is not None:
            given["principal_point"] = list(parse_principal_point(principal_point))
        if grid is not None:
            given["grid_shape"] = list(parse_grid(grid))
    if pack is not None:
        return given or dict(pack.read_options)
    if given:
        import pcprep

        if pcprep.detect_layout(data) == "eyecandies":
            flag = next(
                f
                for f, v in (
                    ("--depth-unit", depth_unit),
                    ("--camera", camera),
                    ("--focal-px", focal_px),
                    ("--principal-point", principal_point),
                    ("--grid", grid),
                )
                if v is not None
            )
            raise CLIError(
                f"{data}: {flag} applies to own scans; Eyecandies samples give their metres and "
                "camera in their info_depth.yaml"
            )
    return given


def _camera_options(
    camera: Path, focal_px: str | None, principal_point: str | None, grid: str | None
) -> dict[str, Any]:
    """``--camera``'s reader keywords: the file's values, none of them also given by hand."""
    import pcprep

    for flag, text in (
        ("--focal-px", focal_px),
        ("--principal-point", principal_point),
        ("--grid", grid),
    ):
        if text is not None:
            option_error(f"{flag}: --camera gives it already (one or the other)")
    cam = pcprep.read_camera(camera)  # a bad file: PcprepError, one line (errors.guard)
    options: dict[str, Any] = {
        "focal_px": list(cam.focal_px),
        "principal_point": list(cam.principal_point),
        "grid_shape": list(cam.grid_shape),
    }
    if cam.distortion is not None and not cam.distortion.is_identity:
        options["distortion"] = [cam.distortion.model, list(cam.distortion.coefficients)]
    return options


def cloud_camera(
    camera: Path, run_options: Mapping[str, Any], run: Path
) -> tuple[tuple[str, Any], ...]:
    """predict ``--camera``: the reader keywords that project a run's new unorganized clouds,
    for a run trained without a camera (one that has its camera reads with it: another would
    read clouds differently from training)."""
    if any(k in run_options for k in ("grid_shape", "focal_px", "distortion")):
        raise CLIError(
            f"{run}: the run has its camera (stored at train) and reads clouds with it; "
            "predict --camera is for runs trained without one"
        )
    return tuple(_camera_options(camera, None, None, None).items())
