"""Feature-space anomaly generation (spec §3.4): replace masked codes by near-but-wrong codes.

All of this runs without gradients. Randomness: a ``numpy.random.Generator`` drives every
per-sample / per-batch decision (strengths, modes, shuffle coin, patch size, permutations); a
``torch.Generator`` on the feature's device draws the per-cell uniform picks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
import vqcore
from torch import Tensor
from vqcore.search import DEFAULT_BLOCK_ELEMENTS

from threedsr.dsr.code_sampling import sample_codes

__all__ = ["FeatureAnomalyGenerator", "GeneratedAnomalies", "blocky_mask", "patch_shuffle"]

_PATCH_SIZES = (1, 2, 4, 8)


def patch_shuffle(x: Tensor, patch: int, rng: np.random.Generator) -> Tensor:
    """Cut each image's grid into ``patch x patch`` tiles and permute their positions
    independently per image.

    Shape:
        - x: (B, C, h, w), h and w multiples of ``patch``. Output: same.

    Example:
        >>> x = torch.arange(16.0).view(1, 1, 4, 4)
        >>> y = patch_shuffle(x, 2, np.random.default_rng(0))
        >>> sorted(y.flatten().tolist()) == x.flatten().tolist()
        True
    """
    b, c, h, w = x.shape
    if h % patch or w % patch:
        raise ValueError(f"patch_shuffle: grid {h}x{w} is not a multiple of patch {patch}")
    gh, gw = h // patch, w // patch
    tiles = x.reshape(b, c, gh, patch, gw, patch).permute(0, 2, 4, 1, 3, 5).reshape(b, gh * gw, -1)
    perms = torch.as_tensor(np.stack([rng.permutation(gh * gw) for _ in range(b)]), device=x.device)
    tiles = tiles.gather(1, perms[:, :, None].expand(-1, -1, tiles.shape[2]))
    return tiles.reshape(b, gh, gw, c, patch, patch).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w)


def blocky_mask(mask: Tensor, ratio: int) -> Tensor:
    """Max-pool a (B, 1, H, W) mask by ``ratio`` and bring it back with nearest upsampling.

    Example:
        >>> m = torch.zeros(1, 1, 8, 8); m[0, 0, 5, 1] = 1
        >>> blocky_mask(m, 4)[0, 0].sum().item()
        16.0
    """
    return F.interpolate(F.max_pool2d(mask, ratio), scale_factor=ratio, mode="nearest")


class GeneratedAnomalies(NamedTuple):
    """Output of :class:`FeatureAnomalyGenerator`.

    Attributes:
        q_top, q_bot: clean quantized features (targets of the feature losses).
        q_top_anom, q_bot_anom: anomalous features fed to the subspace restriction modules.
        gt: (B, 1, H, W) blocky segmentation target in {0, 1}.
        mode: (B,) int: 0 both levels, 1 coarse only, 2 fine only.
        modality: (B,) int: 0 joint (the reference), 1 depth half only, 2 RGB half only.
    """

    q_top: Tensor
    q_bot: Tensor
    q_top_anom: Tensor
    q_bot_anom: Tensor
    gt: Tensor
    mode: Tensor
    modality: Tensor | None = None


MODE_BOTH, MODE_LO, MODE_HI = 0, 1, 2
JOINT, DEPTH_ONLY, RGB_ONLY = 0, 1, 2


@dataclass
class FeatureAnomalyGenerator:
    """The reference's anomaly generator with its three level modes.

    For each sample: strengths ``s_lo, s_hi ~ U(strength_range)``; mode both (50 %), coarse only
    (25 %), fine only (25 %). Coarse anomalies replace masked Q1 cells; in mode *both* the fine
    features are then re-encoded from the anomalous ``upsample_t(Q1A)``, quantized, and receive
    anomalies too (same mask). Each replacement call flips one coin per batch: with probability
    ``shuffle_prob`` the replacement is a patch-shuffled copy of the sample's own quantized map
    (patch 1, 2, 4 or 8 cells), otherwise codes drawn by :func:`sample_codes`.

    Work is skipped where it cannot change the result (samples with an empty mask, cells outside
    the mask); the output distribution is the reference's.

    ``modality_split_prob`` (0 = the reference) applies to two-stream backbones (DADA, whose
    codes are [depth half | RGB half] and whose general decoder keeps the halves apart): with that
    probability a sample's anomaly is confined to one stream, depth or RGB with equal odds, by
    restoring the other half of every replaced code. A depth-only replacement changes the general
    reconstruction's depth and leaves its RGB identical, as a real dent does. With joint codes
    only, a short training run learns to flag where the RGB reconstructions disagree and misses
    depth-only defects. Not in the paper or the reference code; the ``cpu`` preset's choice.

    Example:
        >>> import vqcore
        >>> bb = vqcore.build_backbone(vqcore.BackboneConfig.cpu("depth", hidden=16, res_hidden=8,
        ...                            num_embeddings=32, embedding_dim=8)).eval()
        >>> gen = FeatureAnomalyGenerator()
        >>> out = gen(bb, torch.rand(2, 1, 32, 32), torch.ones(2, 1, 32, 32), rng=0)
        >>> out.gt.shape, out.q_bot_anom.shape
        (torch.Size([2, 1, 32, 32]), torch.Size([2, 8, 8, 8]))
    """

    strength_range: tuple[float, float] = (0.1, 1.0)
    exclude_nearest: float = 0.05
    shuffle_prob: float = 0.5
    modality_split_prob: float = 0.0
    block_elements: int = DEFAULT_BLOCK_ELEMENTS

    def replace(
        self,
        features: Tensor,
        quantized: Tensor,
        codebook: Tensor,
        cell_mask: Tensor,
        strengths: np.ndarray,
        rng: np.random.Generator,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """One sampler call: masked cells of ``quantized`` replaced (shuffle or ranked codes)."""
        h, w = quantized.shape[2:]
        if rng.random() < self.shuffle_prob:
            patch = int(_PATCH_SIZES[rng.integers(len(_PATCH_SIZES))])
            while h % patch or w % patch:
                patch //= 2
            replacement = patch_shuffle(quantized, patch, rng)
        else:
            replacement, _ = sample_codes(
                features,
                codebook,
                cell_mask,
                strengths,
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
        rng: np.random.Generator | int | None = None,
        generator: torch.Generator | None = None,
    ) -> GeneratedAnomalies:
        """Encode ``x`` with the frozen backbone and insert anomalies where ``mask`` is set.

        Args:
            backbone: a vqcore ``DiscreteAutoencoder`` in eval mode.
            x: (B, C, H, W) clean input.
            mask: (B, 1, H, W) {0, 1} anomaly mask (already restricted to the foreground).
            rng: numpy generator or seed.
            generator: torch generator on ``x.device``.
        """
        rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
        b = x.shape[0]
        dt, db = backbone.down_top, backbone.down_bot
        enc = backbone.encode(x)
        lo_s, hi_s = self.strength_range
        s_lo = rng.uniform(lo_s, hi_s, b)
        s_hi = rng.uniform(lo_s, hi_s, b)
        both = rng.random(b) < 0.5
        use_lo = rng.random(b) < 0.5
        mode = np.where(both, MODE_BOTH, np.where(use_lo, MODE_LO, MODE_HI))
        m_lo = F.max_pool2d(mask.float(), dt) > 0.5
        m_hi = F.max_pool2d(mask.float(), db) > 0.5
        has = (mask.flatten(1).amax(dim=1) > 0).cpu().numpy()

        q_top_a = enc.q_top.clone()
        q_bot_a = enc.q_bot.clone()
        sel = np.flatnonzero(has & (mode != MODE_HI))
        if sel.size:
            t = torch.as_tensor(sel, device=x.device)
            q_top_a[t] = self.replace(
                enc.f_top[t],
                enc.q_top[t],
                backbone.vq_top.codebook,
                m_lo[t, 0],
                s_lo[sel],
                rng,
                generator,
            )
        sel = np.flatnonzero(has & (mode == MODE_BOTH))
        if sel.size:
            t = torch.as_tensor(sel, device=x.device)
            f_bot = backbone.encode_bottom(enc.f1[t], q_top_a[t])
            q_bot = backbone.vq_bot(f_bot).quantized
            q_bot_a[t] = self.replace(
                f_bot, q_bot, backbone.vq_bot.codebook, m_hi[t, 0], s_hi[sel], rng, generator
            )
        sel = np.flatnonzero(has & (mode == MODE_HI))
        if sel.size:
            t = torch.as_tensor(sel, device=x.device)
            q_bot_a[t] = self.replace(
                enc.f_bot[t],
                enc.q_bot[t],
                backbone.vq_bot.codebook,
                m_hi[t, 0],
                s_hi[sel],
                rng,
                generator,
            )
        modality = np.full(b, JOINT)
        if self.modality_split_prob > 0 and backbone.groups == 2:
            split = rng.random(b) < self.modality_split_prob
            depth_only = rng.random(b) < 0.5
            modality = np.where(split, np.where(depth_only, DEPTH_ONLY, RGB_ONLY), JOINT)
            q_top_a = keep_stream(q_top_a, enc.q_top, modality)
            q_bot_a = keep_stream(q_bot_a, enc.q_bot, modality)
        coarse = torch.as_tensor(mode != MODE_HI, device=x.device)[:, None, None, None]
        gt = torch.where(coarse, blocky_mask(mask.float(), dt), blocky_mask(mask.float(), db))
        return GeneratedAnomalies(
            enc.q_top,
            enc.q_bot,
            q_top_a,
            q_bot_a,
            gt,
            torch.as_tensor(mode, device=x.device),
            torch.as_tensor(modality, device=x.device),
        )


def keep_stream(anomalous: Tensor, clean: Tensor, modality: Tensor | np.ndarray) -> Tensor:
    """The clean RGB half for depth-only samples, the clean depth half for RGB-only (by masks,
    so the device sampler reads nothing back); ``modality`` holds one mode per sample."""
    half = anomalous.shape[1] // 2
    chan = torch.arange(anomalous.shape[1], device=anomalous.device)[None, :, None, None]
    mod = torch.as_tensor(modality, device=anomalous.device)[:, None, None, None]
    keep_clean = ((mod == DEPTH_ONLY) & (chan >= half)) | ((mod == RGB_ONLY) & (chan < half))
    return torch.where(keep_clean, clean, anomalous)
