"""The device sampler on CUDA (skipped without a GPU; ``tools/gpu_check.sh`` runs it)."""

from __future__ import annotations

import depthsim
import pytest
import torch
from vqcore import DeviceStageOneBatches
from vqcore.procedural import (
    depth_params_from_numpy,
    perlin_from_gradients,
    random_gradients,
    render_depth,
)

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_noise_and_depth_on_cuda_equal_the_cpu_for_the_same_draws():
    gc, gs = random_gradients(4, 16, 16, generator=torch.Generator().manual_seed(0))
    cpu = perlin_from_gradients(gc, gs, (256, 256))
    gpu = perlin_from_gradients(gc.to("cuda"), gs.to("cuda"), (256, 256))
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-6, rtol=0)
    ref, params = depthsim.simulate_depth_batch(8, (256, 256), rng=0, return_params=True)
    got = render_depth(depth_params_from_numpy(params, "cuda"), (256, 256))
    torch.testing.assert_close(got.cpu(), torch.from_numpy(ref), atol=5e-5, rtol=0)


def test_cuda_batches_are_reproducible_and_in_range():
    data = DeviceStageOneBatches("rgbd", image_size=256, batch_size=8, device="cuda")
    a, b = data[3], data[3]
    assert a.device.type == "cuda" and a.shape == (8, 4, 256, 256)
    assert torch.equal(a, b) and not torch.equal(a, data[4])
    assert float(a.min()) >= 0 and float(a.max()) <= 1
