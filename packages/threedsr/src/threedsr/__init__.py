"""threedsr: the 3DSR detector (Zavrtanik et al., WACV 2024): stage-2 training, inference and
evaluation on top of a frozen ``vqcore`` backbone, for the ``rgbd``, ``depth`` and ``rgb`` setups.
"""

from threedsr.checkpoint import KIND, DetectorInfo, detector_info, read_checkpoint
from threedsr.config import (
    AnomalyConfig,
    DetectorConfig,
    LossConfig,
    ModelConfig,
    PreprocessConfig,
)
from threedsr.data import TrainData, load_split, model_input, train_data_from_prepared
from threedsr.errors import ThreedsrError
from threedsr.evaluate import (
    PAPER_RESULTS,
    EvaluatedSamples,
    evaluate,
    format_markdown,
    write_metrics,
)
from threedsr.export import export_detector, read_sidecar
from threedsr.generator import FeatureAnomalyGenerator, patch_shuffle, sample_codes
from threedsr.graph import InferenceGraph
from threedsr.inference import (
    Detector,
    Prediction,
    SamplePrediction,
    choose_threshold,
    predict_samples,
    upsample_map,
)
from threedsr.losses import focal_loss, stage2_losses
from threedsr.model import ThreeDSR, ThreeDSROutput
from threedsr.modules import AnomalyUNet, GeneralDecoderCopy, ObjectDecoder, SubspaceRestriction
from threedsr.onnx_backend import OnnxDetector
from threedsr.smoothing import box_filter, gaussian_filter, smooth_maps
from threedsr.train import TrainEvent, TrainResult, load_train_data, train_detector

__version__ = "0.1.0"

__all__ = [
    "KIND",
    "PAPER_RESULTS",
    "AnomalyConfig",
    "AnomalyUNet",
    "Detector",
    "DetectorConfig",
    "DetectorInfo",
    "EvaluatedSamples",
    "FeatureAnomalyGenerator",
    "GeneralDecoderCopy",
    "InferenceGraph",
    "LossConfig",
    "ModelConfig",
    "ObjectDecoder",
    "OnnxDetector",
    "Prediction",
    "PreprocessConfig",
    "SamplePrediction",
    "SubspaceRestriction",
    "ThreeDSR",
    "ThreeDSROutput",
    "ThreedsrError",
    "TrainData",
    "TrainEvent",
    "TrainResult",
    "__version__",
    "box_filter",
    "choose_threshold",
    "detector_info",
    "evaluate",
    "export_detector",
    "focal_loss",
    "format_markdown",
    "gaussian_filter",
    "load_split",
    "load_train_data",
    "model_input",
    "patch_shuffle",
    "predict_samples",
    "read_checkpoint",
    "read_sidecar",
    "sample_codes",
    "smooth_maps",
    "stage2_losses",
    "train_data_from_prepared",
    "train_detector",
    "upsample_map",
    "write_metrics",
]
