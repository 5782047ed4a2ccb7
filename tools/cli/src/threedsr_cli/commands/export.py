"""``threedsr-cli export``: a run's whole inference map as one ONNX or TorchScript file."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from threedsr_cli.errors import CLIError
from threedsr_cli.ui import UI

__all__ = ["EXPORTED_FILE", "export_command"]

#: What ``predict --backend onnxruntime --run FOLDER`` looks for in a run folder.
EXPORTED_FILE = "detector.onnx"


def export_command(
    *,
    run: Path,
    fmt: str,
    out: Path | None,
    size: int | None,
    dynamic_batch: bool,
    threshold: float | None,
    method: str | None,
    ui: UI,
) -> dict[str, Any]:
    """Load the run on the CPU in fp32 and write ``out`` plus its ``out.json`` sidecar."""
    import threedsr
    from rich.markup import escape

    from threedsr_cli.libs import load_detector

    if size is not None and (size % 32 or size < 64):
        raise CLIError(f"--size: must be a multiple of 32 and at least 64, got {size}")
    if threshold is not None and not math.isfinite(threshold):
        raise CLIError(f"--threshold: must be finite, got {threshold}")
    detector = load_detector(run, "cpu", "fp32", method)
    if out is None:
        folder = Path(run) if Path(run).is_dir() else Path(run).parent
        out = folder / (EXPORTED_FILE if fmt == "onnx" else "detector.torchscript.pt")
    with ui.stage(f"export {fmt}", 1) as progress:
        meta = threedsr.export_detector(
            detector,
            out,
            fmt=fmt,
            size=size,
            dynamic_batch=dynamic_batch,
            threshold=threshold,
        )
        progress(1, 1)
    branches = (
        "heads"
        if meta["memory"] is None
        else (
            f"{meta['memory']['kind']} memory at weight {meta['memory']['weight']:g}"
            + (
                " + heads"
                if meta["memory"]["heads"]
                else " (the heads get weight 0: not in the graph)"
            )
        )
    )
    batch = "any batch" if dynamic_batch else "batch 1"
    ui.out.print(
        escape(
            f"{meta['setup']} detector, input {meta['input']['shape']} {''.join(meta['channels'])}, "
            f"{batch}, map = {branches}"
        )
    )
    ui.info(f"wrote {out} ({meta['bytes']} bytes, method {meta['method']}) and {out.name}.json")
    return meta
