"""Issue 15 item 4: the nested DetectorConfig, its former flat names, and format-1 detector.pt."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
import vqcore
from threedsr import (
    AnomalyConfig,
    Detector,
    DetectorConfig,
    LossConfig,
    ModelConfig,
    PreprocessConfig,
    ThreeDSR,
    ThreedsrError,
    read_checkpoint,
    train_detector,
)
from threedsr.checkpoint import FORMAT_VERSION, atomic_save
from threedsr_testutil import synthetic_class, tiny_backbone, tiny_config

# What the code before the split (format 1) wrote as ``detector_config`` for OVER below: copied
# from a detector.pt it trained (only ``out`` is set per test).
FORMAT1_CONFIG = {
    "setup": "depth",
    "data_root": None,
    "category": "synthetic",
    "backbone": None,
    "out": None,
    "model": {
        "srm_base": 4,
        "objdec_width": 4,
        "objdec_bottleneck": 4,
        "objdec_hidden": 8,
        "objdec_res_hidden": 4,
        "objdec_res_layers": 1,
        "objdec_res_skip": "identity",
        "unet_base": 4,
        "init_std": None,
        "object_decoder": "general_copy",
        "srm_residual": True,
        "srm_levels": 1,
        "unet_input": "general",
    },
    "size": 64,
    "batch_size": 4,
    "iterations": 6,
    "lr": 0.001,
    "milestones": [4],
    "gamma": 0.1,
    "strength_range": [0.1, 1.0],
    "exclude_nearest": 0.05,
    "shuffle_prob": 0.5,
    "modality_split_prob": 0.5,
    "depth_anomaly_prob": 0.5,
    "depth_anomaly_amplitude": [0.02, 0.25],
    "image_anomaly_prob": 0.0,
    "paint_opacity": [0.3, 1.0],
    "memory_weight": 0.0,
    "memory_size": 100000,
    "memory_features": "descriptors",
    "descriptor_scales": [1.0, 2.0, 4.0, 8.0],
    "descriptor_groups": ["surface", "colour", "texture", "interior"],
    "descriptor_weights": [2.0, 1.0, 1.0, 1.0],
    "mask_threshold": [0.4, 0.8],
    "zero_mask_prob": 0.5,
    "rotation_deg": 15.0,
    "rotate_mask_with_image": True,
    "restrict_to_foreground": True,
    "feature_loss": "mse",
    "mask_l1": True,
    "image_loss_weight": 10.0,
    "focal_gamma": 2.0,
    "smoothing": "box",
    "smoothing_size": 11,
    "gaussian_sigma": 4.0,
    "plane": "robust",
    "fg_threshold": 0.005,
    "fill_iterations": 2,
    "device": "cpu",
    "seed": 0,
    "checkpoint_every": 3,
    "resume": True,
    "cache_dir": None,
    "log_every": 1,
    "compile": False,
    "precision": "auto",
}
# The memory fields at their defaults: format-1 files predate them.
OVER = dict(
    category="synthetic",
    memory_weight=0.0,
    depth_anomaly_prob=0.5,
    memory_local_k=0,
    memory_local_min_scans=40,
)


def _as_format1(path, out: str, iterations: int) -> None:
    """Rewrite a detector.pt or train_state.pt the way the code before the split wrote it."""
    ckpt = read_checkpoint(path, kind=torch.load(path, weights_only=True)["kind"])
    flat = {**copy.deepcopy(FORMAT1_CONFIG), "out": out, "iterations": iterations}
    atomic_save({**ckpt, "format_version": 1, "detector_config": flat}, path)


def test_a_format1_dict_migrates_to_the_nested_config() -> None:
    cfg = tiny_config("depth", **OVER)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # files migrate silently
        old = DetectorConfig.from_dict(FORMAT1_CONFIG)
    assert old == cfg
    assert old.preprocess == PreprocessConfig() and old.loss == LossConfig()
    assert old.anomaly.depth_anomaly_prob == 0.5 and old.lr_milestones == (4,)
    new = cfg.to_dict()
    assert {"preprocess", "anomaly", "loss", "image_size", "lr_milestones", "out_dir"} <= set(new)
    assert not {"size", "plane", "strength_range", "focal_gamma", "milestones"} & set(new)
    assert DetectorConfig.from_dict(new) == cfg
    with pytest.raises(ThreedsrError, match=r"DetectorConfig: unknown fields \['zz'\]"):
        DetectorConfig.from_dict({**FORMAT1_CONFIG, "zz": 1})
    with pytest.raises(ThreedsrError, match=r"AnomalyConfig: unknown fields \['zz'\]"):
        DetectorConfig.from_dict({**new, "anomaly": {**new["anomaly"], "zz": 1}})


def test_a_format1_detector_pt_loads_and_resumes(tmp_path) -> None:
    data = synthetic_class("depth")
    full = tiny_config("depth", out=str(tmp_path / "full"), iterations=6, **OVER)
    train_detector(full, backbone=tiny_backbone("depth"), data=data)
    half = full.replace(out_dir=str(tmp_path / "half"), iterations=3)
    train_detector(half, backbone=tiny_backbone("depth"), data=data)
    for name in ("detector.pt", "train_state.pt"):
        _as_format1(tmp_path / "half" / name, str(tmp_path / "half"), 3)
    assert read_checkpoint(tmp_path / "half" / "detector.pt")["format_version"] == 1

    det = Detector.load(tmp_path / "half", device="cpu")
    assert det.config == half and det.filter_size == 11
    assert det.preprocess == half.preprocess_kwargs()
    x = synthetic_class("depth", n=2, seed=4).x
    again = Detector(det.model, half, path=det.path, preprocess=det.preprocess)
    assert torch.equal(det.predict(x).maps, again.predict(x).maps)

    resumed = train_detector(half.replace(iterations=6), backbone=tiny_backbone("depth"), data=data)
    assert resumed.step == 6
    ckpt = read_checkpoint(resumed.path)
    assert ckpt["format_version"] == FORMAT_VERSION == 2 and "anomaly" in ckpt["detector_config"]
    a = read_checkpoint(tmp_path / "full" / "detector.pt")["heads_state"]
    for mod in a:
        for k in a[mod]:
            torch.testing.assert_close(a[mod][k], ckpt["heads_state"][mod][k], rtol=0, atol=1e-6)


def test_former_flat_names_still_work_with_a_warning() -> None:
    with pytest.warns(DeprecationWarning, match="'size' is deprecated, use 'image_size'"):
        cfg = DetectorConfig(size=64, out="run", milestones=(5,), gamma=0.5)
    assert (cfg.image_size, cfg.out_dir, cfg.lr_milestones, cfg.lr_gamma) == (64, "run", (5,), 0.5)
    with pytest.warns(DeprecationWarning, match="'plane' is deprecated, use 'preprocess.plane'"):
        cfg = DetectorConfig(plane="none", strength_range=(0.2, 0.4), focal_gamma=3.0)
    assert cfg.preprocess.plane == "none" and cfg.anomaly.strength_range == (0.2, 0.4)
    assert cfg.loss.focal_gamma == 3.0
    with pytest.warns(DeprecationWarning, match=r"DetectorConfig\.rotation_deg is deprecated"):
        assert cfg.rotation_deg == 15.0
    with pytest.warns(DeprecationWarning):
        assert (cfg.size, cfg.plane, cfg.milestones) == (384, "none", (24_000,))
    with pytest.warns(DeprecationWarning, match="out_dir"):
        assert str(DetectorConfig(out_dir="r").out_dir()) == "r"
    with pytest.warns(DeprecationWarning):
        changed = cfg.replace(plane="robust", size=96)
    assert changed.preprocess.plane == "robust" and changed.image_size == 96
    assert changed.anomaly.strength_range == (0.2, 0.4)
    with pytest.raises(ThreedsrError, match="give 'size' or 'image_size', not both"):
        DetectorConfig(size=64, image_size=64)
    with pytest.warns(DeprecationWarning, match="preprocess_kwargs"):
        from threedsr.dsr.train import preprocess_params

        assert preprocess_params(cfg) == cfg.preprocess_kwargs()


def test_preset_takes_the_parts_fields_as_plain_overrides() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cfg = DetectorConfig.preset(
            "cpu", "rgbd", plane="none", rotation_deg=0.0, mask_l1=False, unet_base=2, lr=None
        )
    assert cfg.preprocess.plane == "none" and cfg.anomaly.rotation_deg == 0.0
    assert not cfg.loss.mask_l1 and cfg.model.unet_base == 2 and cfg.lr == 1e-3
    assert cfg.anomaly.modality_split_prob == 0.5  # the rest of the preset's part stays
    # A renamed field in a preset warns; the milestone follows the length (80 %).
    with pytest.warns(DeprecationWarning, match="image_size"):
        cfg = DetectorConfig.preset("cpu", "depth", size=128, iterations=50)
    assert cfg.image_size == 128 and cfg.lr_milestones == (40,) == vqcore.milestones_at(50)
    anomaly = AnomalyConfig(rotation_deg=5.0)
    cfg = DetectorConfig.preset("paper", "rgb", anomaly=anomaly, model=ModelConfig.cpu())
    assert cfg.anomaly == anomaly and cfg.model == ModelConfig.cpu()
    assert DetectorConfig(anomaly={"rotation_deg": 5.0}).anomaly == anomaly


def test_one_setup_list_and_one_milestone_rule() -> None:
    import threedsr.config

    assert threedsr.config.SETUPS is vqcore.SETUPS and threedsr.config.Setup is vqcore.Setup
    stage1 = vqcore.StageOneConfig.preset("cpu", "depth", iterations=50)
    assert stage1.lr_milestones == vqcore.milestones_at(50, 0.8, 0.9) == (40, 45)
    for cls in (DetectorConfig, ModelConfig, vqcore.BackboneConfig, vqcore.StageOneConfig):
        assert issubclass(cls, vqcore.ConfigMixin)


def test_detector_smoothing_options_default_to_the_config() -> None:
    cfg = tiny_config("depth", smoothing="gaussian", gaussian_sigma=2.0)
    net = ThreeDSR(tiny_backbone("depth"), cfg.model)
    det = Detector(net, cfg)
    assert (det.smoothing, det.filter_size, det.gaussian_sigma) == ("gaussian", 11, 2.0)
    mine = Detector(net, cfg, smoothing="box", filter_size=5, gaussian_sigma=1.0)
    assert (mine.smoothing, mine.filter_size, mine.gaussian_sigma) == ("box", 5, 1.0)
    x = synthetic_class("depth", n=1, seed=2).x
    narrow = Detector(net, cfg, gaussian_sigma=1.0).predict(x)
    assert not torch.equal(narrow.maps, det.predict(x).maps)
    assert torch.equal(narrow.raw_maps, det.predict(x).raw_maps)
