"""The nested DetectorConfig: its parts (network and memory), the method, the presets."""

from __future__ import annotations

import warnings

import pytest
import torch
import vqcore
from threedsr import (
    AnomalyConfig,
    Detector,
    DetectorConfig,
    LossConfig,
    MemoryConfig,
    ModelConfig,
    PreprocessConfig,
    ThreeDSR,
    ThreedsrError,
)
from threedsr_testutil import synthetic_class, tiny_backbone, tiny_config


def test_the_config_dict_is_nested_and_round_trips() -> None:
    cfg = tiny_config("depth", category="synthetic", depth_anomaly_prob=0.5, local_k=0)
    assert cfg.preprocess == PreprocessConfig() and cfg.loss == LossConfig()
    assert cfg.anomaly.depth_anomaly_prob == 0.5 and cfg.anomaly.image_anomaly_prob == 0.0
    assert cfg.memory.local_k == 0 and cfg.lr_milestones == (4,)
    new = cfg.to_dict()
    assert {
        "method",
        "fusion_weight",
        "preprocess",
        "anomaly",
        "loss",
        "memory",
        "image_size",
        "lr_milestones",
        "out_dir",
    } <= set(new)
    # The memory's fields live in its part only; the memory's weight is not a field.
    assert not {"memory_size", "memory_weight", "descriptor_scales", "memory_local_k"} & set(new)
    assert new["memory"]["local_k"] == 0
    assert DetectorConfig.from_dict(new) == cfg
    with pytest.raises(ThreedsrError, match=r"DetectorConfig: unknown fields \['zz'\]"):
        DetectorConfig.from_dict({**new, "zz": 1})
    with pytest.raises(ThreedsrError, match=r"AnomalyConfig: unknown fields \['zz'\]"):
        DetectorConfig.from_dict({**new, "anomaly": {**new["anomaly"], "zz": 1}})
    with pytest.raises(ThreedsrError, match=r"MemoryConfig: unknown fields \['zz'\]"):
        DetectorConfig.from_dict({**new, "memory": {**new["memory"], "zz": 1}})


def test_method_presets_and_the_memory_weight() -> None:
    mem = DetectorConfig.preset("memory", "depth")
    assert mem == DetectorConfig.for_memory("depth")
    assert (mem.method, mem.image_size, mem.smoothing_size) == ("memory", 256, 11)
    assert mem.memory == MemoryConfig.for_setup("depth") and not mem.uses_network
    assert DetectorConfig.for_memory("rgb").memory.features == "encoder"
    for name in ("paper", "gpu", "cpu"):
        net = DetectorConfig.preset(name, "rgbd")
        assert net.method == "3dsr" and net.uses_network and not net.uses_memory
        fused = DetectorConfig.preset(name, "rgbd", method="fused", fusion_weight=0.4)
        assert fused.method == "fused" and fused.uses_network and fused.uses_memory
    # The memory's share of the map follows from the method; it is not a setting of its own.
    assert (mem.memory_weight, net.memory_weight, fused.memory_weight) == (1.0, 0.0, 0.4)
    with pytest.raises(ThreedsrError, match="the memory preset is the memory method"):
        DetectorConfig.preset("memory", "rgbd", method="3dsr")
    with pytest.raises(ThreedsrError, match="unknown detector preset 'for_memory'"):
        DetectorConfig.preset("for_memory", "rgbd")
    with pytest.raises(ThreedsrError, match="method must be one of"):
        DetectorConfig(method="both")  # type: ignore[arg-type]
    for bad in (0.0, 1.0):
        with pytest.raises(ThreedsrError, match="fusion_weight must be in"):
            DetectorConfig(method="fused", fusion_weight=bad)


def test_preset_takes_the_parts_fields_as_plain_overrides() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cfg = DetectorConfig.preset(
            "cpu", "rgbd", plane="corners", rotation_deg=0.0, mask_l1=False, unet_base=2, lr=None
        )
    assert cfg.preprocess.plane == "corners" and cfg.anomaly.rotation_deg == 0.0
    assert not cfg.loss.mask_l1 and cfg.model.unet_base == 2 and cfg.lr == 1e-3
    assert cfg.anomaly.modality_split_prob == 0.5  # the rest of the preset's part stays
    # The memory's fields too (``size`` is the memory's: the model side is ``image_size``); the
    # milestone follows the length (80 %).
    cfg = DetectorConfig.preset("cpu", "depth", image_size=128, size=500, local_k=0, iterations=50)
    assert cfg.image_size == 128 and cfg.lr_milestones == (40,) == vqcore.milestones_at(50)
    assert (cfg.memory.size, cfg.memory.local_k) == (500, 0)
    assert cfg.memory.scales == MemoryConfig.for_setup("depth").scales
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
    det = Detector(cfg, network=net)
    assert (det.smoothing, det.filter_size, det.gaussian_sigma) == ("gaussian", 11, 2.0)
    mine = Detector(cfg, network=net, smoothing="box", filter_size=5, gaussian_sigma=1.0)
    assert (mine.smoothing, mine.filter_size, mine.gaussian_sigma) == ("box", 5, 1.0)
    x = synthetic_class("depth", n=1, seed=2).x
    narrow = Detector(cfg, network=net, gaussian_sigma=1.0).predict(x)
    assert not torch.equal(narrow.maps, det.predict(x).maps)
    assert torch.equal(narrow.raw_maps, det.predict(x).raw_maps)


def test_border_objects_are_dropped_by_default_for_eyecandies_only(tmp_path) -> None:
    (tmp_path / "eye" / "CandyCane" / "train" / "data").mkdir(parents=True)
    (tmp_path / "mvtec" / "puck" / "train" / "good" / "xyz").mkdir(parents=True)

    def drop(root: str | None, **overrides) -> bool:
        cfg = DetectorConfig.for_memory("rgbd", data_root=root, **overrides)
        return cfg.preprocess_kwargs()["drop_border_objects"]

    assert drop(str(tmp_path / "eye")) is True
    assert drop(str(tmp_path / "mvtec")) is False
    assert drop(None) is False and drop(str(tmp_path / "missing")) is False
    assert drop(str(tmp_path / "eye"), drop_border_objects=False) is False
    assert drop(str(tmp_path / "mvtec"), drop_border_objects=True) is True


def test_gpu_preset_is_the_paper_network_on_a_short_schedule() -> None:
    paper, gpu = DetectorConfig.preset("paper", "rgbd"), DetectorConfig.preset("gpu", "rgbd")
    # The paper's network, anomalies, losses and optimizer; only length, side and arithmetic
    # differ.
    assert gpu.model == paper.model.replace(vq_distance="fast")
    assert (gpu.anomaly, gpu.loss) == (paper.anomaly, paper.loss)
    assert (gpu.lr, gpu.batch_size, gpu.lr_gamma) == (paper.lr, paper.batch_size, paper.lr_gamma)
    assert (gpu.iterations, gpu.lr_milestones, gpu.image_size) == (7_000, (5_600,), 256)
    assert gpu.precision == "auto" and paper.precision == "fp32"
    assert DetectorConfig.preset("gpu", "rgb").image_size == 128
    assert DetectorConfig.preset("gpu", "depth", iterations=1000).lr_milestones == (800,)
