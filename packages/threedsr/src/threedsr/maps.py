"""``AnomalyMap``: the map of a detector's method, from a model-resolution input.

One module for the three methods, so that ``Detector.predict`` and the exported graph
(:mod:`threedsr.graph`) run the same code: the 3DSR network's softmax map (``3dsr``), the
descriptor memory's distance map on the good-scan scale (``memory``), or both fused
(``fused``; :func:`threedsr.calibration.fuse_maps`).
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import Tensor, nn

from threedsr.calibration import MapCalibration, finish_maps, fuse_maps
from threedsr.dsr.torch_model import ThreeDSR, ThreeDSROutput
from threedsr.errors import ThreedsrError
from threedsr.memory.torch_model import FeatureMemory

__all__ = ["SQUASHES", "AnomalyMap"]

#: Where the memory's and the fused map's logistic goes (:class:`AnomalyMap`).
SQUASHES = ("smoothed", "pixels")


class AnomalyMap(nn.Module):
    """A method's unsmoothed map.

    Args:
        method: ``memory`` | ``3dsr`` | ``fused``.
        network: the 3DSR network (``3dsr`` and ``fused``).
        memory: the descriptor memory (``memory`` and ``fused``).
        heads_calibration, memory_calibration: the good-scan statistics of the network's and
            the memory's maps (:class:`MapCalibration`); the memory's is needed whenever it is
            used, the network's only by ``fused``.
        weight: the memory's weight in ``fused``.
        squash: where the memory's and the fused map's logistic goes: ``smoothed`` (after the
            smoothing, :meth:`finish`; then :meth:`forward` gives the logit) or ``pixels`` (on
            every pixel before it: detectors written before the option). The network's own map
            is a softmax probability either way.

    Shape:
        - Input: (B, C, H, W) model inputs.
        - Output: (B, H, W) float32 pre-smoothing maps (in (0, 1), or logits when
          :attr:`squashes_after_smoothing`), and the network's output (or None).
    """

    def __init__(
        self,
        method: str,
        *,
        network: ThreeDSR | None = None,
        memory: FeatureMemory | None = None,
        heads_calibration: MapCalibration | None = None,
        memory_calibration: MapCalibration | None = None,
        weight: float = 1.0,
        squash: str = "smoothed",
    ) -> None:
        super().__init__()
        if squash not in SQUASHES:
            raise ThreedsrError(f"squash must be one of {SQUASHES}, got {squash!r}")
        needs_network, needs_memory = method != "memory", method != "3dsr"
        if method not in ("memory", "3dsr", "fused"):
            raise ThreedsrError(f"unknown method {method!r} (memory, 3dsr or fused)")
        if needs_network and network is None:
            raise ThreedsrError(
                f"the {method} method needs the 3DSR network, which was not trained"
            )
        if needs_memory and (memory is None or memory_calibration is None):
            raise ThreedsrError(
                f"the {method} method needs the descriptor memory, which was not fitted"
            )
        if method == "fused" and heads_calibration is None:
            raise ThreedsrError("the fused method needs the network's good-scan calibration")
        self.method = method
        self.network = network if needs_network else None
        self.memory = memory if needs_memory else None
        self.heads_calibration = heads_calibration
        self.memory_calibration = memory_calibration
        self.weight = 1.0 if method == "memory" else 0.0 if method == "3dsr" else float(weight)
        #: The memory's or the fused map is a logit until :meth:`finish` smooths and squashes it.
        self.squashes_after_smoothing = method != "3dsr" and squash == "smoothed"

    def finish(self, pre: Tensor, smoothing: str, size: int, sigma: float) -> tuple[Tensor, Tensor]:
        """The smoothed and the raw map (both in (0, 1)) of :meth:`forward`'s map."""
        return finish_maps(pre, self.squashes_after_smoothing, smoothing, size, sigma)

    def forward(self, x: Tensor, *, autocast: Any = None) -> tuple[Tensor, ThreeDSROutput | None]:
        """The map of ``x`` and the network's output; ``autocast``: a context for the network's
        forward (bf16 inference), the memory's search stays fp32."""
        out = None
        heads = None
        if self.network is not None:
            with autocast or contextlib.nullcontext():
                out = self.network(x)
            heads = out.anomaly_map.float()
        if self.memory is None:
            assert heads is not None
            return heads, out
        assert self.memory_calibration is not None
        dist = self.memory(x, encoder=None if out is None else out.f1)
        heads_cal = self.heads_calibration or MapCalibration(0.0, 1.0)
        fused = fuse_maps(
            heads if heads is not None else torch.zeros_like(dist),
            dist,
            heads_cal,
            self.memory_calibration,
            self.weight,
            squash=not self.squashes_after_smoothing,
        )
        return fused, out
