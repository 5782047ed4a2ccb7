"""Stage-1 samples generated with torch on the training device (the ``device`` sampler).

Torch ports of depthsim's numba/numpy generators: Perlin noise (:mod:`.noise`), the 3DSR depth
simulator (:mod:`.depth`) and procedural colour textures (:mod:`.rgb`), batched and driven by a
``torch.Generator`` so a batch is a pure function of its seed on a given device.
"""

from .depth import (
    TorchDepthParams,
    depth_params_from_numpy,
    render_depth,
    rotate_bilinear,
    sample_depth_params,
    simulate_depth,
)
from .noise import fade, fractal_perlin, perlin_from_gradients, perlin_noise, random_gradients
from .rgb import procedural_rgb, sample_beta

__all__ = [
    "TorchDepthParams",
    "depth_params_from_numpy",
    "fade",
    "fractal_perlin",
    "perlin_from_gradients",
    "perlin_noise",
    "procedural_rgb",
    "random_gradients",
    "render_depth",
    "rotate_bilinear",
    "sample_beta",
    "sample_depth_params",
    "simulate_depth",
]
