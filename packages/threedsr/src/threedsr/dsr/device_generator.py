"""Feature-space anomalies without host synchronisation (the ``device`` sampler).

The same distribution per sample as :class:`~threedsr.dsr.anomaly_generator.
FeatureAnomalyGenerator` (strengths, level modes, ranked-code picks, patch shuffles, stream
split), with static shapes: every per-sample decision is a tensor drawn from a
``torch.Generator`` on the batch's device and applied with masks, so no value is read back to the
host. The price is work on cells and samples whose result is then discarded (codes are ranked for
every cell, the fine level is re-encoded for every sample).

Two departures, both in how samples share coins, not in any one sample's law: the
replacement-kind coin (shuffle or ranked codes) and the shuffle's patch size are drawn once per
call from the host ``numpy`` generator of the step (a number the host owns, never read from the
device), and the fine level of modes *both* and *fine only* is replaced in one call (the
reference flips one coin per mode).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
import vqcore
from torch import Tensor
from vqcore.search import DEFAULT_BLOCK_ELEMENTS, ranked_codes

from threedsr.dsr.anomaly_generator import (
    DEPTH_ONLY,
    JOINT,
    MODE_BOTH,
    MODE_HI,
    MODE_LO,
    RGB_ONLY,
    FeatureAnomalyGenerator,
    GeneratedAnomalies,
    blocky_mask,
    keep_stream,
)
from threedsr.dsr.code_sampling import code_rank_bounds

__all__ = ["DeviceAnomalyGenerator", "patch_shuffle_device", "sample_codes_dense"]

_PATCH_SIZES = (1, 2, 4, 8)

#: Largest (cells x K) distance block of the device sampler's ranking (128 MiB of fp32).
DEVICE_BLOCK_ELEMENTS = 1 << 25


def sample_codes_dense(
    features: Tensor,
    codebook: Tensor,
    cell_mask: Tensor,
    strengths: Tensor,
    *,
    max_strength: float = 1.0,
    exclude_nearest: float = 0.05,
    generator: torch.Generator | None = None,
    block_elements: int = DEFAULT_BLOCK_ELEMENTS,
) -> tuple[Tensor, Tensor]:
    """:func:`~threedsr.dsr.code_sampling.sample_codes` for every cell at once: each cell's
    rank is drawn uniformly from its sample's ``[lo, hi)`` (:func:`code_rank_bounds`), the codes
    are ranked up to the largest ``hi`` that ``max_strength`` allows.

    Returns:
        ``(codes (B, D, h, w), indices (B, h, w))``; cells outside ``cell_mask`` hold zeros / -1.

    Example:
        >>> cb = torch.randn(64, 4)
        >>> codes, idx = sample_codes_dense(torch.randn(2, 4, 3, 3), cb,
        ...     torch.ones(2, 3, 3, dtype=torch.bool), torch.tensor([0.2, 0.9]))
        >>> codes.shape, bool((idx >= 0).all())
        (torch.Size([2, 4, 3, 3]), True)
    """
    b, d, h, w = features.shape
    k = codebook.shape[0]
    dev = features.device
    cb = codebook.to(features.dtype)
    s = strengths.to(dev, torch.float32)
    # code_rank_bounds in tensor form (same int() truncation: strengths are >= 0). The product
    # is in float64, as code_rank_bounds's: in float32 0.7 * 10 rounds up to 7.0 and would allow
    # one rank more than the host sampler.
    hi = (s.double() * k).floor().long().add(1).clamp(1, k - 1)
    lo = torch.minimum(torch.full_like(hi, int(k * exclude_nearest)), hi - 1)
    k_max = code_rank_bounds(max_strength, k, exclude_nearest)[1]
    u = torch.rand(b, h * w, generator=generator, device=dev)
    span = (hi - lo).to(torch.float32)[:, None]
    ranks = lo[:, None] + (u * span).long().clamp_max((hi - lo - 1)[:, None])
    flat = features.permute(0, 2, 3, 1).reshape(b * h * w, d)
    _, picked = ranked_codes(
        flat, cb, k_max, ranks=ranks.reshape(-1), row_norms=False, block_elements=block_elements
    )
    m = cell_mask.reshape(b * h * w)
    indices = torch.where(m, picked, torch.full_like(picked, -1))
    codes = cb[picked] * m[:, None].to(cb.dtype)
    return codes.view(b, h, w, d).permute(0, 3, 1, 2), indices.view(b, h, w)


def patch_shuffle_device(x: Tensor, patch: int, generator: torch.Generator | None) -> Tensor:
    """:func:`~threedsr.dsr.anomaly_generator.patch_shuffle` with the permutations drawn on the
    device (``argsort`` of uniform keys: a uniform permutation per image).

    Example:
        >>> x = torch.arange(16.0).view(1, 1, 4, 4)
        >>> y = patch_shuffle_device(x, 2, torch.Generator().manual_seed(0))
        >>> sorted(y.flatten().tolist()) == x.flatten().tolist()
        True
    """
    b, c, h, w = x.shape
    if h % patch or w % patch:
        raise ValueError(f"patch_shuffle: grid {h}x{w} is not a multiple of patch {patch}")
    gh, gw = h // patch, w // patch
    tiles = x.reshape(b, c, gh, patch, gw, patch).permute(0, 2, 4, 1, 3, 5).reshape(b, gh * gw, -1)
    perms = torch.rand(b, gh * gw, generator=generator, device=x.device).argsort(dim=1)
    tiles = tiles.gather(1, perms[:, :, None].expand(-1, -1, tiles.shape[2]))
    return tiles.reshape(b, gh, gw, c, patch, patch).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w)


def _cast(enc: vqcore.Encoding) -> vqcore.Encoding:
    # A bf16 encode hands fp32 maps on: the rest of the step is what it was.
    return enc._replace(
        **{f: getattr(enc, f).float() for f in ("f1", "f_top", "q_top", "f_bot", "q_bot")}
    )


@dataclass
class DeviceAnomalyGenerator(FeatureAnomalyGenerator):
    """The ``device`` sampler's feature-space anomaly generator (see the module docstring);
    the fields are :class:`~threedsr.dsr.anomaly_generator.FeatureAnomalyGenerator`'s, only
    ``block_elements`` has its own default.

    Example:
        >>> import vqcore
        >>> bb = vqcore.build_backbone(vqcore.BackboneConfig.cpu("depth", hidden=16, res_hidden=8,
        ...                            num_embeddings=32, embedding_dim=8)).eval()
        >>> g = torch.Generator().manual_seed(0)
        >>> out = DeviceAnomalyGenerator()(bb, torch.rand(2, 1, 32, 32), torch.ones(2, 1, 32, 32),
        ...                                generator=g, rng=np.random.default_rng(0))
        >>> out.gt.shape, out.q_bot_anom.shape
        (torch.Size([2, 1, 32, 32]), torch.Size([2, 8, 8, 8]))
    """

    # Every cell is ranked (static shapes): at 384², batch 16 the fine level alone is 147k rows
    # x 2048 codes, so blocks 8x the searches' default cut the per-block launches.
    block_elements: int = DEVICE_BLOCK_ELEMENTS

    def replace(
        self,
        features: Tensor,
        quantized: Tensor,
        codebook: Tensor,
        cell_mask: Tensor,
        strengths: Tensor,
        rng: np.random.Generator,
        generator: torch.Generator | None,
    ) -> Tensor:
        """Masked cells of ``quantized`` replaced by a shuffle or ranked codes (one host coin)."""
        h, w = quantized.shape[2:]
        if rng.random() < self.shuffle_prob:
            patch = int(_PATCH_SIZES[rng.integers(len(_PATCH_SIZES))])
            while h % patch or w % patch:
                patch //= 2
            replacement = patch_shuffle_device(quantized, patch, generator)
        else:
            replacement, _ = sample_codes_dense(
                features,
                codebook,
                cell_mask,
                strengths,
                max_strength=self.strength_range[1],
                exclude_nearest=self.exclude_nearest,
                generator=generator,
                block_elements=self.block_elements,
            )
        return torch.where(cell_mask[:, None], replacement, quantized)

    @torch.no_grad()
    def __call__(
        self,
        backbone: vqcore.DiscreteAutoencoder,
        x: Tensor,
        mask: Tensor,
        *,
        generator: torch.Generator | None,
        rng: np.random.Generator,
        autocast: torch.autocast | None = None,
    ) -> GeneratedAnomalies:
        """Encode ``x`` (under ``autocast`` when given: the frozen encode in bf16) and insert
        anomalies where ``mask`` is set. ``generator`` draws every per-sample value on the
        device, ``rng`` the per-call coins on the host."""
        b, dev = x.shape[0], x.device
        dt, db = backbone.down_top, backbone.down_bot
        ctx = autocast if autocast is not None else torch.autocast(dev.type, enabled=False)
        with ctx:
            enc = _cast(backbone.encode(x))
        lo_s, hi_s = self.strength_range
        u = torch.rand(4, b, generator=generator, device=dev)
        s_lo, s_hi = lo_s + (hi_s - lo_s) * u[0], lo_s + (hi_s - lo_s) * u[1]
        mode = torch.where(u[2] < 0.5, MODE_BOTH, torch.where(u[3] < 0.5, MODE_LO, MODE_HI))
        mf = mask.float()
        has = mf.flatten(1).amax(dim=1) > 0
        m_lo = (F.max_pool2d(mf, dt) > 0.5)[:, 0] & (has & (mode != MODE_HI))[:, None, None]
        q_top_a = self.replace(
            enc.f_top, enc.q_top, backbone.vq_top.codebook, m_lo, s_lo, rng, generator
        )
        # Fine level, modes both and fine only in one call. Mode both re-encodes the fine
        # features from the anomalous coarse codes and re-quantizes them, as the reference.
        both = (mode == MODE_BOTH)[:, None, None, None]
        with ctx:
            f_re = backbone.encode_bottom(enc.f1, q_top_a).float()
            q_re = backbone.vq_bot(f_re).quantized.float()
        f_bot = torch.where(both, f_re, enc.f_bot)
        q_bot = torch.where(both, q_re, enc.q_bot)
        m_hi = (F.max_pool2d(mf, db) > 0.5)[:, 0] & (has & (mode != MODE_LO))[:, None, None]
        q_bot_a = self.replace(f_bot, q_bot, backbone.vq_bot.codebook, m_hi, s_hi, rng, generator)
        # Samples without an anomaly keep the encoder's codes (mode both re-quantizes only where
        # the reference did: samples with a mask).
        q_bot_a = torch.where(
            (has[:, None, None, None] & (both | (mode == MODE_HI)[:, None, None, None])),
            q_bot_a,
            enc.q_bot,
        )
        modality = torch.full((b,), JOINT, device=dev, dtype=torch.long)
        if self.modality_split_prob > 0 and backbone.groups == 2:
            v = torch.rand(2, b, generator=generator, device=dev)
            modality = torch.where(
                v[0] < self.modality_split_prob,
                torch.where(v[1] < 0.5, DEPTH_ONLY, RGB_ONLY),
                JOINT,
            )
            q_top_a = keep_stream(q_top_a, enc.q_top, modality)
            q_bot_a = keep_stream(q_bot_a, enc.q_bot, modality)
        coarse = (mode != MODE_HI)[:, None, None, None]
        gt = torch.where(coarse, blocky_mask(mf, dt), blocky_mask(mf, db))
        return GeneratedAnomalies(enc.q_top, enc.q_bot, q_top_a, q_bot_a, gt, mode, modality)
