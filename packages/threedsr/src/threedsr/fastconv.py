"""Inference-only fp32 Winograd convolution for 3x3, stride-1, padding-1 convs (CPU speed-up).

The object-specific decoder's wide 3x3 convs (512->1024 at 96², 1024->2048 at 48² for a 384²
input) are ~130 GMAC per image and already run near the CPU's fp32 peak through oneDNN, so the
only way to make them much faster without leaving fp32 is to do fewer multiplies. Winograd
F(m x m, 3 x 3) computes an m x m output tile from an (m+2)² input tile with (m+2)² products per
channel pair instead of 9 m²: 2.25x fewer for F(2x2) and 4x fewer for F(4x4). The price is
rounding: the transforms amplify fp32 error. Relative to the largest output, F(4x4) measured
~1e-5 at 512-2048 channels (the fp32 direct conv ~2e-6) and F(2x2) ~4e-7; after the following
InstanceNorm/UNet/softmax the anomaly maps moved by < 1e-5, inside issue 6's 1e-4 tolerance.

Layout (every step is a large matrix product):
  tiles ``D`` (T², N·th·tw·C) -> ``V = kron(Bᵀ, Bᵀ) @ D`` -> per-frequency ``M[f] = V[f] @ U[f]``
  (``U`` transformed once per weight; on CPU the T² products run as oneDNN 1x1 convolutions on
  prepacked weights, otherwise as one ``torch.bmm``) -> ``Y = kron(Aᵀ, Aᵀ) @ M``.

:class:`FastConvPlan` picks the eligible convs of a model and, inside ``with plan.active():``,
routes their ``forward`` through :func:`winograd_conv2d`; the model itself is not modified.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "FastConvPlan",
    "check_supported",
    "pack_weight",
    "winograd_conv2d",
    "winograd_weight",
]

# Standard Lavin & Gray matrices (points 0, ±1, ±2 for F(4x4); 0, ±1 for F(2x2)).
_MATS: dict[int, tuple[list[list[float]], list[list[float]], list[list[float]]]] = {
    2: (
        [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
        [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]],
        [[1, 1, 1, 0], [0, 1, -1, -1]],
    ),
    4: (
        [
            [4, 0, -5, 0, 1, 0],
            [0, -4, -4, 1, 1, 0],
            [0, 4, -4, -1, 1, 0],
            [0, -2, -1, 2, 1, 0],
            [0, 2, -1, -2, 1, 0],
            [0, 4, 0, -5, 0, 1],
        ],
        [
            [1 / 4, 0, 0],
            [-1 / 6, -1 / 6, -1 / 6],
            [-1 / 6, 1 / 6, -1 / 6],
            [1 / 24, 1 / 12, 1 / 6],
            [1 / 24, -1 / 12, 1 / 6],
            [0, 0, 1],
        ],
        [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
    ),
}


def _kron(mat: list[list[float]], dtype: torch.dtype, device: torch.device) -> Tensor:
    # Built in float64 so the 2-D transform matrix is the correctly rounded product.
    m = torch.tensor(mat, dtype=torch.float64)
    return torch.kron(m, m).to(dtype=dtype, device=device)


def check_supported(conv: nn.Module) -> None:
    """Raise ``ValueError`` (naming the offending attribute) unless ``conv`` is a Winograd-able
    ``nn.Conv2d``: 3x3 kernel, stride 1, padding 1 (or ``"same"``), dilation 1, groups 1, zero
    padding mode.

    Example:
        >>> check_supported(nn.Conv2d(4, 4, 3, padding=1))
        >>> check_supported(nn.Conv2d(4, 4, 3, stride=2, padding=1))
        Traceback (most recent call last):
        ...
        ValueError: winograd conv: stride must be (1, 1), got (2, 2)
    """
    if not isinstance(conv, nn.Conv2d):
        raise ValueError(f"winograd conv: needs an nn.Conv2d, got {type(conv).__name__}")
    padding = (1, 1) if conv.padding == "same" else tuple(conv.padding)  # type: ignore[arg-type]
    for name, got, want in (
        ("kernel_size", tuple(conv.kernel_size), (3, 3)),
        ("stride", tuple(conv.stride), (1, 1)),
        ("padding", padding, (1, 1)),
        ("dilation", tuple(conv.dilation), (1, 1)),
        ("groups", conv.groups, 1),
        ("padding_mode", conv.padding_mode, "zeros"),
    ):
        if got != want:
            raise ValueError(f"winograd conv: {name} must be {want!r}, got {got!r}")


def winograd_weight(weight: Tensor, tile: int = 4) -> Tensor:
    """Pre-transform a (K, C, 3, 3) conv weight into the (T², C, K) Winograd domain, T = tile+2.

    Computed in float64 and rounded once to the weight's dtype.

    Args:
        weight: (K, C, 3, 3) conv weight.
        tile: 4 for F(4x4, 3x3) (T² = 36 frequencies) or 2 for F(2x2, 3x3) (16).

    Returns:
        (T², C, K) tensor ``U`` with ``U[f] = (G w G^T)[f]`` laid out for ``V[f] @ U[f]``.

    Example:
        >>> winograd_weight(torch.randn(8, 5, 3, 3)).shape
        torch.Size([36, 5, 8])
    """
    if tile not in _MATS:
        raise ValueError(f"winograd conv: tile must be 2 or 4, got {tile}")
    if weight.ndim != 4 or tuple(weight.shape[2:]) != (3, 3):
        raise ValueError(f"winograd conv: weight must be (K, C, 3, 3), got {tuple(weight.shape)}")
    gg = _kron(_MATS[tile][1], torch.float64, weight.device)  # (T², 9)
    k, c = weight.shape[:2]
    u = gg @ weight.detach().double().reshape(k * c, 9).T  # (T², K·C)
    return u.reshape(-1, k, c).transpose(1, 2).contiguous().to(weight.dtype)


def _mkldnn_ok() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(
        torch.ops.mkldnn, "_convolution_pointwise"
    )


def pack_weight(u: Tensor, pixels: int = 64) -> list[Tensor] | None:
    """oneDNN-prepacked (K, C, 1, 1) weights of each frequency of a :func:`winograd_weight`.

    The per-frequency GEMMs run as oneDNN 1x1 convolutions on prepacked weights: on the AMD
    EPYC build machine MKL's sgemm (``torch.bmm``) reaches ~50 GMAC/s while oneDNN reaches
    ~120 (measured, docs/bench/threedsr.md). Returns None where oneDNN is unavailable (then
    :func:`winograd_conv2d` falls back to ``torch.bmm``).

    Args:
        u: (T², C, K) float32 CPU :func:`winograd_weight`.
        pixels: the GEMM row count (N x tiles) the pack is laid out for; any other count still
            gives correct results, but a mismatched pack measured up to 10x slower.

    Returns:
        T² oneDNN (mkldnn-layout) tensors of shape (K, C, 1, 1), or None (not a float32 CPU
        weight, or oneDNN unavailable).

    Example:
        >>> packed = pack_weight(winograd_weight(torch.randn(8, 5, 3, 3)))
        >>> packed is None or len(packed) == 36
        True
    """
    if not _mkldnn_ok() or u.device.type != "cpu" or u.dtype != torch.float32:
        return None
    c = u.shape[1]
    out = []
    for f in range(u.shape[0]):
        wf = u[f].T.contiguous()[:, :, None, None].to_mkldnn()
        out.append(
            torch._C._nn.mkldnn_reorder_conv2d_weight(
                wf, [0, 0], [1, 1], [1, 1], 1, [1, c, pixels, 1]
            )
        )
    return out


def winograd_conv2d(
    x: Tensor,
    u: Tensor | list[Tensor],
    bias: Tensor | None = None,
    *,
    tile: int = 4,
) -> Tensor:
    """3x3 convolution, stride 1, zero padding 1, via Winograd F(tile x tile, 3x3).

    Args:
        x: (N, C, H, W) input, any memory format, any H, W >= 1.
        u: :func:`winograd_weight` of the (K, C, 3, 3) weight with the same ``tile``, or its
            :func:`pack_weight` (faster per-frequency GEMMs on CPU).
        bias: (K,) or None.
        tile: output tile size, 4 (default, 4x fewer multiplies) or 2 (2.25x, more accurate).

    Returns:
        (N, K, H, W), NCHW-contiguous for an NCHW-contiguous input, channels_last otherwise; equal to ``F.conv2d(x, w, bias, padding=1)``
        up to fp32 rounding.

    Example:
        >>> import torch.nn.functional as F
        >>> x, w = torch.randn(2, 3, 7, 5), torch.randn(4, 3, 3, 3)
        >>> y = winograd_conv2d(x, winograd_weight(w))
        >>> bool(torch.allclose(y, F.conv2d(x, w, padding=1), atol=1e-4))
        True
    """
    if tile not in _MATS:
        raise ValueError(f"winograd conv: tile must be 2 or 4, got {tile}")
    t = tile + 2
    packed = u if isinstance(u, list) else None
    if packed is not None:
        shape = (len(packed), *packed[0].shape[1::-1]) if packed else (0, 0, 0)
    else:
        shape = tuple(u.shape)  # type: ignore[union-attr]
    if x.ndim != 4 or len(shape) != 3 or shape[0] != t * t or shape[1] != x.shape[1]:
        raise ValueError(
            f"winograd conv: input {tuple(x.shape)} does not fit transformed weight "
            f"{shape} for tile {tile}"
        )
    n, c, h, w = x.shape
    k = shape[2]
    th, tw = -(-h // tile), -(-w // tile)
    if n == 0 or h == 0 or w == 0:
        return x.new_zeros((n, k, h, w))
    # Zero-padded NHWC copy: 1 on top/left, up to the last full tile on bottom/right.
    hp, wp = th * tile + 2, tw * tile + 2
    xp = F.pad(x.permute(0, 2, 3, 1), (0, 0, 1, wp - w - 1, 1, hp - h - 1)).contiguous()
    # Overlapping (t x t) tiles with stride ``tile``, frequency-major: (t, t, n, th, tw, c).
    s = xp.stride()
    d = xp.as_strided((t, t, n, th, tw, c), (s[1], s[2], s[0], tile * s[1], tile * s[2], s[3]))
    p = n * th * tw
    d = d.reshape(t * t, p * c)
    v = (_kron(_MATS[tile][0], x.dtype, x.device) @ d).view(t * t, p, c)
    if packed is not None:
        # M[f] = V[f] @ U[f] as a 1x1 conv over P "pixels" (channels_last (1, C, P, 1) views).
        ms = [
            torch.ops.mkldnn._convolution_pointwise(
                v[f].T[None, :, :, None], packed[f], None, [0, 0], [1, 1], [1, 1], 1, "none", [], ""
            )
            for f in range(t * t)
        ]
        m = torch.stack([mf.view(k, p).T for mf in ms])
    else:
        m = torch.bmm(v, u)  # type: ignore[arg-type]  # (t², P, K): the 36 (or 16) per-frequency GEMMs
    aa = _kron(_MATS[tile][2], x.dtype, x.device)
    y = (aa @ m.view(t * t, -1)).view(tile, tile, n, th, tw, k)
    y = y.permute(2, 3, 0, 4, 1, 5).reshape(n, th * tile, tw * tile, k)
    if bias is not None:
        y += bias
    out = y[:, :h, :w].permute(0, 3, 1, 2)
    # Same layout rule as torch's conv: NCHW in, NCHW out (what a following InstanceNorm wants).
    nchw = x.is_contiguous() and not x.is_contiguous(memory_format=torch.channels_last)
    return out.contiguous(memory_format=torch.contiguous_format if nchw else torch.channels_last)


class FastConvPlan:
    """The Winograd-eligible convs of a model, switched on inside :meth:`active`.

    Args:
        model: any module; its eligible ``nn.Conv2d`` (see :func:`check_supported`) with
            ``in_channels * out_channels >= min_channel_product`` are selected.
        tile: 4 (default) or 2.
        min_channel_product: the smallest ``C_in * C_out`` worth the transforms' overhead
            (measured per layer, see docs/bench/threedsr.md: 512 x 512 and up pay on CPU).

    The transformed (and, on CPU, oneDNN-prepacked) weights are cached per conv: 4x the conv's
    weight memory for F(4x4) (36/9), rebuilt when the weight changes or the number of tiles does.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(32, 32, 3, padding=1), nn.Conv2d(32, 2, 1))
        >>> plan = FastConvPlan(net, min_channel_product=1024)
        >>> len(plan)
        1
        >>> x = torch.randn(1, 32, 10, 10)
        >>> with torch.inference_mode(), plan.active():
        ...     y = net(x)
        >>> bool(torch.allclose(y, net(x), atol=1e-4))
        True
    """

    def __init__(
        self, model: nn.Module, *, tile: int = 4, min_channel_product: int = 512 * 512
    ) -> None:
        if tile not in _MATS:
            raise ValueError(f"winograd conv: tile must be 2 or 4, got {tile}")
        self.tile = tile
        self.convs: list[nn.Conv2d] = []
        for mod in model.modules():
            if not isinstance(mod, nn.Conv2d):
                continue
            try:
                check_supported(mod)
            except ValueError:
                continue
            if mod.in_channels * mod.out_channels >= min_channel_product:
                self.convs.append(mod)
        self._cache: dict[int, tuple[tuple[object, ...], Tensor | list[Tensor]]] = {}

    def __len__(self) -> int:
        return len(self.convs)

    def _weights(self, conv: nn.Conv2d, x: Tensor) -> Tensor | list[Tensor]:
        # oneDNN picks the packed layout for the GEMM's row count (a pack made for another
        # count measured several times slower), so the pack is keyed by the number of tiles;
        # one entry per conv bounds the memory.
        w = conv.weight
        t = self.tile
        tiles = x.shape[0] * -(-x.shape[2] // t) * -(-x.shape[3] // t)
        use_pack = x.device.type == "cpu" and x.dtype == torch.float32 and tiles > 0
        key = (w.data_ptr(), w._version, w.dtype, w.device, tiles if use_pack else None)
        hit = self._cache.get(id(conv))
        if hit is None or hit[0] != key:
            self._cache.pop(id(conv), None)  # free the old one before building the new one
            with torch.no_grad():
                u = winograd_weight(w, t)
                packed = pack_weight(u, tiles) if use_pack else None
            hit = (key, u if packed is None else packed)
            self._cache[id(conv)] = hit
        return hit[1]

    def _forward(self, conv: nn.Conv2d, x: Tensor) -> Tensor:
        if torch.is_grad_enabled() and (x.requires_grad or conv.weight.requires_grad):
            raise RuntimeError("winograd conv is inference-only: run under torch.no_grad()")
        return winograd_conv2d(x, self._weights(conv, x), conv.bias, tile=self.tile)

    def clear(self) -> None:
        """Drop the cached transformed weights (they are rebuilt on the next use)."""
        self._cache.clear()

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """Route the selected convs through Winograd until the block exits (not re-entrant)."""
        for conv in self.convs:
            conv.forward = lambda x, _c=conv: self._forward(_c, x)  # type: ignore[method-assign]
        try:
            yield
        finally:
            for conv in self.convs:
                conv.__dict__.pop("forward", None)
