"""The whole inference map of a :class:`threedsr.Detector` as one traceable ``nn.Module``.

``Detector.predict`` has Python-side control flow that a tracer cannot follow: the vector
quantisers and the feature memory search in row blocks whose count depends on the input, and the
detector picks its branches (heads, memory, both) at run time. :class:`InferenceGraph` fixes
those choices when it is built and writes every step as plain tensor operations, so that
``torch.jit.trace`` and ``torch.onnx.export`` record one graph from the model-resolution input to
the smoothed anomaly map and the image score: encoder, both quantisations, subspace restriction
and re-quantisation, both decoders, the UNet, softmax, the memory (descriptors as fixed
convolutions, kNN to the stored bank as matmul + min), the fusion with the stored weight, and
the smoothing. Every step follows the eager code's arithmetic, so maps equal ``predict``'s to
round-off and the codes are the same.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from threedsr.descriptors import local_descriptors
from threedsr.errors import ThreedsrError
from threedsr.smoothing import gaussian_kernel1d

__all__ = ["CODE_OUTPUTS", "MEMORY_BLOCK_ELEMENTS", "InferenceGraph"]

#: Names of the code outputs of a graph that runs the 3DSR heads (encoder codes, then the codes
#: re-quantised after the subspace restriction), each (B, h, w) int64.
CODE_OUTPUTS = ("codes_top", "codes_bot", "codes_top_restricted", "codes_bot_restricted")

#: Largest (query rows x bank rows) distance block per image in the memory search. The graph's
#: row blocks are fixed at export (the size is), so the block bound is what keeps a 100k-row
#: bank from materialising a (H/2 * W/2) x 100k matrix at once.
MEMORY_BLOCK_ELEMENTS = 1 << 24


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
    """A detector's inference map with its branches fixed: input -> (map, score[, codes]).

    Args:
        detector: a loaded :class:`threedsr.Detector` (its model, memory, fusion weight and
            smoothing are taken as they are; its bf16 / Winograd / batching options are not: the
            graph is the plain fp32 computation).
        size: the model-resolution side the graph is built for (the memory search's row blocks
            depend on it); a multiple of 32.

    Shape:
        - Input: (B, C, size, size) float32, C = 4 [D, R, G, B] / 1 [D] / 3 [R, G, B].
        - Output: a tuple ``(anomaly_map (B, size, size), score (B,))``, followed by the four
          :data:`CODE_OUTPUTS` when the graph runs the 3DSR heads.
    """

    def __init__(self, detector: Any, size: int) -> None:
        super().__init__()
        if size % 32 or size < 64:
            raise ThreedsrError(f"export: size must be a multiple of 32 and >= 64, got {size}")
        model = detector.model
        self.setup = str(model.setup)
        self.in_channels = int(model.in_channels)
        self.size = int(size)
        self.smoothing = str(detector.smoothing)
        self.filter_size = int(detector.filter_size)
        self.sigma = float(detector.gaussian_sigma)
        memory = detector.memory
        weight = float(detector.memory_weight)
        self.use_memory = memory is not None and weight > 0
        self.memory_alone = bool(detector._memory_alone)
        self.runs_heads = not self.memory_alone
        # A descriptor memory at weight 1 is the whole map (Detector.predict skips the heads
        # too): the graph then holds no network weights at all.
        self.model = None if self.memory_alone else model
        self.memory_weight = weight
        self.memory_kind = memory.features.kind if self.use_memory else None
        self.has_local_scale = False
        if self.use_memory:
            feats = memory.features
            self.scales = tuple(feats.scales)
            self.groups = tuple(feats.groups)
            self.pool = int(feats.pool)
            bank = memory.bank.float()
            # -2 folded into the bank (exact: a power of 2), so one Gemm with the ||e||^2 bias
            # gives ||e||^2 - 2 x.e; onnxruntime then makes one pass over each distance block.
            self.register_buffer("bank_t", (bank.t() * -2.0).contiguous())
            self.register_buffer("bank_sq", (bank * bank).sum(dim=1))
            c = bank.shape[1]
            center = memory.center if memory.center is not None else torch.zeros(c)
            scale = memory.scale if memory.scale is not None else torch.ones(c)
            self.register_buffer("center", center.float())
            self.register_buffer("scale", scale.float())
            self.has_local_scale = memory.local_scale is not None
            if self.has_local_scale:
                self.register_buffer("local_scale", memory.local_scale.float())
            self.has_center = memory.center is not None
            self.has_scale = memory.scale is not None
            self.heads_cal = tuple(float(v) for v in detector._heads_cal)
            self.memory_cal = tuple(float(v) for v in detector._memory_cal)
            cells = self.size // (4 if self.memory_kind == "encoder" else self.pool)
            self.rows = max(1, MEMORY_BLOCK_ELEMENTS // bank.shape[0])
            self.cells = cells
        self.eval()

    @property
    def output_names(self) -> list[str]:
        return ["anomaly_map", "score", *(CODE_OUTPUTS if self.runs_heads else ())]

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        codes: tuple[Tensor, ...] = ()
        f1 = None
        if self.runs_heads:
            heads, f1, codes = self._heads(x)
        raw = None if self.runs_heads and not self.use_memory else self._memory(x, f1)
        if raw is not None:
            if not self.runs_heads:
                heads = torch.zeros_like(raw)
            raw = self._fuse(heads, raw)
        else:
            raw = heads
        m = self._smooth(raw)
        return (m, m.flatten(1).amax(dim=1), *codes)

    def _heads(self, x: Tensor) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
        """``ThreeDSR.forward`` of an input with the quantisers written out."""
        model = self.model
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

    def _memory(self, x: Tensor, f1: Tensor | None) -> Tensor:
        """``threedsr.memory.memory_map``: features, nearest bank row, object cells, upsampling."""
        if self.memory_kind == "encoder":
            assert self.model is not None and f1 is not None  # encoder memories run the heads
            f = f1
        else:
            f = local_descriptors(x, self.setup, self.scales, self.groups)
            f = F.avg_pool2d(f, self.pool) if self.pool > 1 else f
        c, h, w = f.shape[1], f.shape[2], f.shape[3]
        q = f.float().permute(0, 2, 3, 1).reshape(-1, h * w, c)
        if self.has_center:
            q = q - self.center
        if self.has_scale:
            q = q / self.scale
        blocks, nearest = [], []
        for s in range(0, h * w, self.rows):
            rows = min(self.rows, h * w - s)
            qb = q[:, s : s + rows].reshape(-1, c)
            if self.has_local_scale:
                v, i = torch.addmm(self.bank_sq, qb, self.bank_t).min(dim=1)
                nearest.append(i.reshape(-1, rows))
            else:
                v = torch.addmm(self.bank_sq, qb, self.bank_t).amin(dim=1)
            blocks.append(v.reshape(-1, rows))
        # Adding ||x||^2 and clamping at 0 are monotone, so they commute with the min: applied
        # after it, the result is the eager code's min(clamp(||e||^2 - 2 x.e + ||x||^2)) exactly.
        d2 = (torch.cat(blocks, dim=1) + (q * q).sum(dim=2)).clamp_min(0)
        d = d2.sqrt()
        if self.has_local_scale:
            d = d / self.local_scale[torch.cat(nearest, dim=1)]
        d = d.reshape(-1, h, w)
        if self.setup != "rgb":
            # memory.object_cells: the share of object pixels per cell (an exact average pool).
            k = x.shape[2] // h
            on = F.avg_pool2d((x[:, :1] > 0.05).float(), k)[:, 0] > 0.5
            d = d * on
        return F.interpolate(d[:, None], size=x.shape[2:], mode="bilinear", align_corners=False)[
            :, 0
        ]

    def _fuse(self, heads: Tensor, memory: Tensor) -> Tensor:
        """``threedsr.memory.fuse_maps`` with the stored calibrations and weight."""
        w = self.memory_weight
        zm = (memory - self.memory_cal[0]) / max(self.memory_cal[1], 1e-8)
        zh = (heads - self.heads_cal[0]) / max(self.heads_cal[1], 1e-8)
        return torch.sigmoid(w * zm + (1.0 - w) * zh)

    def _smooth(self, maps: Tensor) -> Tensor:
        """``threedsr.smoothing.smooth_maps`` with the detector's method and size."""
        if self.smoothing == "box":
            k = self.filter_size
            return F.avg_pool2d(maps[:, None], k, stride=1, padding=k // 2, count_include_pad=True)[
                :, 0
            ]
        if self.smoothing == "gaussian":
            kern = gaussian_kernel1d(self.sigma)
            r = (kern.numel() - 1) // 2
            y = F.conv2d(maps[:, None], kern.view(1, 1, 1, -1), padding=(0, r))
            return F.conv2d(y, kern.view(1, 1, -1, 1), padding=(r, 0))[:, 0]
        return maps
