"""admetrics: exact, fast AUROC / AP / AUPRO for anomaly detection, one-shot or streaming.

numpy + numba only; torch tensors are accepted (any device) without importing torch.
"""

from .errors import AdmetricsError
from .functional import (
    aupro,
    average_precision,
    image_auroc,
    pixel_auroc,
    pixel_average_precision,
    pro_curve,
    roc_curve,
)
from .report import format_report
from .streaming import AnomalyMetrics

__version__ = "0.1.0"

__all__ = [
    "AdmetricsError",
    "AnomalyMetrics",
    "__version__",
    "aupro",
    "average_precision",
    "format_report",
    "image_auroc",
    "pixel_auroc",
    "pixel_average_precision",
    "pro_curve",
    "roc_curve",
]
