"""What every ``gpu_check`` measurement shares: the sizes (real or dry run), the paper-preset
configs at those sizes, random-weight models, device syncs, peak memory and FLOP bookkeeping."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import vqcore
from flops import count_flops, fraction_of_peak
from threedsr import DetectorConfig, ThreeDSR

SETUPS = ("rgbd", "depth", "rgb")
PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class Sizes:
    """Everything the dry run shrinks."""

    device: str
    size: int  # inference side
    images: int  # images per timed pass
    batches: tuple[int, ...]
    repeats: int
    stage1_steps: int
    stage2_steps: int
    stage1_size: int
    stage1_batch: int
    stage2_size: int
    stage2_batch: int
    tiny: bool


REAL = Sizes("cuda", 384, 16, (1, 8), 3, 30, 30, 256, 64, 384, 16, tiny=False)
DRY = Sizes("cpu", 64, 2, (1, 2), 1, 2, 2, 16, 2, 64, 2, tiny=True)

# Dry-run widths: the paper architecture (reference object decoder, relu skip) at toy widths.
TINY_BACKBONE = dict(hidden=16, res_hidden=8, num_res_layers=1, num_embeddings=32, embedding_dim=8)
TINY_HEADS = dict(
    srm_base=4, objdec_width=4, objdec_bottleneck=4, objdec_hidden=8, objdec_res_hidden=4
)


def backbone_config(setup: str, sz: Sizes) -> vqcore.BackboneConfig:
    if sz.tiny:
        return vqcore.BackboneConfig.cpu(setup, **TINY_BACKBONE)
    return vqcore.BackboneConfig.paper(setup)


def detector_config(setup: str, sz: Sizes, **over: Any) -> DetectorConfig:
    """The paper preset of the 3DSR network alone: the figures measure 3DSR itself."""
    # Detector.predict takes its config's image_size only: the inference side by default.
    over = {"image_size": sz.size, **over}
    return DetectorConfig.preset(
        "paper", setup=setup, method="3dsr", **(TINY_HEADS if sz.tiny else {}), **over
    )


def build_model(setup: str, sz: Sizes, seed: int = 0) -> tuple[ThreeDSR, DetectorConfig]:
    """Random paper-preset weights (the same for every path of one setup)."""
    torch.manual_seed(seed)
    cfg = detector_config(setup, sz)
    bb = vqcore.build_backbone(backbone_config(setup, sz)).eval()
    return ThreeDSR(bb, cfg.model).eval(), cfg


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_reset(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)


def peak_gib(dev: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else None


#: FLOPs of one step (training) or one image (inference) by (stage, setup): the count does not
#: depend on the precision or the sampler, so each is taken once.
_FLOPS: dict[tuple[str, str], float] = {}


def flops_once(stage: str, setup: str, work: Callable[[], Any], per: int = 1) -> float:
    """FLOPs of ``work()`` divided by ``per``, counted on the first call for (stage, setup)."""
    if (stage, setup) not in _FLOPS:
        _FLOPS[stage, setup] = count_flops(work) / per
    return _FLOPS[stage, setup]


def with_flops(row: dict[str, Any], flops: float, rate: float, dev: torch.device) -> dict:
    """``row`` with the achieved TFLOP/s and the fraction of the device's dense peak."""
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    return {
        **row,
        "tflops": flops * rate / 1e12,
        "peak_frac": fraction_of_peak(flops, rate, name, row["precision"]),
    }


def fmt_flops(r: dict[str, Any]) -> str:
    frac = "-" if r.get("peak_frac") is None else f"{100 * r['peak_frac']:.1f} %"
    return f"{r.get('tflops', float('nan')):.2f} | {frac}"
