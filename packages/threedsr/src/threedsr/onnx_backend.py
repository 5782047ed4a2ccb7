"""Run an exported detector (:mod:`threedsr.export`) with onnxruntime.

``OnnxDetector`` offers the part of :class:`threedsr.Detector`'s interface that prediction uses
(``predict``, ``prepare``, ``setup``, ``size``, ``category``, ``preprocess``), so the CLI's
``predict --backend onnxruntime`` runs the same code around it. onnxruntime is an optional extra
(``threedsr[onnx]``); it is imported only here, when a file is loaded.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pcprep

from threedsr.calibration import DisplayScale
from threedsr.data import check_finite_inputs, check_float_dtype, prepared_inputs
from threedsr.errors import ThreedsrError
from threedsr.export_sidecar import read_sidecar
from threedsr.preprocess_config import PreprocessConfig

__all__ = ["ExportedPrediction", "OnnxDetector", "import_onnxruntime"]


class ExportedPrediction(NamedTuple):
    """Output of an exported graph, float32 NumPy.

    Attributes:
        maps: (B, H, W) smoothed anomaly maps.
        scores: (B,) image scores (max of each map).
    """

    maps: np.ndarray
    scores: np.ndarray


def import_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise ThreedsrError(
            "onnxruntime is not installed; install the extra: pip install 'threedsr[onnx]'"
        ) from None
    return onnxruntime


class OnnxDetector:
    """An exported ONNX detector on onnxruntime's CPU provider.

    Args:
        path: the ``.onnx`` file (its sidecar ``<file>.json`` must lie next to it).
        threads: onnxruntime intra-op threads; None = onnxruntime's default (all cores).

    Raises:
        ThreedsrError: missing onnxruntime, a missing / corrupt / truncated file or sidecar, a
            TorchScript export, or a graph whose input does not match the sidecar's setup and
            size (one line naming the file).
    """

    def __init__(self, path: str | os.PathLike[str], *, threads: int | None = None) -> None:
        ort = import_onnxruntime()
        self.path = Path(path)
        self.meta = read_sidecar(self.path)
        if self.meta.get("format") != "onnx":
            raise ThreedsrError(
                f"{self.path}: is a {self.meta.get('format')} export; onnxruntime runs onnx ones"
            )
        opts = ort.SessionOptions()
        if threads is not None:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(
                str(self.path), opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own Fail / InvalidProtobuf types
            msg = " ".join(str(exc).split())[:160] or type(exc).__name__
            raise ThreedsrError(f"{self.path}: not a loadable ONNX model ({msg})") from None
        self._check_graph()
        self.setup: str = self.meta["setup"]
        self.size: int = int(self.meta["size"])
        self.category: str | None = self.meta.get("category")
        self.preprocess: dict[str, Any] = dict(self.meta["preprocess"])
        # absent from sidecars written before own scans had a unit: pcprep's defaults
        # (checked by the sidecar's reader; the config turns json's lists back into tuples)
        self.read_options: dict[str, Any] = PreprocessConfig(
            **(self.meta.get("read_options") or {})
        ).read_options()
        self.threshold: float | None = self.meta.get("threshold")
        self.method: str = str(self.meta.get("method"))
        self.display = DisplayScale.from_state(self.meta.get("display"))
        self.batch: int | None = None if self.meta.get("dynamic_batch") else 1
        #: Samples per ``predict`` call in :func:`~threedsr.predict_samples` (Detector's
        #: attribute of the same name); a batch-1 graph loops over a batch anyway.
        self.batch_size: int = 8 if self.batch is None else 1
        self.output_names = [o.name for o in self.session.get_outputs()]

    def _check_graph(self) -> None:
        """The graph's input must be what the sidecar says (a sidecar of another export)."""
        setup, size = self.meta.get("setup"), self.meta.get("size")
        channels = len(self.meta.get("channels", []))
        inputs = self.session.get_inputs()
        shape = list(inputs[0].shape) if len(inputs) == 1 else None
        if shape is None or len(shape) != 4 or shape[1:] != [channels, size, size]:
            found = shape[1:] if shape else [i.name for i in inputs]
            raise ThreedsrError(
                f"{self.path}: graph input is {found}, but its sidecar says setup {setup!r} at "
                f"size {size} ({[channels, size, size]}); the model was exported for another "
                "setup or size"
            )

    def check_matches(self, setup: str, size: int, source: str) -> None:
        """Refuse an export whose setup or size differs from the run it is used with."""
        if (setup, int(size)) != (self.setup, self.size):
            raise ThreedsrError(
                f"{self.path}: exported for a {self.setup!r} detector at size {self.size}, but "
                f"{source} is a {setup!r} one at size {size} (re-export it)"
            )

    def _as_array(self, batch: Any) -> np.ndarray:
        if hasattr(batch, "detach"):  # a torch tensor, with grad or on a GPU
            batch = batch.detach().cpu().numpy()
        if isinstance(batch, np.ndarray):
            check_float_dtype(batch.dtype, str(self.path))
            x = np.asarray(batch, dtype=np.float32)
        else:
            x = prepared_inputs(batch, self.setup)
        if x.ndim == 3:
            x = x[None]
        want = (int(self.meta["input"]["shape"][1]), self.size, self.size)
        if x.ndim != 4 or tuple(x.shape[1:]) != want or x.shape[0] == 0:
            raise ThreedsrError(
                f"{self.path}: expects (B, {want[0]}, {want[1]}, {want[2]}) with B >= 1 (setup "
                f"{self.setup!r}, size {self.size}), got {tuple(x.shape)}"
            )
        check_finite_inputs(x, str(self.path))
        return np.ascontiguousarray(x, dtype=np.float32)

    def run(self, x: np.ndarray | Sequence[Any]) -> list[np.ndarray]:
        """Every output of the graph for (B, C, size, size) inputs (batch-1 exports loop)."""
        x = self._as_array(x)
        step = self.batch or x.shape[0]
        parts = [
            self.session.run(None, {"input": x[s : s + step]}) for s in range(0, x.shape[0], step)
        ]
        return [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))]

    def predict(self, batch: np.ndarray | Sequence[Any]) -> ExportedPrediction:
        """Anomaly maps and image scores for (B, C, H, W) inputs or pcprep `Prepared` records."""
        out = self.run(batch)
        return ExportedPrediction(out[0], out[1])

    def prepare(self, sample: Any) -> Any:
        """pcprep-preprocess a raw `Sample` with the parameters recorded at export."""
        return pcprep.preprocess(sample, **self.preprocess)
