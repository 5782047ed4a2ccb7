"""Lazy bridges to the libraries: device, categories, checkpoints (imported inside commands)."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from threedsr_cli.errors import CLIError
from threedsr_cli.path_checks import check_data_root

if TYPE_CHECKING:
    import torch
    from threedsr import Detector, OnnxDetector

__all__ = [
    "TRAIN_BYTES_PER_PIXEL",
    "allow_torch_version",
    "available_memory",
    "check_backbone",
    "check_batch_memory",
    "check_category",
    "load_detector",
    "load_exported",
    "resolve_device",
    "seed_everything",
    "warn",
    "warn_unfinished",
]


@contextmanager
def allow_torch_version() -> Iterator[None]:
    """Let ``torch.load(weights_only=True)`` read the ``TorchVersion`` (a ``str`` subclass) that
    vqcore 0.1.0 stores in ``backbone.pt``. vqcore's own loads allow it already
    (``vqcore.checkpoint.safe_torch_load``); kept for callers of ``torch.load`` itself."""
    import torch

    with torch.serialization.safe_globals([torch.torch_version.TorchVersion]):
        yield


#: A lower bound of the training memory per input pixel of one batch sample (activations,
#: gradients, the optimiser's copies): stage 1 at 64 px measured ~800 bytes (maxrss of batch 256
#: minus batch 2, CPU); half of it, so that only batches that cannot fit are refused.
TRAIN_BYTES_PER_PIXEL = 400


def available_memory(device: torch.device | str) -> int | None:
    """Free bytes on ``device``: CUDA's free memory, or the host's MemAvailable; None if unknown."""
    if getattr(device, "type", str(device)) == "cuda":
        try:
            import torch

            return int(torch.cuda.mem_get_info(device)[0])
        except Exception:
            return None
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def check_batch_memory(batch_size: int, side: int, device: torch.device | str, option: str) -> None:
    """Refuse, before any work, a batch whose training memory cannot fit on ``device``.

    Raises:
        CLIError: the lower-bound estimate exceeds the free memory (names the option and the
            largest batch that could fit).
    """
    need = batch_size * side * side * TRAIN_BYTES_PER_PIXEL
    free = available_memory(device)
    if free is None or need <= free:
        return
    fits = max(1, free // (side * side * TRAIN_BYTES_PER_PIXEL))
    gib = 1024**3
    raise CLIError(
        f"{option} {batch_size}: training at {side} px needs at least {need / gib:.1f} GiB, "
        f"but only {free / gib:.1f} GiB are free on {device}; use {option} {fits} or less"
    )


def resolve_device(name: str) -> torch.device:
    """``auto``/``cpu``/``cuda`` -> ``torch.device`` (a missing CUDA is bad input)."""
    import vqcore

    return vqcore.resolve_device(name)


def seed_everything(seed: int) -> None:
    import torch

    # The libraries draw from Generators built from explicit seeds; these cover stray global use.
    random.seed(seed)
    torch.manual_seed(seed)


def check_category(root: Path, category: str | None) -> str:
    """``category`` must be one of the dataset's classes (the message lists the known ones); a
    pack (``threedsr-cli pack``) holds one class, which ``None`` stands for."""
    import pcprep

    from threedsr_cli.commands.pack import open_pack

    pack = open_pack(root)
    if pack is not None:
        if category is not None and category != pack.category:
            raise CLIError(f"{root}: the pack holds class {pack.category!r}, not {category!r}")
        if pack.rgb != "exact":
            warn(f"{root}: the pack's colour is rounded to 8 bits (--rgb {pack.rgb}); results "
                 "differ slightly from those on the dataset folder")  # fmt: skip
        return pack.category
    if root.is_file():
        raise CLIError(f"{root}: not a folder, nor a pack (threedsr-cli pack makes one)")
    check_data_root(root)
    index = pcprep.DatasetIndex(root)
    known = index.categories()
    if category not in known or index.layout == "generic":
        # A class folder of MVTec 3D-AD or Eyecandies reads as own scans whose classes are the
        # splits: only its parent says what it is.
        _refuse_a_class_folder(root, category_found=category in known)
    if category is None:
        raise CLIError(f"{root}: --category is required with a dataset folder")
    if not known:
        raise CLIError(f"{root}: holds no dataset (no class folders with train/test samples)")
    if category not in known:
        raise CLIError(f"{root}: unknown category {category!r} (known: {', '.join(known)})")
    return category


def _refuse_a_class_folder(root: Path, category_found: bool) -> None:
    """``--data`` names one class's folder (``.../CandyCane``) where the dataset's root belongs:
    say which command line works instead of listing the class's splits as categories. Own scans
    nest freely, so under a parent of the generic layout only a failed ``--category`` refuses."""
    import pcprep

    parent = pcprep.enclosing_dataset(root)
    if parent is not None and (parent.layout != "generic" or not category_found):
        raise CLIError(
            f"{root}: a class folder; --data takes the dataset's root: "
            f"--data {root.parent} --category {root.name}"
        )


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
        info = vqcore.checkpoint_info(file)
    except vqcore.VqcoreError:
        raise
    except Exception as exc:  # vqcore 0.1.0 lets e.g. torch's KeyError on a non-torch file out
        raise CLIError(f"{file}: not a readable checkpoint ({type(exc).__name__}: {exc})") from None
    if info.setup != setup:
        raise CLIError(
            f"{file}: is a {info.setup!r} backbone, but --setup {setup} needs a {setup!r} one "
            f"(train it with: threedsr-cli train-dada --setup {setup})"
        )
    if not info.complete:
        raise CLIError(
            f"{file}: stage 1 is unfinished (step {info.step} of {info.total}); finish it with "
            "threedsr-cli train-dada --resume"
        )
    return file


def pretrained_backbone(setup: str) -> Path:
    """The shipped stage-1 backbone of ``setup``, checksum-verified (vqcore.pretrained)."""
    import vqcore

    return vqcore.pretrained_path(setup)


def _is_export(path: Path) -> bool:
    """An ``.onnx`` file, or any file with an export sidecar next to it."""
    return path.is_file() and (
        path.suffix.lower() == ".onnx" or path.with_name(path.name + ".json").is_file()
    )


def load_detector(
    run: Path,
    device: str,
    precision: str = "auto",
    method: str | None = None,
    *,
    batch_size: int | None = None,
    command: str = "predict",
) -> Detector:
    """``Detector.load`` of a run folder or ``detector.pt`` with a friendly missing-run message;
    ``precision`` auto | fp32 | tf32 | bf16 (auto: the Detector's default, bf16 on CUDA only);
    ``method`` runs another method a fused detector holds (None = its own); ``batch_size``
    images per forward pass (None: the Detector's default). ``command`` says, for an exported
    file given as ``--run``, what to do instead."""
    import threedsr

    run = Path(run)
    if not run.exists():
        raise CLIError(f"{run}: run not found")
    if run.is_dir() and not (run / "detector.pt").is_file():
        raise CLIError(f"{run}: holds no detector.pt (train one with: threedsr-cli train)")
    if _is_export(run):
        what = "an ONNX export" if run.suffix.lower() == ".onnx" else "an exported model"
        if command == "predict" and run.suffix.lower() == ".onnx":
            raise CLIError(f"--run {run}: {what}; pass --backend onnxruntime to run it")
        raise CLIError(f"--run {run}: {what}; {command} reads the run folder or its detector.pt")
    return threedsr.Detector.load(
        run,
        device=resolve_device(device),
        precision=precision,
        method=method,
        batch_size=batch_size,
    )


def load_exported(
    run: Path, device: str, precision: str = "auto", method: str | None = None
) -> OnnxDetector:
    """An exported ONNX detector on onnxruntime's CPU provider: ``run`` is the ``.onnx`` file or
    a run folder holding ``detector.onnx`` (then its setup and size must be the run's)."""
    import threedsr

    from threedsr_cli.commands.export import EXPORTED_FILE

    if device == "cuda":
        raise CLIError("--backend onnxruntime runs on the CPU; drop --device cuda")
    if precision == "bf16":
        raise CLIError("--backend onnxruntime runs the fp32 export; drop --precision bf16")
    if method is not None:
        raise CLIError(
            "--method: an export holds the method it was exported with; "
            "re-export with: threedsr-cli export --method M"
        )
    run = Path(run)
    if not run.exists():
        raise CLIError(f"{run}: run not found")
    path = run / EXPORTED_FILE if run.is_dir() else run
    if not path.is_file():
        raise CLIError(
            f"{run}: holds no {EXPORTED_FILE} (write one with: threedsr-cli export --run {run})"
        )
    if not run.is_dir() and not _is_export(path) and _is_torch_file(path):
        raise CLIError(
            f"--backend onnxruntime: {run} is a PyTorch checkpoint, not an export; drop "
            "--backend to run it with torch (or export it: threedsr-cli export --run ...)"
        )
    detector = threedsr.OnnxDetector(path)
    ckpt = run / "detector.pt"
    if run.is_dir() and ckpt.is_file():
        from threedsr.export_sidecar import file_digest

        # absent from sidecars written before it was recorded: those are checked by shape only
        made_from = detector.meta.get("source_sha256")
        if made_from is not None and made_from != file_digest(ckpt):
            raise CLIError(
                f"{path}: exported from an earlier {ckpt} (the run was trained again since); "
                f"re-export it: threedsr-cli export --run {run} --overwrite"
            )
        meta = threedsr.read_checkpoint(ckpt)
        size = int(dict(meta.get("preprocess") or {}).get("size", 0))
        detector.check_matches(str(meta.get("setup")), size, str(ckpt))
    return detector


def _is_torch_file(path: Path) -> bool:
    """A ``.pt`` / ``.pth`` name, or torch's zip (``PK``) or legacy pickle header."""
    if path.suffix.lower() in (".pt", ".pth"):
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(2)
    except OSError:
        return False
    return head in (b"PK", b"\x80\x02")


def warn(message: str) -> None:
    """One ``warning:`` line on stderr, also under ``--quiet`` (results may be wrong)."""
    import sys

    sys.stderr.write(f"warning: {message}\n")
    sys.stderr.flush()


def warn_unfinished(detector: Detector | OnnxDetector) -> bool:
    """Warn when ``detector`` comes from an interrupted (unfinished) training; True if so."""
    state = getattr(detector, "training_state", None) or {}
    if state.get("finished", True):
        return False
    warn(
        f"{detector.path}: the detector is unfinished (training stopped at step "
        f"{state.get('step')} of {state.get('total')}); its results are those of a half-trained "
        "model. Finish it with: threedsr-cli train ... --resume"
    )
    return True
