"""vqcore: grouped-conv VQ codebooks, the depth-aware discrete autoencoder (DADA) and stage 1.

Example:
    >>> import torch, vqcore
    >>> model = vqcore.build_backbone(vqcore.BackboneConfig.cpu("rgbd"))
    >>> recon, vq_loss, enc = model(torch.rand(1, 4, 32, 32))
    >>> recon.shape
    torch.Size([1, 4, 32, 32])
"""

from .autoencoder import DiscreteAutoencoder, Encoding
from .blocks import ResidualBlock, ResidualStack
from .checkpoint import (
    CHECKPOINT_KIND,
    CHECKPOINT_NAME,
    FORMAT_VERSION,
    CheckpointInfo,
    atomic_torch_save,
    atomic_write,
    checkpoint_info,
    load_backbone,
    read_checkpoint,
    save_checkpoint,
)
from .config import SETUPS, BackboneConfig, Setup
from .config_base import ConfigMixin, milestones_at
from .data import ImageFolderSource, ProceduralRGBSource, StageOneBatches
from .device import (
    PRECISIONS,
    precision_scope,
    resolve_device,
    rng_scope,
    tf32_enabled,
    training_autocast,
    uses_bf16,
)
from .device_data import SAMPLERS, DeviceStageOneBatches, resolve_sampler
from .distributed import DistContext, init_distributed
from .errors import VqcoreError
from .loader import host_workers
from .loss import reconstruction_loss
from .models import (
    DADA,
    RGBVQVAE,
    DepthVQVAE,
    build_backbone,
    count_parameters,
    init_conv_weights,
)
from .ops import code_usage, interleave_groups, split_groups
from .pretrained import (
    PRETRAINED_DIR,
    load_pretrained,
    pretrained_manifest,
    pretrained_path,
    sha256_of,
    strip_checkpoint,
)
from .progress import TrainCallback, TrainEvent, as_callbacks
from .quantizer import VectorQuantizer, VectorQuantizerEMA
from .quantizer_base import VQOutput
from .search import (
    DISTANCES,
    nearest_codes,
    ranked_codes,
    reference_distances,
    squared_distances,
)
from .shapes import ShapeError, check_shape
from .train import StageOneResult, train_dada
from .train_config import PRESETS, StageOneConfig

__version__ = "0.1.0"

__all__ = [
    "CHECKPOINT_KIND",
    "CHECKPOINT_NAME",
    "DADA",
    "DISTANCES",
    "FORMAT_VERSION",
    "PRECISIONS",
    "PRESETS",
    "PRETRAINED_DIR",
    "RGBVQVAE",
    "SAMPLERS",
    "SETUPS",
    "BackboneConfig",
    "CheckpointInfo",
    "ConfigMixin",
    "DepthVQVAE",
    "DeviceStageOneBatches",
    "DiscreteAutoencoder",
    "DistContext",
    "Encoding",
    "ImageFolderSource",
    "ProceduralRGBSource",
    "ResidualBlock",
    "ResidualStack",
    "Setup",
    "ShapeError",
    "StageOneBatches",
    "StageOneConfig",
    "StageOneResult",
    "TrainCallback",
    "TrainEvent",
    "VQOutput",
    "VectorQuantizer",
    "VectorQuantizerEMA",
    "VqcoreError",
    "__version__",
    "as_callbacks",
    "atomic_torch_save",
    "atomic_write",
    "build_backbone",
    "check_shape",
    "checkpoint_info",
    "code_usage",
    "count_parameters",
    "host_workers",
    "init_conv_weights",
    "init_distributed",
    "interleave_groups",
    "load_backbone",
    "load_pretrained",
    "milestones_at",
    "nearest_codes",
    "precision_scope",
    "pretrained_manifest",
    "pretrained_path",
    "ranked_codes",
    "read_checkpoint",
    "reconstruction_loss",
    "reference_distances",
    "resolve_device",
    "resolve_sampler",
    "rng_scope",
    "save_checkpoint",
    "sha256_of",
    "split_groups",
    "squared_distances",
    "strip_checkpoint",
    "tf32_enabled",
    "train_dada",
    "training_autocast",
    "uses_bf16",
]
