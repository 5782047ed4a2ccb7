"""The object decoder's residual skip (issue 13): the reference's in-place ReLU computes
``relu(x) + block(x)``; ``paper`` computes that, ``cpu`` and pre-issue-13 checkpoints keep
``x + block(x)``."""

from __future__ import annotations

import pytest
import torch
from threedsr import Detector, ModelConfig, ThreeDSR
from threedsr.checkpoint import atomic_save, detector_payload
from threedsr.dsr.modules.blocks import ResidualBlock, ResidualStack
from threedsr_testutil import synthetic_class, tiny_backbone, tiny_config
from torch import nn


def _pinned_block(skip: str) -> ResidualBlock:
    """channels 2, hidden 1: conv3x3 only reads the centre tap, so the block is a 2x1x2 map."""
    block = ResidualBlock(2, 1, skip=skip)
    with torch.no_grad():
        block.block[1].weight.zero_()
        block.block[1].weight[0, :, 1, 1] = torch.tensor([1.0, -1.0])  # h = relu(x0) - relu(x1)
        block.block[3].weight[:, 0, 0, 0] = torch.tensor([0.5, 2.0])  # y = (0.5 h, 2 h) after relu
    return block


@pytest.mark.parametrize(
    ("skip", "expected"),
    [
        # per pixel: h = relu(relu(x0) - relu(x1)), block = (0.5 h, 2 h)
        # (-3, -1): h = 0;  (1, -2): h = 1;  (2, 1): h = 1
        ("relu", [[0.0, 0.0], [1.5, 2.0], [2.5, 3.0]]),  # relu(x) + block
        ("identity", [[-3.0, -1.0], [1.5, 0.0], [2.5, 3.0]]),  # x + block
    ],
)
def test_residual_block_formula_pinned(skip: str, expected: list[list[float]]) -> None:
    x = torch.tensor([[-3.0, -1.0], [1.0, -2.0], [2.0, 1.0]]).T.reshape(1, 2, 1, 3)
    out = _pinned_block(skip)(x)
    assert out.reshape(2, 3).T.tolist() == expected
    assert x.min() == -3.0  # the input is not modified in place


class _ReferenceResidual(nn.Module):
    """The reference's ``dsr_model.Residual`` pattern: in-place ReLU first, then ``x + block``."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self._block = nn.Sequential(
            nn.ReLU(True),
            nn.Conv2d(channels, hidden, 3, padding=1, bias=False),
            nn.ReLU(True),
            nn.Conv2d(hidden, channels, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self._block(x)


class _ReferenceStack(nn.Module):
    def __init__(self, channels: int, hidden: int, layers: int) -> None:
        super().__init__()
        self._layers = nn.ModuleList(_ReferenceResidual(channels, hidden) for _ in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self._layers:
            x = layer(x)
        return torch.relu(x)


def _stack_and_reference(skip: str) -> tuple[ResidualStack, _ReferenceStack]:
    torch.manual_seed(0)
    ours = ResidualStack(6, 4, 2, skip=skip).double()
    ref = _ReferenceStack(6, 4, 2).double()
    with torch.no_grad():
        for a, b in zip(ours.layers, ref._layers, strict=True):
            b._block[1].weight.copy_(a.block[1].weight)
            b._block[3].weight.copy_(a.block[3].weight)
    return ours, ref


def _run(stack: nn.Module, x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    leaf = x0.clone().requires_grad_(True)
    # The reference's input is a conv output, never a leaf: in-place ReLU needs a non-leaf.
    out = stack(leaf * 1.0)
    (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
    assert leaf.grad is not None
    return out.detach(), leaf.grad


def test_relu_skip_equals_the_reference_in_place_stack_with_gradients() -> None:
    x0 = torch.randn(2, 6, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ours, ref = _stack_and_reference("relu")
    out, grad = _run(ours, x0)
    ref_out, ref_grad = _run(ref, x0)
    torch.testing.assert_close(out, ref_out, rtol=0, atol=1e-12)
    torch.testing.assert_close(grad, ref_grad, rtol=0, atol=1e-12)
    for a, b in zip(ours.layers, ref._layers, strict=True):
        torch.testing.assert_close(a.block[1].weight.grad, b._block[1].weight.grad)
    # and the textbook form is measurably different on the same weights
    ident, _ = _stack_and_reference("identity")
    assert (_run(ident, x0)[0] - ref_out).abs().max() > 1e-3


def test_presets_and_model_wiring() -> None:
    assert ModelConfig.paper().objdec_res_skip == "relu"
    assert ModelConfig.cpu().objdec_res_skip == "identity"
    with pytest.raises(Exception, match="objdec_res_skip must be"):
        ModelConfig(objdec_res_skip="inplace")  # type: ignore[arg-type]
    cfg = tiny_config("rgbd", object_decoder="reference", objdec_res_skip="relu").model
    model = ThreeDSR(tiny_backbone("rgbd"), cfg)
    skips = {m.skip for m in model.object_decoder.modules() if isinstance(m, ResidualBlock)}
    assert skips == {"relu"}


def _save(tmp_path, skip: str) -> tuple[Detector, ThreeDSR]:
    """A detector.pt with fixed random heads, loaded back, and the network it was written from."""
    torch.manual_seed(3)
    cfg = tiny_config("rgbd", object_decoder="reference", objdec_res_skip=skip)
    model = ThreeDSR(tiny_backbone("rgbd"), cfg.model).eval()
    payload = detector_payload(cfg, network=model, step=6, finished=True)
    path = tmp_path / f"{skip}.pt"
    atomic_save(payload, path)
    return Detector.load(path, device="cpu"), model


def test_the_checkpoint_keeps_the_skip_and_the_skip_changes_the_map(tmp_path) -> None:
    x = synthetic_class("rgbd", n=2, seed=4).x
    identity, model = _save(tmp_path, "identity")
    relu, _ = _save(tmp_path, "relu")
    assert identity.config.model.objdec_res_skip == "identity"
    assert relu.config.model.objdec_res_skip == "relu"
    maps = [d.predict(x).raw_maps for d in (identity, relu)]
    with torch.no_grad():
        torch.testing.assert_close(maps[0], model(x).anomaly_map, rtol=0, atol=1e-5)
    # same weights, other skip: the maps move, so loading a file with the wrong skip would show
    assert not torch.allclose(maps[0], maps[1], atol=1e-7)


def test_detector_with_the_older_block_layout_loads(tmp_path) -> None:
    """Issue 15: the object decoder's blocks are vqcore's (``conv3``/``conv1``); a detector.pt
    written before stores them as ``block.1``/``block.3`` and must load to the same maps."""
    x = synthetic_class("rgbd", n=2, seed=4).x
    torch.manual_seed(3)
    cfg = tiny_config("rgbd", object_decoder="reference", objdec_res_skip="relu")
    model = ThreeDSR(tiny_backbone("rgbd"), cfg.model)
    payload = detector_payload(cfg, network=model, step=6, finished=True)
    atomic_save(payload, tmp_path / "new.pt")
    old = {"conv3.": "block.1.", "conv1.": "block.3."}
    heads = payload["heads_state"]["object_decoder"]
    renamed = {}
    for key, value in heads.items():
        for new_name, old_name in old.items():
            key = key.replace(f".{new_name}", f".{old_name}")
        renamed[key] = value
    assert renamed.keys() != heads.keys() and any(".block.1." in k for k in renamed)
    payload["heads_state"]["object_decoder"] = renamed
    atomic_save(payload, tmp_path / "old.pt")
    new = Detector.load(tmp_path / "new.pt", device="cpu")
    older = Detector.load(tmp_path / "old.pt", device="cpu")
    assert torch.equal(new.predict(x).raw_maps, older.predict(x).raw_maps)
