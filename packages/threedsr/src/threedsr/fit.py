"""``train_detector``: make a detector of one class with the method its config names.

The stages are explicit: load the good training scans; train the 3DSR network
(:func:`threedsr.dsr.train.train_heads`, ``3dsr`` and ``fused`` only); fit the descriptor memory
(:func:`threedsr.memory.fit_memory`, ``memory`` and ``fused`` only; nothing is trained);
calibrate the maps on good scans; write ``detector.pt``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch
import vqcore

from threedsr.calibration import DisplayScale, MapCalibration, display_scale
from threedsr.checkpoint import DETECTOR_FILE, atomic_save, detector_payload
from threedsr.config import DetectorConfig
from threedsr.data import TrainData, load_train_data, load_validation, train_data_from_prepared
from threedsr.dsr.torch_model import ThreeDSR
from threedsr.dsr.train import TrainResult, load_backbone, train_heads
from threedsr.errors import ThreedsrError
from threedsr.inference import Detector
from threedsr.memory.fit import fit_memory
from threedsr.memory.torch_model import FeatureMemory

__all__ = ["CALIBRATION_SCANS", "TrainEvent", "TrainResult", "train_detector"]

#: Progress report (one type for every stage): ``stage`` is ``detector`` while the network
#: trains and ``memory`` while the memory is fitted and the maps calibrated.
TrainEvent = vqcore.TrainEvent

#: Good training scans whose leave-one-scan-out maps calibrate the maps' good-scan statistics.
CALIBRATION_SCANS = 16

Callback = Callable[[TrainEvent], Any]


def train_detector(
    config: DetectorConfig,
    callbacks: Callback | Iterable[Callback] | None = None,
    *,
    backbone: vqcore.DiscreteAutoencoder | None = None,
    data: TrainData | Sequence[Any] | None = None,
    validation: TrainData | Sequence[Any] | None = None,
) -> TrainResult:
    """Make the detector of one class and write ``<out_dir>/detector.pt`` (atomically).

    Args:
        config: see :class:`DetectorConfig`; ``out_dir`` is required, ``method`` says what is
            made: ``memory`` fits the descriptor memory (no training), ``3dsr`` trains the
            network, ``fused`` does both.
        callbacks: callable(s) receiving :class:`TrainEvent`s: the network's steps
            (``stage="detector"``), then the memory's and the calibration's (``stage="memory"``).
        backbone: a stage-1 model to use instead of loading ``config.backbone``.
        data: :class:`TrainData` or `Prepared` records instead of reading ``config.data_root``.
        validation: good validation scans for the display scale and threshold; None = the
            dataset's validation split when it has one, else the training scans left out one
            at a time.

    Returns:
        :class:`TrainResult` (steps, metrics and history are the network's; empty for the
        memory).
    """
    start = time.perf_counter()
    cbs = vqcore.as_callbacks(callbacks)
    out = config.run_dir()
    train = _train_data(config, data)
    needs_backbone = config.uses_network or config.memory.features == "encoder"
    if needs_backbone and backbone is None:
        backbone = load_backbone(config)
    if backbone is not None and backbone.config.setup != config.setup:
        raise ThreedsrError(
            f"{config.backbone or 'backbone'}: is a {backbone.config.setup!r} backbone but the "
            f"detector setup is {config.setup!r}"
        )
    network, result = None, None
    if config.uses_network:
        assert backbone is not None
        network, result = train_heads(config, train, backbone, cbs)
        if result.sampler is not None:
            # The finished detector records the sampler the run used ("auto" resolved).
            config = config.replace(anomaly=config.anomaly.replace(sampler=result.sampler))
        if int(os.environ.get("RANK", "0")) != 0:
            return result  # rank 0 writes the finished detector
    device = vqcore.resolve_device(config.device)
    if backbone is not None:
        backbone = backbone.to(device).eval()

    def report(step: int, what: str) -> None:  # what: the phase starting, for readers
        for cb in cbs:
            cb(TrainEvent(step, 4, {}, "memory"))

    memory = None
    if config.uses_memory:
        report(0, "describe")
        memory = fit_memory(
            train.x.to(device),
            config.setup,
            config.memory,
            backbone=backbone if config.memory.features == "encoder" else None,
            seed=config.seed,
        ).to(device)
    report(1, "calibrate")
    # fp32 like the training's fp32 parts: TF32 as config.precision says (no autocast here).
    with vqcore.precision_scope(config.precision):
        heads_cal, memory_cal, loo_maps = _calibrate(network, memory, train, device)
    detector = Detector(
        config,
        network=network,
        memory=memory,
        heads_calibration=heads_cal,
        memory_calibration=memory_cal,
        device=device,
    )
    report(2, "display")
    display = _display(detector, config, validation, loo_maps)
    report(3, "write")
    payload = detector_payload(
        config,
        network=network,
        memory=memory,
        calibration={
            k: v for k, v in (("heads", heads_cal), ("memory", memory_cal)) if v is not None
        },
        display=display,
        step=0 if result is None else result.step,
        finished=True,
        metrics=None if result is None else result.metrics,
    )
    path = atomic_save(payload, out / DETECTOR_FILE)
    if result is None:
        _write_history(out, [])
    # The last event says every phase is done (step == total), as the network's last step does.
    report(4, "written")
    return TrainResult(
        path,
        0 if result is None else result.step,
        {} if result is None else result.metrics,
        time.perf_counter() - start,
        [] if result is None else result.history,
        None if result is None else result.sampler,
    )


def _train_data(config: DetectorConfig, data: TrainData | Sequence[Any] | None) -> TrainData:
    if data is None:
        data = load_train_data(config)
    elif not isinstance(data, TrainData):
        data = train_data_from_prepared(list(data), config.setup)
    if data.x.shape[2] != config.image_size or data.x.shape[3] != config.image_size:
        raise ThreedsrError(
            f"training data is {tuple(data.x.shape[2:])}, config.image_size is {config.image_size}"
        )
    if config.uses_memory and data.x.shape[0] < 2:
        # The calibration scores each scan with its own cells left out: one scan leaves an
        # empty memory, an infinite mean and a detector whose every map is NaN.
        raise ThreedsrError(
            f"the {config.method} method needs at least 2 good training scans (the memory's "
            f"calibration scores each against the others), got {data.x.shape[0]}"
        )
    return data


@torch.no_grad()
def _calibrate(
    network: ThreeDSR | None,
    memory: FeatureMemory | None,
    data: TrainData,
    device: torch.device,
) -> tuple[MapCalibration | None, MapCalibration | None, torch.Tensor]:
    """Good-scan statistics of each map from up to :data:`CALIBRATION_SCANS` training scans,
    each scored against the memory without its own cells (leave one scan out), so they are those
    of an unseen good scan rather than of a stored one. Also returns those scans' memory maps
    (or network maps) for the display scale when there is no validation split."""
    x = data.x
    pick = torch.linspace(0, x.shape[0] - 1, min(CALIBRATION_SCANS, x.shape[0])).round().long()
    heads, mem = [], []
    for chunk in pick.split(4):
        xb = x[chunk].to(device)
        out = None
        if network is not None:
            out = network(xb)
            heads.append(out.anomaly_map.float().cpu())
        if memory is not None:
            encoder = None if out is None else out.f1
            mem.append(memory(xb, encoder=encoder, exclude=chunk.to(device)).cpu())
    h = torch.cat(heads) if heads else None
    m = torch.cat(mem) if mem else None
    heads_cal = None if h is None else MapCalibration(float(h.mean()), float(h.std()))
    memory_cal = None if m is None else MapCalibration(float(m.mean()), float(m.std()))
    return heads_cal, memory_cal, (m if m is not None else h)  # type: ignore[return-value]


def _display(
    detector: Detector,
    config: DetectorConfig,
    validation: TrainData | Sequence[Any] | None,
    loo_maps: torch.Tensor,
) -> DisplayScale:
    """The display scale on good validation scans; without them, on the calibration's
    leave-one-out training maps: the memory's, squashed as the memory method's map is (a fused
    detector's scale then leaves out the network's term), or the network's; then smoothed."""
    if validation is None:
        validation = load_validation(config)
    elif not isinstance(validation, TrainData):
        validation = train_data_from_prepared(list(validation), config.setup)
    if validation is not None and len(validation):
        maps = detector.predict(validation.x).maps.numpy()
        fg = validation.foreground[:, 0].numpy() > 0.5
        return display_scale(maps, fg if config.setup != "rgb" else None, "validation")
    pre = loo_maps
    if config.uses_memory:
        assert detector.map.memory_calibration is not None
        pre = detector.map.memory_calibration.normalise(loo_maps)
        if not detector.map.squashes_after_smoothing:
            pre = torch.sigmoid(pre)
    maps, _ = detector.map.finish(
        pre, detector.smoothing, detector.filter_size, detector.gaussian_sigma
    )
    return display_scale(np.asarray(maps), None, "training")


def _write_history(out: Any, history: list[dict[str, float]]) -> None:
    text = json.dumps(history, indent=1)
    vqcore.atomic_write(out / "train_history.json", lambda tmp: tmp.write_text(text))
