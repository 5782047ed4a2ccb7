"""The 3DSR network (Zavrtanik et al., WACV 2024): the four stage-2 modules on a frozen
``vqcore`` backbone, the feature-space anomaly generator and the loss; the heads' training is
:func:`threedsr.dsr.train.train_heads`."""

from threedsr.dsr.anomaly_generator import FeatureAnomalyGenerator, patch_shuffle
from threedsr.dsr.code_sampling import sample_codes
from threedsr.dsr.config import AnomalyConfig, LossConfig, ModelConfig
from threedsr.dsr.loss import focal_loss, stage2_losses
from threedsr.dsr.modules import AnomalyUNet, GeneralDecoderCopy, ObjectDecoder, SubspaceRestriction
from threedsr.dsr.torch_model import ThreeDSR, ThreeDSROutput

__all__ = [
    "AnomalyConfig",
    "AnomalyUNet",
    "FeatureAnomalyGenerator",
    "GeneralDecoderCopy",
    "LossConfig",
    "ModelConfig",
    "ObjectDecoder",
    "SubspaceRestriction",
    "ThreeDSR",
    "ThreeDSROutput",
    "focal_loss",
    "patch_shuffle",
    "sample_codes",
    "stage2_losses",
]
