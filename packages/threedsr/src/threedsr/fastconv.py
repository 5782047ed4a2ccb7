"""Inference-only fp32 Winograd convolution for 3x3, stride-1, padding-1 convs (CPU speed-up).

The object-specific decoder's wide 3x3 convs (512->1024 at 96², 1024->2048 at 48² for a 384²
input) are ~130 GMAC per image and already run near the CPU's fp32 peak through oneDNN, so the
only way to make them much faster without leaving fp32 is to do fewer multiplies. Winograd
F(m x m, 3 x 3) computes an m x m output tile from an (m+2)² input tile with (m+2)² products per
channel pair instead of 9 m²: 2.25x fewer for F(2x2) and 4x fewer for F(4x4). The price is
rounding: the transforms amplify fp32 error. Relative to the largest output, F(4x4) measured
~1e-5 at 512-2048 channels (the fp32 direct conv ~2e-6) and F(2x2) ~4e-7; after the following
InstanceNorm/UNet/softmax the anomaly maps moved by < 1e-5, inside issue 6's 1e-4 tolerance.

Layout: ``x (N, C, H, W) -> V (T², C, P) -> M[f] = U[f] @ V[f] (T², K, P) -> y (N, K, H, W)``
with P = N·th·tw tiles and ``U`` the weight transformed once. On CPU float32 the two transforms
are fused numba kernels (:mod:`threedsr._winograd_kernels`: one read and one write each, bias
and crop included) and the T² GEMMs run either as one ``torch.bmm`` into a reused buffer or as
oneDNN 1x1 convolutions on prepacked weights, whichever :func:`gemm_route` measured faster on
this machine (MKL's sgemm was the faster one on an Intel Xeon, oneDNN on an AMD EPYC). Elsewhere
(CUDA, float64) the same algorithm runs as plain torch ops.

:class:`FastConvPlan` picks the eligible convs of a model and, inside ``with plan.active():``,
routes their ``forward`` through :func:`winograd_conv2d`; the model itself is not modified.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Iterator

import numba
import torch
import torch.nn.functional as F
import vqcore
from torch import Tensor, nn

from threedsr import _winograd_kernels as _kernels

__all__ = [
    "FastConvPlan",
    "check_supported",
    "gemm_route",
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
    ``nn.Conv2d``: 3x3 kernel, stride 1, padding 1 (or ``"same"``), dilation 1, zero padding mode
    (any group count).

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
        ("padding_mode", conv.padding_mode, "zeros"),
    ):
        if got != want:
            raise ValueError(f"winograd conv: {name} must be {want!r}, got {got!r}")


def winograd_weight(weight: Tensor, tile: int = 4) -> Tensor:
    """Pre-transform a (K, C_g, 3, 3) conv weight into the (T², K, C_g) Winograd domain, T = tile+2.

    Computed in float64 and rounded once to the weight's dtype. ``C_g`` is the conv's input
    channels per group (the weight's second dimension).

    Args:
        weight: (K, C_g, 3, 3) conv weight.
        tile: 4 for F(4x4, 3x3) (T² = 36 frequencies) or 2 for F(2x2, 3x3) (16).

    Returns:
        (T², K, C_g) tensor ``U`` with ``U[f] = (G w Gᵀ)[f]`` laid out for ``U[f] @ V[f]``.

    Example:
        >>> winograd_weight(torch.randn(8, 5, 3, 3)).shape
        torch.Size([36, 8, 5])
    """
    if tile not in _MATS:
        raise ValueError(f"winograd conv: tile must be 2 or 4, got {tile}")
    if weight.ndim != 4 or tuple(weight.shape[2:]) != (3, 3):
        raise ValueError(f"winograd conv: weight must be (K, C, 3, 3), got {tuple(weight.shape)}")
    gg = _kron(_MATS[tile][1], torch.float64, weight.device)  # (T², 9)
    k, c = weight.shape[:2]
    u = gg @ weight.detach().double().reshape(k * c, 9).T  # (T², K·C_g)
    return u.reshape(-1, k, c).contiguous().to(weight.dtype)


def _mkldnn_ok() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(
        torch.ops.mkldnn, "_convolution_pointwise"
    )


def pack_weight(u: Tensor, pixels: int = 64) -> list[Tensor] | None:
    """oneDNN-prepacked (K, C, 1, 1) weights of each frequency of a :func:`winograd_weight`.

    With them the per-frequency GEMMs run as oneDNN 1x1 convolutions over P "pixels"; on the AMD
    EPYC build machine oneDNN reached ~120 GMAC/s where MKL's sgemm (``torch.bmm``) reached ~50
    (measured, docs/bench/threedsr.md). Returns None where oneDNN is unavailable.

    Args:
        u: (T², K, C) float32 CPU :func:`winograd_weight` of an ungrouped conv.
        pixels: the GEMM column count P (N x tiles) the pack is laid out for; any other count
            still gives correct results, but a mismatched pack measured up to 10x slower.

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
    c = u.shape[2]
    out = []
    for f in range(u.shape[0]):
        wf = u[f].contiguous()[:, :, None, None].to_mkldnn()
        out.append(
            torch._C._nn.mkldnn_reorder_conv2d_weight(
                wf, [0, 0], [1, 1], [1, 1], 1, [1, c, max(1, pixels), 1]
            )
        )
    return out


def _scratch(workspace: dict[str, Tensor] | None, name: str, shape: tuple[int, ...]) -> Tensor:
    # Reused buffers: fresh 40-90 MB allocations per call cost page faults comparable to the
    # transforms themselves. Created outside inference mode so that they also serve later
    # no_grad calls (an inference tensor cannot be written in place outside inference mode).
    need = math.prod(shape)
    if workspace is None:
        return torch.empty(shape)
    buf = workspace.get(name)
    if buf is None or buf.numel() < need:
        workspace.pop(name, None)
        with torch.inference_mode(False):
            buf = torch.empty(need)
        workspace[name] = buf
    return buf[:need].view(shape)


# numba's fallback "workqueue" threading layer (used where neither OpenMP nor TBB is found)
# aborts the process when two threads launch parallel kernels at once; a Detector shared by a
# thread pool must not do that, so kernel launches are serialised.
_KERNEL_LOCK = threading.Lock()


def _match_numba_threads() -> None:
    # The kernels run on numba's pool; follow torch's thread count (a worker limited to one
    # torch thread must not start a second numba thread).
    want = max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))
    if numba.get_num_threads() != want:
        numba.set_num_threads(want)


def _gemm(v: Tensor, u: Tensor | list[Tensor], m: Tensor, groups: int) -> None:
    """``m[f] = u[f] @ v[f]`` for every frequency f (per group), written into ``m``."""
    t2, k, p = m.shape
    if isinstance(u, list):
        for f in range(t2):
            out = torch.ops.mkldnn._convolution_pointwise(
                v[f][None, :, :, None], u[f], None, [0, 0], [1, 1], [1, 1], 1, "none", [], ""
            )
            m[f].copy_(out.reshape(k, p))
        return
    cg = u.shape[2]
    torch.bmm(
        u.view(t2 * groups, k // groups, cg),
        v.view(t2 * groups, cg, p),
        out=m.view(t2 * groups, k // groups, p),
    )


def _weight_shape(u: Tensor | list[Tensor]) -> tuple[int, ...]:
    if isinstance(u, list):
        return (len(u), *u[0].shape[:2]) if u else (0, 0, 0)
    return tuple(u.shape)


def winograd_conv2d(
    x: Tensor,
    u: Tensor | list[Tensor],
    bias: Tensor | None = None,
    *,
    tile: int = 4,
    workspace: dict[str, Tensor] | None = None,
) -> Tensor:
    """3x3 convolution, stride 1, zero padding 1, via Winograd F(tile x tile, 3x3).

    Inference only: the result carries no autograd graph.

    Args:
        x: (N, C, H, W) input, any memory format, any H, W >= 1.
        u: :func:`winograd_weight` of the (K, C/groups, 3, 3) weight with the same ``tile``
            (the group count is ``C / u.shape[2]``), or its :func:`pack_weight` (ungrouped).
        bias: (K,) or None.
        tile: output tile size, 4 (default, 4x fewer multiplies) or 2 (2.25x, more accurate).
        workspace: a dict in which the CPU path keeps its scratch buffers between calls.

    Returns:
        (N, K, H, W), NCHW-contiguous for an NCHW-contiguous input, channels_last otherwise;
        equal to ``F.conv2d(x, w, bias, padding=1, groups=groups)`` up to fp32 rounding.

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
    shape = _weight_shape(u)
    c = x.shape[1] if x.ndim == 4 else -1
    if (
        x.ndim != 4
        or len(shape) != 3
        or shape[0] != t * t
        or shape[2] < 1
        or c % shape[2]
        or shape[1] % (c // shape[2] or 1)
    ):
        raise vqcore.ShapeError(
            f"winograd conv: input {tuple(x.shape)} does not fit transformed weight "
            f"{shape} for tile {tile}"
        )
    n, _, h, w = x.shape
    k, groups = shape[1], c // shape[2]
    if isinstance(u, list) and groups != 1:
        raise ValueError("winograd conv: packed weights are for ungrouped convs; pass the tensor")
    if n == 0 or h == 0 or w == 0:
        return x.new_zeros((n, k, h, w))
    th, tw = -(-h // tile), -(-w // tile)
    # Same layout rule as torch's conv: NCHW in, NCHW out (what a following InstanceNorm wants).
    nchw = x.is_contiguous() and not x.is_contiguous(memory_format=torch.channels_last)
    if x.device.type == "cpu" and x.dtype == torch.float32:
        p = n * th * tw
        xc = x.detach().contiguous()
        y = torch.empty((n, k, h, w))
        b = torch.zeros(k) if bias is None else bias.detach().float().contiguous()
        # The lock also guards the shared workspace buffers.
        with _KERNEL_LOCK:
            _match_numba_threads()
            v = _scratch(workspace, "v", (t * t, c, p))
            _kernels.input_transform(xc.numpy(), v.numpy(), th, tw, tile)
            m = _scratch(workspace, "m", (t * t, k, p))
            _gemm(v, u, m, groups)
            _kernels.output_transform(m.numpy(), b.numpy(), y.numpy(), th, tw, tile)
    else:
        if isinstance(u, list):
            raise ValueError("winograd conv: packed weights need a float32 CPU input")
        y = _winograd_torch(x, u, bias, tile, groups)
    return y if nchw else y.contiguous(memory_format=torch.channels_last)


def _winograd_torch(x: Tensor, u: Tensor, bias: Tensor | None, tile: int, groups: int) -> Tensor:
    """The same algorithm in torch ops (any device and dtype); returns NCHW."""
    t = tile + 2
    n, c, h, w = x.shape
    k = u.shape[1]
    th, tw = -(-h // tile), -(-w // tile)
    p = n * th * tw
    # Zero padding: 1 on top/left, up to the last full tile on bottom/right.
    xp = F.pad(x, (1, tw * tile + 1 - w, 1, th * tile + 1 - h)).contiguous()
    s = xp.stride()
    # Overlapping (t x t) tiles with stride ``tile``, frequency-major: (t, t, C, N, th, tw).
    d = xp.as_strided((t, t, c, n, th, tw), (s[2], s[3], s[1], s[0], tile * s[2], tile * s[3]))
    v = (_kron(_MATS[tile][0], x.dtype, x.device) @ d.reshape(t * t, c * p)).view(t * t, c, p)
    m = torch.empty((t * t, k, p), dtype=x.dtype, device=x.device)
    _gemm(v, u, m, groups)
    aa = _kron(_MATS[tile][2], x.dtype, x.device)
    y = (aa @ m.view(t * t, k * p)).view(tile, tile, k, n, th, tw)
    y = y.permute(3, 2, 4, 0, 5, 1).reshape(n, k, th * tile, tw * tile)[:, :, :h, :w]
    if bias is not None:
        y = y + bias.view(1, -1, 1, 1)
    return y.contiguous()


# The GEMM route, "bmm" or "onednn", measured once per process by :func:`gemm_route`.
_GEMM_ROUTE: str | None = None


def gemm_route() -> str:
    """The faster GEMM route on this machine for the CPU Winograd path: ``"bmm"`` (one
    ``torch.bmm``, MKL's sgemm) or ``"onednn"`` (oneDNN 1x1 convs on prepacked weights).

    Measured on the first call (three alternating rounds on a 36 x (512 x 512 @ 512 x 144)
    probe, 0.16 s measured) and kept for the process: MKL was the faster on an Intel Xeon, oneDNN
    (2.4x) on an AMD EPYC (docs/bench/threedsr.md). Both give the same result to fp32 rounding.

    Example:
        >>> gemm_route() in ("bmm", "onednn")
        True
    """
    global _GEMM_ROUTE
    if _GEMM_ROUTE is None:
        _GEMM_ROUTE = _measure_gemm_route()
    return _GEMM_ROUTE


def _measure_gemm_route(k: int = 512, c: int = 512, p: int = 144) -> str:
    if not _mkldnn_ok():
        return "bmm"
    g = torch.Generator().manual_seed(0)
    u = torch.randn(36, k, c, generator=g)
    packed = pack_weight(u, p)
    if packed is None:
        return "bmm"
    v, m = torch.randn(36, c, p, generator=g), torch.empty(36, k, p)
    routes: dict[str, Tensor | list[Tensor]] = {"bmm": u, "onednn": packed}
    best = dict.fromkeys(routes, float("inf"))
    with torch.inference_mode():
        # The first round doubles as the warm-up (a fresh oneDNN pack runs its first call
        # slowly); alternating shares a load change between the two.
        for _ in range(3):
            for name, weights in routes.items():
                start = time.perf_counter()
                _gemm(v, weights, m, 1)
                best[name] = min(best[name], time.perf_counter() - start)
    return "bmm" if best["bmm"] <= best["onednn"] else "onednn"


class FastConvPlan:
    """The Winograd-eligible convs of a model, switched on inside :meth:`active`.

    Args:
        model: any module; its eligible ``nn.Conv2d`` (see :func:`check_supported`) with
            per-group ``(in_channels / groups) * (out_channels / groups) >= min_channel_product``
            (the size of each per-frequency GEMM) are selected.
        tile: 4 (default) or 2.
        min_channel_product: the smallest per-group ``C_in * C_out`` worth the transforms'
            overhead (measured per layer on CPU, see docs/bench/threedsr.md: 256 x 256 gains
            1.2-1.4x, 256 x 128 about 1.0x).

    The transformed weights are cached per conv: 4x the conv's weight memory for F(4x4)
    (36/9), rebuilt when the weight changes. On a float32 CPU input the GEMMs take the
    :func:`gemm_route` measured for this machine (oneDNN packs are laid out for the tile count,
    so they are also rebuilt when it changes).

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
            per_group = (mod.in_channels // mod.groups) * (mod.out_channels // mod.groups)
            if per_group >= min_channel_product:
                self.convs.append(mod)
        self._cache: dict[int, tuple[tuple[object, ...], Tensor | list[Tensor]]] = {}
        self._workspace: dict[str, Tensor] = {}

    def __len__(self) -> int:
        return len(self.convs)

    def _weights(self, conv: nn.Conv2d, x: Tensor) -> Tensor | list[Tensor]:
        w = conv.weight
        t = self.tile
        tiles = x.shape[0] * -(-x.shape[2] // t) * -(-x.shape[3] // t)
        cpu32 = x.device.type == "cpu" and x.dtype == torch.float32 and tiles > 0
        route = gemm_route() if cpu32 and conv.groups == 1 else "bmm"
        # A oneDNN pack is laid out for the tile count (one made for another count measured
        # several times slower), so it is keyed by it; one entry per conv bounds the memory.
        key = (w.data_ptr(), w._version, w.dtype, w.device, route, tiles * (route == "onednn"))
        hit = self._cache.get(id(conv))
        if hit is None or hit[0] != key:
            self._cache.pop(id(conv), None)  # free the old one before building the new one
            with torch.no_grad():
                u = winograd_weight(w, t)
                hit = (key, (pack_weight(u, tiles) or u) if route == "onednn" else u)
            self._cache[id(conv)] = hit
        return hit[1]

    def _forward(self, conv: nn.Conv2d, x: Tensor) -> Tensor:
        if torch.is_grad_enabled() and (x.requires_grad or conv.weight.requires_grad):
            raise RuntimeError("winograd conv is inference-only: run under torch.no_grad()")
        return winograd_conv2d(
            x, self._weights(conv, x), conv.bias, tile=self.tile, workspace=self._workspace
        )

    def clear(self) -> None:
        """Drop the cached transformed weights and scratch buffers (rebuilt on the next use)."""
        self._cache.clear()
        self._workspace.clear()

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
