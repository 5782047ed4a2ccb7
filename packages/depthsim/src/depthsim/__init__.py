"""depthsim: fast numba Perlin noise, the 3DSR depth simulator, anomaly masks, procedural
colour textures and synthetic MVTec 3D-AD-layout industrial scans (``depthsim.scenes``).

Every random function takes ``rng``: a ``numpy.random.Generator``, an int seed, or None.
"""

from depthsim import scenes
from depthsim._rng import DepthsimError, as_generator
from depthsim.masks import anomaly_mask, anomaly_mask_batch
from depthsim.noise import fractal_perlin, perlin, perlin_batch
from depthsim.simulate import (
    DepthParams,
    NoiseParams,
    render_depth,
    sample_depth_params,
    sample_noise_params,
    simulate_depth,
    simulate_depth_batch,
)
from depthsim.textures import procedural_rgb

__version__ = "0.1.0"

__all__ = [
    "DepthParams",
    "DepthsimError",
    "NoiseParams",
    "__version__",
    "anomaly_mask",
    "anomaly_mask_batch",
    "as_generator",
    "fractal_perlin",
    "perlin",
    "perlin_batch",
    "procedural_rgb",
    "render_depth",
    "sample_depth_params",
    "sample_noise_params",
    "scenes",
    "simulate_depth",
    "simulate_depth_batch",
]
