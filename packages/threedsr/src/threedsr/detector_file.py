"""A ``detector.pt`` read back: what it says about itself (:func:`detector_info`) and its
network and memory rebuilt (:func:`load_detector_parts`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

import torch
import vqcore

from threedsr.calibration import DisplayScale, MapCalibration
from threedsr.checkpoint import read_checkpoint, resolve_detector_file
from threedsr.config import DetectorConfig
from threedsr.dsr.torch_model import ThreeDSR
from threedsr.errors import ThreedsrError
from threedsr.memory.torch_model import FeatureMemory

__all__ = ["DetectorInfo", "LoadedDetector", "detector_info", "load_detector_parts"]


class DetectorInfo(NamedTuple):
    """What a ``detector.pt`` says about itself (:func:`detector_info`)."""

    path: Path  # the file (a run folder resolves to its detector.pt)
    method: str  # memory | 3dsr | fused: which method makes its map
    setup: str | None  # rgbd | depth | rgb
    category: str | None
    finished: bool  # False: training stopped before its last step (resume it)
    step: int | None  # optimizer steps done (0 for the memory)
    total: int | None  # steps planned
    format_version: int  # as read (format 2 files are migrated)
    config: dict[str, Any]  # the DetectorConfig as a dict (migrated)
    display: DisplayScale | None  # the calibrated colour scale and threshold


def detector_info(path: str | os.PathLike[str]) -> DetectorInfo:
    """Read a ``detector.pt`` (or the run folder holding it) and report its method, setup and
    progress.

    Raises:
        ThreedsrError: as :func:`read_checkpoint` (missing, unreadable, not a detector, other
            format version).
    """
    p = resolve_detector_file(path)
    ckpt = read_checkpoint(p)
    step, total = ckpt.get("step"), ckpt.get("total")
    return DetectorInfo(
        path=p,
        method=str(ckpt.get("method")),
        setup=ckpt.get("setup"),
        category=ckpt.get("category"),
        finished=bool(ckpt.get("finished", True)),
        step=None if step is None else int(step),
        total=None if total is None else int(total),
        format_version=int(ckpt["format_version"]),
        config=dict(ckpt.get("detector_config") or {}),
        display=DisplayScale.from_state(ckpt.get("display")),
    )


class LoadedDetector(NamedTuple):
    """The parts of a ``detector.pt``, rebuilt (:func:`load_detector_parts`)."""

    config: DetectorConfig
    network: ThreeDSR | None
    memory: FeatureMemory | None
    heads_calibration: MapCalibration | None
    memory_calibration: MapCalibration | None
    display: DisplayScale | None
    category: str | None
    preprocess: dict[str, Any]
    training_state: dict[str, Any]


def load_detector_parts(
    path: str | os.PathLike[str], *, device: torch.device | str = "cpu"
) -> LoadedDetector:
    """Read a detector file and rebuild its network and memory (whichever it holds).

    Raises:
        ThreedsrError: as :func:`read_checkpoint`, or a file whose parts do not fit together.
    """
    p = resolve_detector_file(path)
    ckpt = read_checkpoint(p)
    # The modules are built on the CPU, drawing initial weights (then replaced by the file's)
    # from torch's global RNG: loading must leave the caller's random stream where it was.
    with vqcore.rng_scope("cpu"):
        try:
            config = DetectorConfig.from_dict(ckpt["detector_config"])
            backbone = None
            if "backbone_state" in ckpt:
                backbone = vqcore.build_backbone(
                    vqcore.BackboneConfig.from_dict(ckpt["backbone_config"])
                )
                backbone.load_state_dict(ckpt["backbone_state"])
                backbone.eval()
            network = None
            if "heads_state" in ckpt:
                if backbone is None:
                    raise KeyError("backbone_state")
                network = ThreeDSR(backbone, config.model)
                network.load_heads_state_dict(ckpt["heads_state"])
                network = network.to(device).eval()
            memory = None
            if ckpt.get("memory") is not None:
                memory = FeatureMemory.from_state(ckpt["memory"], config.setup, backbone).to(device)
            cals = {
                name: None
                if ckpt.get(f"{name}_calibration") is None
                else MapCalibration(*ckpt[f"{name}_calibration"])
                for name in ("heads", "memory")
            }
        except (KeyError, RuntimeError, TypeError, ValueError, vqcore.VqcoreError) as exc:
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ThreedsrError(f"{p}: inconsistent detector checkpoint ({msg[:160]})") from None
    return LoadedDetector(
        config=config,
        network=network,
        memory=memory,
        heads_calibration=cals["heads"],
        memory_calibration=cals["memory"],
        display=DisplayScale.from_state(ckpt.get("display")),
        category=ckpt.get("category"),
        preprocess=dict(ckpt.get("preprocess") or config.preprocess_kwargs()),
        training_state={
            "step": int(ckpt.get("step", 0)),
            "total": int(ckpt.get("total", 0)),
            "finished": bool(ckpt.get("finished", True)),
        },
    )
