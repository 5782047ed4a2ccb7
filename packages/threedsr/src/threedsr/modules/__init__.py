"""The four trainable stage-2 modules."""

from threedsr.modules.decoder_copy import GeneralDecoderCopy
from threedsr.modules.object_decoder import ObjectDecoder
from threedsr.modules.subspace import SubspaceRestriction
from threedsr.modules.unet import AnomalyUNet

__all__ = ["AnomalyUNet", "GeneralDecoderCopy", "ObjectDecoder", "SubspaceRestriction"]
