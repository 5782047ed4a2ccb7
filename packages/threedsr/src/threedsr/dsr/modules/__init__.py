"""The four trainable stage-2 modules."""

from threedsr.dsr.modules.decoder_copy import GeneralDecoderCopy
from threedsr.dsr.modules.object_decoder import ObjectDecoder
from threedsr.dsr.modules.subspace import SubspaceRestriction
from threedsr.dsr.modules.unet import AnomalyUNet

__all__ = ["AnomalyUNet", "GeneralDecoderCopy", "ObjectDecoder", "SubspaceRestriction"]
