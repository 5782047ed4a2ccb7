"""Lazy bridges to the libraries: device, categories, checkpoints (imported inside commands)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from threedsr_cli.errors import CLIError
from threedsr_cli.options import check_data_root

__all__ = [
    "allow_torch_version",
    "check_backbone",
    "check_category",
    "load_detector",
    "load_exported",
    "resolve_device",
    "seed_everything",
]


@contextmanager
def allow_torch_version() -> Iterator[None]:
    """Let ``torch.load(weights_only=True)`` read the ``TorchVersion`` (a ``str`` subclass) that
    vqcore 0.1.0 stores in ``backbone.pt``; without it its own checkpoints fail to load."""
    import torch

    with torch.serialization.safe_globals([torch.torch_version.TorchVersion]):
        yield


def resolve_device(name: str) -> Any:
    """``auto``/``cpu``/``cuda`` -> ``torch.device`` (a missing CUDA is bad input)."""
    import vqcore

    return vqcore.resolve_device(name)


def seed_everything(seed: int) -> None:
    import torch

    # The libraries draw from Generators built from explicit seeds; these cover stray global use.
    random.seed(seed)
    torch.manual_seed(seed)


def check_category(root: Path, category: str) -> str:
    """``category`` must be one of the dataset's classes (the message lists the known ones)."""
    import pcprep

    check_data_root(root)
    known = list(pcprep.list_categories(root))
    if not known:
        raise CLIError(f"{root}: holds no dataset (no class folders with train/test samples)")
    if category not in known:
        raise CLIError(f"{root}: unknown category {category!r} (known: {', '.join(known)})")
    return category


def check_backbone(path: Path, setup: str) -> Path:
    """The stage-1 checkpoint (file or the folder ``train-dada`` wrote) exists, is readable and
    has the requested setup; returns the file."""
    import vqcore

    path = Path(path)
    file = path / vqcore.CHECKPOINT_NAME if path.is_dir() else path
    if not file.exists():
        where = (
            f"{path}: holds no {vqcore.CHECKPOINT_NAME}" if path.is_dir() else f"{path}: not found"
        )
        raise CLIError(f"{where} (train one with: threedsr-cli train-dada --setup {setup})")
    try:
        with allow_torch_version():
            data = vqcore.read_checkpoint(file)
    except vqcore.VqcoreError:
        raise
    except Exception as exc:  # vqcore 0.1.0 lets e.g. torch's KeyError on a non-torch file out
        raise CLIError(f"{file}: not a readable checkpoint ({type(exc).__name__}: {exc})") from None
    stored = dict(data.get("config", {})).get("setup")
    if stored != setup:
        raise CLIError(
            f"{file}: is a {stored!r} backbone, but --setup {setup} needs a {setup!r} one "
            f"(train it with: threedsr-cli train-dada --setup {setup})"
        )
    if not data.get("complete", True):
        step, total = data.get("step"), data.get("total")
        raise CLIError(
            f"{file}: stage 1 is unfinished (step {step} of {total}); finish it with "
            "threedsr-cli train-dada --resume"
        )
    return file


def pretrained_backbone(setup: str) -> Path:
    """The shipped stage-1 backbone of ``setup``, checksum-verified (vqcore.pretrained)."""
    import vqcore

    return vqcore.pretrained_path(setup)


def load_detector(
    run: Path, device: str, precision: str = "auto", memory_weight: float | None = None
) -> Any:
    """``Detector.load`` of a run folder or ``detector.pt`` with a friendly missing-run message;
    ``precision`` auto | fp32 | bf16 (auto: the Detector's default, bf16 on CUDA only);
    ``memory_weight`` overrides the stored fusion weight (None = keep it)."""
    import threedsr

    run = Path(run)
    if not run.exists():
        raise CLIError(f"{run}: run not found")
    if run.is_dir() and not (run / "detector.pt").is_file():
        raise CLIError(f"{run}: holds no detector.pt (train one with: threedsr-cli train)")
    bf16 = None if precision == "auto" else precision == "bf16"
    return threedsr.Detector.load(
        run, device=resolve_device(device), bf16=bf16, memory_weight=memory_weight
    )


def load_exported(
    run: Path, device: str, precision: str = "auto", memory_weight: float | None = None
) -> Any:
    """An exported ONNX detector on onnxruntime's CPU provider: ``run`` is the ``.onnx`` file or
    a run folder holding ``detector.onnx`` (then its setup and size must be the run's)."""
    import threedsr

    from threedsr_cli.commands.export import EXPORTED_FILE

    if device == "cuda":
        raise CLIError("--backend onnxruntime runs on the CPU; drop --device cuda")
    if precision == "bf16":
        raise CLIError("--backend onnxruntime runs the fp32 export; drop --precision bf16")
    if memory_weight is not None:
        raise CLIError(
            "--memory-weight: an export holds the weight it was exported with; "
            "re-export with: threedsr-cli export --memory-weight W"
        )
    run = Path(run)
    if not run.exists():
        raise CLIError(f"{run}: run not found")
    path = run / EXPORTED_FILE if run.is_dir() else run
    if not path.is_file():
        raise CLIError(
            f"{run}: holds no {EXPORTED_FILE} (write one with: threedsr-cli export --run {run})"
        )
    detector = threedsr.OnnxDetector(path)
    ckpt = run / "detector.pt"
    if run.is_dir() and ckpt.is_file():
        meta = threedsr.read_checkpoint(ckpt)
        size = int(dict(meta.get("preprocess") or {}).get("size", 0))
        detector.check_matches(str(meta.get("setup")), size, str(ckpt))
    return detector
