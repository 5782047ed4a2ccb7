"""threedsr: 3D (RGB + depth) surface anomaly detection with two methods, each in its folder:

- :mod:`threedsr.memory`: the descriptor memory, a kNN over hand-made surface, colour, texture
  and interior descriptors of a class's good scans (no training; minutes on a CPU);
- :mod:`threedsr.dsr`: the 3DSR network (Zavrtanik et al., WACV 2024), stage-2 heads trained on a
  frozen ``vqcore`` backbone (GPU-scale training);

and the shared runtime beside them: configuration, data, fitting (:func:`train_detector`),
inference (:class:`Detector`), calibration, checkpoints, evaluation and export. A detector's
``method`` (``memory``, ``3dsr`` or ``fused``) says which made its map.
"""

from threedsr.calibration import DisplayScale, MapCalibration, fuse_maps
from threedsr.checkpoint import KIND, read_checkpoint
from threedsr.config import (
    METHOD_SUMMARY,
    METHODS,
    AnomalyConfig,
    DetectorConfig,
    LossConfig,
    MemoryConfig,
    ModelConfig,
)
from threedsr.data import (
    TrainData,
    load_split,
    load_train_data,
    load_validation,
    model_input,
    train_data_from_prepared,
)
from threedsr.detector_file import DetectorInfo, detector_info
from threedsr.dsr.torch_model import ThreeDSR, ThreeDSROutput
from threedsr.errors import ThreedsrError
from threedsr.evaluate import EvaluatedSamples, evaluate
from threedsr.export import export_detector
from threedsr.export_sidecar import read_sidecar
from threedsr.fit import TrainEvent, TrainResult, train_detector
from threedsr.graph import InferenceGraph
from threedsr.inference import Detector, Prediction
from threedsr.maps import AnomalyMap
from threedsr.memory import FeatureMemory, fit_memory
from threedsr.metrics_report import format_markdown, threshold_outcome, write_metrics
from threedsr.onnx_backend import OnnxDetector
from threedsr.packed import PACK_SUFFIX, RGB_CODECS, Pack, PackedSample, is_pack
from threedsr.packed_write import write_pack
from threedsr.preprocess_config import PreprocessConfig
from threedsr.references import BTF_RESULTS, PAPER_RESULTS, reference_results
from threedsr.sample_predictions import SamplePrediction, predict_samples, upsample_map
from threedsr.smoothing import box_filter, gaussian_filter, smooth_maps
from threedsr.thresholds import choose_threshold, flagged_at

__version__ = "0.1.0"

__all__ = [
    "BTF_RESULTS",
    "KIND",
    "METHODS",
    "METHOD_SUMMARY",
    "PACK_SUFFIX",
    "PAPER_RESULTS",
    "RGB_CODECS",
    "AnomalyConfig",
    "AnomalyMap",
    "Detector",
    "DetectorConfig",
    "DetectorInfo",
    "DisplayScale",
    "EvaluatedSamples",
    "FeatureMemory",
    "InferenceGraph",
    "LossConfig",
    "MapCalibration",
    "MemoryConfig",
    "ModelConfig",
    "OnnxDetector",
    "Pack",
    "PackedSample",
    "Prediction",
    "PreprocessConfig",
    "SamplePrediction",
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
    "fit_memory",
    "flagged_at",
    "format_markdown",
    "fuse_maps",
    "gaussian_filter",
    "is_pack",
    "load_split",
    "load_train_data",
    "load_validation",
    "model_input",
    "predict_samples",
    "read_checkpoint",
    "read_sidecar",
    "reference_results",
    "smooth_maps",
    "threshold_outcome",
    "train_data_from_prepared",
    "train_detector",
    "upsample_map",
    "write_metrics",
    "write_pack",
]
