"""The 3DSR detector: a frozen discrete backbone plus the four trainable stage-2 modules."""

from __future__ import annotations

from typing import NamedTuple

import torch
import vqcore
from torch import Tensor, nn

from threedsr.dsr.config import ModelConfig
from threedsr.dsr.modules import AnomalyUNet, GeneralDecoderCopy, ObjectDecoder, SubspaceRestriction

__all__ = ["ThreeDSR", "ThreeDSROutput"]


class ThreeDSROutput(NamedTuple):
    """Everything one forward pass produces.

    Attributes:
        logits: (B, 2, H, W) anomaly-module logits.
        anomaly_map: (B, H, W) softmax probability of the anomaly class (unsmoothed).
        object_recon: (B, C, H, W) object-specific reconstruction.
        general_recon: (B, C, H, W) general (backbone) reconstruction.
        srm_top, srm_bot: continuous subspace-restriction outputs (before re-quantisation).
        f1: (B, hidden, H/4, W/4) the backbone's Encoder-1 features of ``x``; None when the
            forward started from codes.
    """

    logits: Tensor
    anomaly_map: Tensor
    object_recon: Tensor
    general_recon: Tensor
    srm_top: Tensor
    srm_bot: Tensor
    f1: Tensor | None = None


class ThreeDSR(nn.Module):
    """Frozen backbone (eval mode, no gradients to its weights) + SRM lo/hi, object decoder, UNet.

    The setup (``rgbd`` | ``depth`` | ``rgb``) is the backbone's: DADA, the depth-only or the
    RGB-only VQ-VAE from ``vqcore``.

    Args:
        backbone: a ``vqcore.DiscreteAutoencoder`` (stage 1).
        config: module widths.

    Shape:
        - Input: (B, C, H, W) with C = 4 [D, R, G, B] / 1 / 3, H and W multiples of 32, at least 64.
        - Output: :class:`ThreeDSROutput`.

    Example:
        >>> import vqcore
        >>> bb = vqcore.build_backbone(vqcore.BackboneConfig.cpu("rgbd", hidden=32, res_hidden=8,
        ...                            num_embeddings=16, embedding_dim=8))
        >>> model = ThreeDSR(bb, ModelConfig.cpu(unet_base=4)).eval()
        >>> model(torch.rand(1, 4, 64, 64)).anomaly_map.shape
        torch.Size([1, 64, 64])
    """

    backbone: vqcore.DiscreteAutoencoder
    object_decoder: ObjectDecoder | GeneralDecoderCopy

    def __init__(
        self, backbone: vqcore.DiscreteAutoencoder, config: ModelConfig | None = None
    ) -> None:
        super().__init__()
        config = config or ModelConfig.paper()
        self.config = config
        bb_cfg = backbone.config
        self.setup: str = bb_cfg.setup
        dim = bb_cfg.embedding_dim
        out_ch = backbone.out_channels
        factory = _factory_of(backbone)
        self.backbone = backbone
        for p in backbone.parameters():
            p.requires_grad_(False)
        # The network's searches (encoding, SRM re-quantisation) follow the stage-2 config.
        for vq in (backbone.vq_top, backbone.vq_bot):
            vq.set_distance(config.vq_distance)
        srm = {"residual": config.srm_residual, "levels": config.srm_levels, **factory}
        self.srm_top = SubspaceRestriction(dim, config.srm_base, **srm)
        self.srm_bot = SubspaceRestriction(dim, config.srm_base, **srm)
        if config.object_decoder == "general_copy":
            self.object_decoder = GeneralDecoderCopy(backbone)
        else:
            self.object_decoder = ObjectDecoder(
                2 * dim,
                out_ch,
                width=config.objdec_width,
                bottleneck=config.objdec_bottleneck,
                hidden=config.objdec_hidden or bb_cfg.hidden,
                res_hidden=config.objdec_res_hidden or bb_cfg.res_hidden,
                num_res_layers=config.objdec_res_layers,
                init_std=config.init_std,
                res_skip=config.objdec_res_skip,
                **factory,
            )
        self.anomaly_unet = AnomalyUNet(
            2 * out_ch, config.unet_base, init_std=config.init_std, **factory
        )
        self.backbone.eval()

    @property
    def in_channels(self) -> int:
        return int(self.backbone.in_channels)

    def train(self, mode: bool = True) -> ThreeDSR:
        """Train the heads; the backbone stays in eval mode (no EMA codebook updates)."""
        super().train(mode)
        self.backbone.eval()
        return self

    def trainable_modules(self) -> dict[str, nn.Module]:
        return {
            "srm_top": self.srm_top,
            "srm_bot": self.srm_bot,
            "object_decoder": self.object_decoder,
            "anomaly_unet": self.anomaly_unet,
        }

    def heads_state_dict(self) -> dict[str, dict[str, Tensor]]:
        return {k: m.state_dict() for k, m in self.trainable_modules().items()}

    def load_heads_state_dict(self, state: dict[str, dict[str, Tensor]]) -> None:
        for k, m in self.trainable_modules().items():
            m.load_state_dict(state[k])

    def forward(
        self,
        x: Tensor | None = None,
        *,
        q_top: Tensor | None = None,
        q_bot: Tensor | None = None,
        image: Tensor | None = None,
    ) -> ThreeDSROutput:
        """Detect anomalies in ``x``, or (training) run the heads on given codes ``q_top, q_bot``
        (``image``: the input those codes came from, needed when ``unet_input == "input"``)."""
        bb = self.backbone
        f1 = None
        if q_top is None or q_bot is None:
            if x is None:
                raise ValueError("ThreeDSR.forward needs x or both q_top and q_bot")
            with torch.no_grad():
                enc = bb.encode(x)
            q_top, q_bot, f1 = enc.q_top, enc.q_bot, enc.f1
        with torch.no_grad():
            general = bb.decode(q_top, q_bot)
        srm_top = self.srm_top(q_top)
        srm_bot = self.srm_bot(q_bot)
        qs_top = bb.vq_top(srm_top).quantized
        qs_bot = bb.vq_bot(srm_bot).quantized
        up_top = bb.upsample_t(qs_top)
        obj = self.object_decoder(torch.cat((up_top, qs_bot), dim=1))
        if self.config.unet_input == "input":
            seen = x if image is None else image
            if seen is None:
                raise ValueError("ThreeDSR.forward: unet_input='input' needs x or image")
        else:
            seen = general
        logits = self.anomaly_unet(torch.cat((obj, seen.to(obj.dtype)), dim=1))
        amap = torch.softmax(logits.float(), dim=1)[:, 1]
        return ThreeDSROutput(logits, amap, obj, general, srm_top, srm_bot, f1)


def _factory_of(module: nn.Module) -> dict[str, object]:
    p = next(module.parameters(), None)
    return {"device": p.device, "dtype": p.dtype} if p is not None else {}
