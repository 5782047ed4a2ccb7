"""Reading older ``detector.pt`` / ``train_state.pt`` files: format 2 -> 3, and the fields a
file predates (:func:`threedsr.checkpoint.read_checkpoint` applies both)."""

from __future__ import annotations

from typing import Any

__all__ = ["default_later_fields", "migrate_format_2"]


#: (config section, field) -> the value every file written before the field existed used:
#: ``AnomalyConfig.sampler`` (numpy/numba batches, so a resumed run continues its own random
#: stream) and ``MemoryConfig.modality_fusion`` (the two modalities' distances were summed).
_LATER_FIELDS = {("anomaly", "sampler"): "host", ("memory", "modality_fusion"): "sum"}
#: Top-level ``DetectorConfig`` fields, likewise: ``squash`` (the logistic went on each pixel
#: before the smoothing).
_LATER_TOP_FIELDS = {"squash": "pixels"}


def default_later_fields(ckpt: dict[str, Any]) -> None:
    """A config written before a field existed gets the value it was trained with, not
    today's default."""
    cfg = ckpt.get("detector_config")
    if not isinstance(cfg, dict):
        return
    for (section, field), value in _LATER_FIELDS.items():
        part = cfg.get(section)
        if isinstance(part, dict) and field not in part:
            cfg = {**cfg, section: {**part, field: value}}
    cfg = {**_LATER_TOP_FIELDS, **cfg}
    ckpt["detector_config"] = cfg


def migrate_format_2(ckpt: dict[str, Any]) -> None:
    """Format 2 -> 3 in place: the memory's flat fields become ``memory``, and the method is
    what ``memory_weight`` made the map (0: the network; 1 with descriptors: the memory alone;
    otherwise both fused). Fields added during format 2 get the value every earlier file was
    written with, not today's default."""
    cfg = ckpt.get("detector_config")
    if not isinstance(cfg, dict):
        return  # load_detector_parts reports the inconsistency
    cfg = dict(cfg)
    stored = ckpt.get("memory")
    weight = float(stored["weight"]) if isinstance(stored, dict) else 0.0
    cfg.pop("memory_weight", None)  # now derived from the method
    cfg["memory"] = {
        "features": cfg.pop("memory_features", "encoder"),
        "size": cfg.pop("memory_size", 40_000),
        "scales": cfg.pop("descriptor_scales", (1.0, 2.0, 4.0)),
        "groups": cfg.pop("descriptor_groups", ("surface", "colour")),
        "weights": cfg.pop("descriptor_weights", None),
        "local_k": cfg.pop("memory_local_k", 0),
        "local_min_scans": cfg.pop("memory_local_min_scans", 40),
        "modalities": "joint",
    }
    feats = (stored.get("features") or {}) if isinstance(stored, dict) else {}
    if weight <= 0:
        method = "3dsr"
    elif weight >= 1 and feats.get("kind") == "descriptors":
        method = "memory"
    else:
        method = "fused"
        cfg["fusion_weight"] = min(max(weight, 1e-3), 1 - 1e-3)
    cfg["method"] = method
    cfg.setdefault("precision", "auto")
    if isinstance(cfg.get("model"), dict):
        cfg["model"] = {"objdec_res_skip": "identity", **cfg["model"]}
    ckpt["detector_config"] = cfg
    ckpt["method"] = method
    ckpt["display"] = None
    if isinstance(stored, dict):
        ckpt["heads_calibration"] = stored.get("heads_calibration")
        ckpt["memory_calibration"] = stored.get("memory_calibration")
    # The format this step produces (FORMAT_VERSION today); a format 4 would migrate from it.
    ckpt["format_version"] = 3
