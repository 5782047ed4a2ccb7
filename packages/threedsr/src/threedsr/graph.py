"""The whole inference map of a :class:`threedsr.Detector` as one traceable ``nn.Module``.

The graph runs the detector's own modules: its :class:`~threedsr.memory.FeatureMemory` (which
gathers the object's cells and searches fixed blocks of its bank when traced), the fusion of :func:`~threedsr.fuse_maps` and
:func:`~threedsr.smooth_maps`, so ``torch.jit.trace`` and ``torch.onnx.export`` record one graph
from the model-resolution input to the smoothed anomaly map and the image score.

One step is written out: the 3DSR network's forward with its quantisations as plain tensor
operations (:func:`_quantize`), because ``vqcore``'s quantizers also keep training statistics
(code usage, the EMA update) and write row blocks in place, which a tracer cannot export. It
follows the quantizers' arithmetic, so maps equal ``predict``'s to round-off and the codes are
the same; the graph also returns those codes.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from threedsr.calibration import finish_maps, fuse_maps
from threedsr.errors import ThreedsrError

__all__ = ["CODE_OUTPUTS", "InferenceGraph"]

#: Names of the code outputs of a graph that runs the 3DSR heads (encoder codes, then the codes
#: re-quantised after the subspace restriction), each (B, h, w) int64.
CODE_OUTPUTS = ("codes_top", "codes_bot", "codes_top_restricted", "codes_bot_restricted")


def _quantize(vq: nn.Module, f: Tensor) -> tuple[Tensor, Tensor]:
    """Nearest-code quantisation exactly as ``vqcore``'s quantizers compute it at inference
    (``||x||^2 - 2 x.e + ||e||^2`` clamped at 0, first minimum, then the straight-through sum
    ``f + (q - f)``), without the row-block loop.

    Shape:
        - f: (B, D, h, w). Returns quantised (B, D, h, w) and indices (B, h, w) int64.
    """
    d = f.shape[1]
    cb = vq.codebook.detach().float()
    flat = f.float().permute(0, 2, 3, 1).reshape(-1, d)
    x_sq = (flat * flat).sum(dim=1, keepdim=True)
    e_sq = (cb * cb).sum(dim=1)
    d2 = torch.addmm(e_sq.unsqueeze(0), flat, cb.t(), alpha=-2.0).add(x_sq).clamp_min(0)
    idx = d2.argmin(dim=1)
    q = F.embedding(idx, cb).reshape(-1, f.shape[2], f.shape[3], d).permute(0, 3, 1, 2)
    ff = f.float()
    return ff + (q - ff), idx.reshape(-1, f.shape[2], f.shape[3])


class InferenceGraph(nn.Module):
    """A detector's inference map with its method fixed: input -> (map, score[, codes]).

    Args:
        detector: a loaded :class:`threedsr.Detector` (its method, network, memory, fusion and
            smoothing are taken as they are; its bf16 / batching options are not: the graph is
            the plain fp32 computation).
        size: the model-resolution side the graph is built for; the detector's own (the
            memory's descriptor scales and the network's codes are those of that size).

    Shape:
        - Input: (B, C, size, size) float32, C = 4 [D, R, G, B] / 1 [D] / 3 [R, G, B].
        - Output: a tuple ``(anomaly_map (B, size, size), score (B,))``, followed by the four
          :data:`CODE_OUTPUTS` when the graph runs the 3DSR network.
    """

    def __init__(self, detector: Any, size: int) -> None:
        super().__init__()
        if size % 32 or size < 64:
            raise ThreedsrError(f"export: size must be a multiple of 32 and >= 64, got {size}")
        if size != detector.size:
            raise ThreedsrError(
                f"export: size {size} is not the detector's {detector.size}: its descriptor "
                "scales and codes hold at the size it was made for"
            )
        amap = detector.map
        self.method = str(amap.method)
        self.setup = str(detector.setup)
        self.in_channels = int(detector.in_channels)
        self.size = int(size)
        self.smoothing = str(detector.smoothing)
        self.filter_size = int(detector.filter_size)
        self.sigma = float(detector.gaussian_sigma)
        self.network = amap.network
        self.memory = amap.memory
        self.heads_calibration = amap.heads_calibration
        self.memory_calibration = amap.memory_calibration
        self.weight = float(amap.weight)
        self.squash_after = bool(amap.squashes_after_smoothing)
        self.runs_heads = self.network is not None
        self.eval()

    @property
    def output_names(self) -> list[str]:
        return ["anomaly_map", "score", *(CODE_OUTPUTS if self.runs_heads else ())]

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        codes: tuple[Tensor, ...] = ()
        f1 = heads = None
        if self.network is not None:
            heads, f1, codes = self._heads(x)
        if self.memory is None:
            assert heads is not None
            raw = heads
        else:
            assert self.memory_calibration is not None
            dist = self.memory(x, encoder=f1)
            raw = fuse_maps(
                torch.zeros_like(dist) if heads is None else heads,
                dist,
                self.heads_calibration or self.memory_calibration,
                self.memory_calibration,
                self.weight,
                squash=not self.squash_after,
            )
        m, _ = finish_maps(raw, self.squash_after, self.smoothing, self.filter_size, self.sigma)
        return (m, m.flatten(1).amax(dim=1), *codes)

    def _heads(self, x: Tensor) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
        """``ThreeDSR.forward`` of an input with the quantisers written out."""
        model = self.network
        assert model is not None
        bb = model.backbone
        f1 = bb.encoder_bottom(x)
        q_top, i_top = _quantize(bb.vq_top, bb.pre_vq_top(bb.encoder_top(f1)))
        q_bot, i_bot = _quantize(bb.vq_bot, bb.encode_bottom(f1, q_top))
        general = bb.decode(q_top, q_bot)
        qs_top, r_top = _quantize(bb.vq_top, model.srm_top(q_top))
        qs_bot, r_bot = _quantize(bb.vq_bot, model.srm_bot(q_bot))
        up_top = bb.upsample_t(qs_top)
        obj = model.object_decoder(torch.cat((up_top, qs_bot), dim=1))
        seen = x if model.config.unet_input == "input" else general
        logits = model.anomaly_unet(torch.cat((obj, seen.to(obj.dtype)), dim=1))
        amap = torch.softmax(logits.float(), dim=1)[:, 1]
        return amap, f1, (i_top, i_bot, r_top, r_bot)
