"""The checkpoint of a stage-1 run: what ``backbone.pt`` stores to continue exactly, and resuming
from it only when it holds the same backbone (stage 2's counterpart: ``threedsr.dsr.resume``)."""

from __future__ import annotations

from typing import Any

import torch

from .autoencoder import DiscreteAutoencoder
from .checkpoint import read_checkpoint
from .device_data import resolve_sampler
from .errors import VqcoreError
from .train_config import StageOneConfig

__all__ = ["checkpoint_payload", "existing_state", "run_sampler", "set_rng_state"]


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = [s for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the RNG state of :func:`checkpoint_payload`'s ``"rng"``."""
    if "torch" in state:
        torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        cuda = [s.cpu() for s in state["cuda"]]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


def _version() -> str:
    from . import __version__

    return __version__


def existing_state(config: StageOneConfig) -> dict[str, Any] | None:
    """The checkpoint to resume from (``None``: start afresh); a run that would overwrite one
    without ``resume``/``overwrite``, or resume another backbone, is a :class:`VqcoreError`."""
    path = config.checkpoint_path
    if not path.exists():
        return None
    if not config.resume:
        if config.overwrite:
            return None
        raise VqcoreError(
            f"{path}: a checkpoint already exists; resume to continue it or overwrite to replace it"
        )
    state = read_checkpoint(path, map_location="cpu")
    assert config.backbone is not None
    # The distance form is arithmetic, like the precision: a run may continue in another
    # (a checkpoint written before the field existed has none).
    expected = config.backbone.to_dict()
    stored = {**dict(state["config"]), "vq_distance": expected["vq_distance"]}
    if stored != expected:
        diff = sorted(k for k in set(stored) | set(expected) if stored.get(k) != expected.get(k))
        raise VqcoreError(
            f"{path}: cannot resume, the checkpoint's backbone differs in {diff} "
            f"(it is a {stored.get('setup')!r} model)"
        )
    for key in ("optimizer", "scheduler", "step"):
        if key not in state:
            raise VqcoreError(f"{path}: cannot resume, the checkpoint has no {key!r} state")
    return state


def run_sampler(config: StageOneConfig, device: torch.device, state: dict[str, Any] | None) -> str:
    """``auto`` resumes with the checkpoint's sampler (``host`` before the option existed),
    so a resumed run sees the batches of an uninterrupted one; an explicit choice wins."""
    if config.sampler == "auto" and state is not None:
        return str(state.get("train_config", {}).get("sampler", "host"))
    return resolve_sampler(
        config.sampler, device, rgb_dir=config.rgb_dir, depth_source=config.depth_source
    )


def checkpoint_payload(
    config: StageOneConfig,
    model: DiscreteAutoencoder,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    *,
    step: int,
    sampler: str,
    history: list[dict[str, float]],
    curve: list[dict[str, float]],
) -> dict[str, Any]:
    """Everything needed to rebuild the model and continue training exactly."""
    assert config.backbone is not None
    return {
        "config": config.backbone.to_dict(),
        "setup": config.setup,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "step": step,
        "total": config.iterations,
        "complete": step >= config.iterations,
        "train_config": config.to_dict() | {"sampler": sampler},
        "rng": _rng_state(),
        "metrics": dict(history[-1]) if history else {},
        "curve": [dict(p) for p in curve],
        "versions": {"vqcore": _version(), "torch": str(torch.__version__)},
    }
