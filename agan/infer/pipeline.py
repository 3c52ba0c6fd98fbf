"""Derain any image: pad, tile, run G, return O and the attention maps A_1..A_N (weights:
``agan.infer.load``; how G's change is applied: ``agan.infer.settings``).

Reference: Qian et al., CVPR 2018, Sec. 4 (G: I -> A_1..A_N -> O). The authors' script crops every
image to a multiple of 4 (pixels lost); here the image is reflect-padded at the bottom/right to a
multiple of 4 and the result cropped back, so every pixel is kept.

G itself runs by ``forward(G, x)``: by default :func:`plain_forward`, the module's own ``forward`` (the code
in ``agan.models.generator``), in fp32 or under autocast. ``agan derain`` passes a faster one from
``agan.accel`` (same function, organised for speed); nothing here imports it.

Large images are processed in overlapping tiles (memory stays bounded by one tile):
    * tiles are ``tile`` x ``tile`` pixels (a multiple of 4) and start on multiples of 4, so the stride-2
      layers of G see the same pixel phase as on the whole image; far from a seam a tile's output equals
      the untiled one up to the receptive field's reach;
    * neighbouring tiles overlap by at least ``overlap`` pixels and are blended with cosine ramps
      (weights > 0 everywhere, normalised by their sum), so seams are invisible;
    * ``tile=None`` picks tiles of 512 for images larger than 1024 x 1024, else runs the whole image;
      ``tile=0`` never tiles.

    from agan.infer import derain, load_generator
    # weights: a kit checkpoint, the authors' gen.pkl, a state dict or a .safetensors release
    G, settings = load_generator("runs/cpu/checkpoint.pt")
    out, maps = derain(Image.open("rain.png"), model=G, settings=settings)  # PIL -> PIL; maps: HxW arrays
    out, maps = derain(Image.open("rain.png"))           # the kit's default model (agan/weights/)
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from agan import pick_device
from agan.infer.load import Loaded, load_generator
from agan.infer.settings import PAPER, DerainSettings
from agan.infer.shipped import announce_default, default_weights
from agan.models.generator import GeneratorOutput
from agan.precision import autocast

__all__ = ["AUTO_TILE", "AUTO_TILE_PIXELS", "Forward", "derain", "derain_tensor", "plain_forward"]

AUTO_TILE_PIXELS = 1024 * 1024  # images larger than this are tiled when tile=None ...
AUTO_TILE = 512  # ... in tiles of this size

Forward = Callable[[nn.Module, Tensor], "GeneratorOutput | Tensor"]  # (G, (B, 3, H, W)) -> G's output


# ----------------------------------------------------------------------------------------------
# Running the generator on one (padded) tensor, and on tiles
# ----------------------------------------------------------------------------------------------


def plain_forward(model: nn.Module, x: Tensor, precision: str = "fp32") -> GeneratorOutput | Tensor:
    """``model(x)`` under inference mode: fp32, or torch.autocast for bf16 / fp16 / auto (bf16 on CPUs with
    native bf16, fp16 on CUDA, else fp32: ``agan.precision``)."""
    if precision == "int8":
        raise ValueError("precision int8 is an accelerated forward: derain(..., forward=agan.accel."
                         "pick_forward(G, 'int8', 'cpu')), or agan derain --precision int8")
    with torch.inference_mode(), autocast(x.device, precision):
        return model(x)


def _forward(model: nn.Module, x: Tensor, forward: Forward) -> tuple[Tensor, list[Tensor]]:
    """G on (B, 3, H, W), H and W multiples of 4 -> (O, [A_1..A_N]) in float32."""
    out = forward(model, x)
    if isinstance(out, Tensor):  # baselines (Eigen13, Pix2Pix U-Net) return O alone
        return out.float(), []
    return out.O.float(), [a.float() for a in out.attention]


def _pad4(x: Tensor) -> Tensor:
    """Reflect-pad bottom/right to a multiple of 4 (replicate when the image is too small to reflect)."""
    h, w = x.shape[-2:]
    ph, pw = -h % 4, -w % 4
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if (h > ph and w > pw) else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def _run_padded(model, x: Tensor, device: torch.device, forward: Forward) -> tuple[Tensor, list[Tensor]]:
    """G on a (B, 3, h, w) crop of any size: pad to 4, run on ``device``, crop back, return on x's device."""
    h, w = x.shape[-2:]
    O, maps = _forward(model, _pad4(x.to(device)), forward)
    return O[..., :h, :w].to(x.device), [a[..., :h, :w].to(x.device) for a in maps]


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    """Tile starts along one axis: multiples of 4, consecutive tiles overlapping by >= overlap,
    the last one reaching the end."""
    if length <= tile:
        return [0]
    stride = max(4, (tile - overlap) // 4 * 4)
    starts = list(range(0, length - tile, stride))
    last = (length - tile) // 4 * 4  # may leave < 4 pixels; that tile grows to reach the end
    if not starts or starts[-1] < last:
        starts.append(last)
    return starts


def _ramp(n: int, overlap: int, left: bool, right: bool) -> Tensor:
    """1-D blend weights of a tile of n pixels: cosine ramps (> 0) over ``overlap`` pixels on sides
    that have a neighbour, 1 elsewhere."""
    w = torch.ones(n)
    k = min(overlap, n // 2)
    if k > 0:
        r = 0.5 - 0.5 * torch.cos(math.pi * (torch.arange(k) + 0.5) / k)  # (k,) in (0, 1)
        if left:
            w[:k] = torch.minimum(w[:k], r)
        if right:
            w[n - k:] = torch.minimum(w[n - k:], r.flip(0))
    return w


def _gaussian(t: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of (B, C, H, W), reflect-padded (replicate when too small to reflect).

    Each pass is a weighted sum of the 2r + 1 shifted views of the padded tensor, accumulated in place: a
    depthwise ``conv2d`` unfolds the taps (3 x (2r + 1) values per pixel), more memory and time for the same
    sums (docs/performance.md)."""
    r = max(1, math.ceil(3 * sigma))
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=torch.float64) / sigma) ** 2)
    k = (k / k.sum()).tolist()  # 2r + 1 weights
    mode = "reflect" if min(t.shape[-2:]) > r else "replicate"
    for dim, pad in ((-1, (r, r, 0, 0)), (-2, (0, 0, r, r))):  # along W, then along H
        n = t.shape[dim]
        p = F.pad(t, pad, mode=mode)  # (B, C, H, W + 2r) | (B, C, H + 2r, W)
        t = p.narrow(dim, 0, n) * k[0]
        for i in range(1, 2 * r + 1):
            t.add_(p.narrow(dim, i, n), alpha=k[i])
        del p
    return t


def _shares_memory(a: Tensor, b: Tensor) -> bool:
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


def derain_tensor(model, x: Tensor, tile: int | None = None, overlap: int = 32, precision: str = "fp32",
                  device: str | torch.device | None = None, settings: DerainSettings = PAPER,
                  forward: Forward | None = None) -> tuple[Tensor, list[Tensor]]:
    """G on a batch (B, 3, H, W) in [0, 1] of any size -> (O, [A_1..A_N]) at (B, ., H, W) on x's device.

    ``tile``: None = automatic (tiles of 512 above 1024 x 1024 pixels), 0 = whole image, N = tiles of N
    (rounded up to a multiple of 4) overlapping by ``overlap`` pixels with blended seams.
    ``settings`` (``agan.infer.settings``; default: the paper's O = G(I)): an image larger than
    ``settings.size`` is reduced to it (I_s), G runs there, and only G's change is enlarged back, so detail
    finer than that scale stays the input's. With ``smooth`` and ``blend="attention"`` the change is first
    smoothed and weighted by the last attention map:
        change = G(I_s) - I_s,  change <- blur(change),  change <- clip(A_N, 0, 1) * change,
        O = I + up(change),     A_t = up(A_t)
    ``forward(G, x)`` runs G (default: :func:`plain_forward` at ``precision``).
    """
    forward = functools.partial(plain_forward, precision=precision) if forward is None else forward
    H, W = x.shape[-2:]
    hs, ws = settings.run_hw(H, W)
    reduce = (hs, ws) != (H, W)
    if not reduce and settings.smooth == 0 and settings.blend == "none":
        return _derain_full(model, x, tile, overlap, forward, device)
    # (B, 3, hs, ws)
    small = F.interpolate(x, (hs, ws), mode="bilinear", antialias=True, align_corners=False) if reduce else x
    O, maps = _derain_full(model, small, tile, overlap, forward, device)
    # full-resolution tensors are updated in place below (each is this call's own; at 4K every copy is
    # 100 MB); O and the maps are inference tensors, so the updates run in inference mode too
    with torch.inference_mode():
        if _shares_memory(O, small) or _shares_memory(O, x):  # a model that returns (a view of) its input
            O = O.clone()
        change = O.sub_(small)  # (B, 3, hs, ws): G's change
        if settings.smooth > 0:
            change = _gaussian(change, settings.smooth)
        if settings.blend == "attention" and maps:
            change.mul_(maps[-1].clamp(0, 1))  # (B, 1, hs, ws) broadcast over the colours
        if reduce:
            up = functools.partial(F.interpolate, size=(H, W), mode="bilinear", align_corners=False)
            change, maps = up(change), [up(a) for a in maps]
        return change.add_(x), maps


def _derain_full(model, x: Tensor, tile: int | None, overlap: int, forward: Forward,
                 device: str | torch.device | None) -> tuple[Tensor, list[Tensor]]:
    device = next(model.parameters()).device if device is None else (
        pick_device(device) if isinstance(device, str) else device)
    b, _, H, W = x.shape
    if tile is None:
        tile = AUTO_TILE if H * W > AUTO_TILE_PIXELS else 0
    if tile < 0 or overlap < 0:
        raise ValueError(f"tile and overlap must be >= 0, got tile={tile}, overlap={overlap}")
    tile = -(-tile // 4) * 4
    with torch.inference_mode():
        if tile == 0 or (H <= tile and W <= tile):
            return _run_padded(model, x, device, forward)
        if overlap >= tile // 2:
            raise ValueError(f"overlap ({overlap}) must be less than half the tile size ({tile})")
        ys, xs = _starts(H, tile, overlap), _starts(W, tile, overlap)
        acc = torch.zeros((b, 3, H, W), dtype=torch.float32, device=x.device)  # sum of w * O
        wsum = torch.zeros((1, 1, H, W), dtype=torch.float32, device=x.device)  # sum of w
        acc_maps: list[Tensor] | None = None
        for i, y0 in enumerate(ys):
            y1 = H if i == len(ys) - 1 else min(H, y0 + tile)
            wy = _ramp(y1 - y0, overlap, i > 0, i < len(ys) - 1)
            for j, x0 in enumerate(xs):
                x1 = W if j == len(xs) - 1 else min(W, x0 + tile)
                wx = _ramp(x1 - x0, overlap, j > 0, j < len(xs) - 1)
                O, maps = _run_padded(model, x[..., y0:y1, x0:x1], device, forward)
                wt = (wy[:, None] * wx[None, :]).to(x.device)  # (h, w)
                acc[..., y0:y1, x0:x1] += O * wt
                wsum[..., y0:y1, x0:x1] += wt
                if acc_maps is None:
                    acc_maps = [torch.zeros((b, 1, H, W), dtype=torch.float32, device=x.device) for _ in maps]
                for a, m in zip(acc_maps, maps):
                    a[..., y0:y1, x0:x1] += m * wt
        return acc.div_(wsum), [a.div_(wsum) for a in (acc_maps or [])]


# ----------------------------------------------------------------------------------------------
# derain(): PIL / numpy / tensor in, the same kind out
# ----------------------------------------------------------------------------------------------

_CACHE: dict[tuple, Loaded] = {}


def _model_for(model, weights, device) -> tuple[nn.Module, DerainSettings | None]:
    """(G, the settings saved with it; None for a model given as a module)."""
    if model is not None and weights is not None:
        raise ValueError("give either model or weights, not both")
    if isinstance(model, (str, os.PathLike)):
        model, weights = None, model
    if isinstance(model, Loaded):  # load_generator's (G, settings), passed whole
        return model.model, model.settings
    if model is not None:
        return model, None
    if weights is None:  # neither: the kit's shipped model (agan.infer.shipped), said once per process
        weights = default_weights()
        announce_default(weights)
    p = Path(weights).resolve()
    key = (str(p), p.stat().st_mtime_ns if p.exists() else 0,
           str(pick_device(device) if isinstance(device, str) else device))
    if key not in _CACHE:  # notebooks call derain(img, weights=...) repeatedly: load once
        _CACHE.clear()
        _CACHE[key] = load_generator(p, device)
    return _CACHE[key]


def _to_batch(image) -> tuple[Tensor, str, dict]:
    """image -> ((B, 3, H, W) float32 in [0, 1] on its own device, kind, info to convert back)."""
    from PIL import Image

    if isinstance(image, Image.Image):
        arr = np.asarray(image.convert("RGB"), dtype=np.uint8)
        return torch.from_numpy(arr.copy()).permute(2, 0, 1)[None].float() / 255.0, "pil", {}
    if isinstance(image, np.ndarray):
        a = image
        if a.ndim == 2:
            a = np.repeat(a[..., None], 3, axis=2)
        if a.ndim != 3 or a.shape[2] not in (3, 4):
            raise ValueError(f"expected an image array HxWx3 (or HxW, HxWx4), got shape {image.shape}")
        a = a[..., :3]
        if a.dtype == np.uint8:
            t = (torch.from_numpy(np.require(a, requirements=["C", "W"])).permute(2, 0, 1)[None].float()
                 / 255.0)
        elif np.issubdtype(a.dtype, np.floating):
            # read-only: copied
            t = torch.from_numpy(np.require(a, np.float32, ["C", "W"])).permute(2, 0, 1)[None]
        else:
            raise ValueError(f"expected a uint8 or float image array, got dtype {a.dtype}")
        return t, "numpy", {"dtype": a.dtype}
    if isinstance(image, Tensor):
        t = image
        if t.dim() not in (3, 4) or t.shape[-3] != 3:
            raise ValueError(f"expected an image tensor (3, H, W) or (B, 3, H, W), got {tuple(image.shape)}")
        info = {"dim": t.dim(), "dtype": t.dtype, "device": t.device}
        t = t[None] if t.dim() == 3 else t
        t = t.float() / 255.0 if t.dtype == torch.uint8 else t.float()
        return t, "tensor", info
    raise ValueError(f"derain takes a PIL image, a numpy array or a torch tensor, got {type(image).__name__}")


def derain(image, model=None, weights=None, device: str | torch.device = "auto", tile: int | None = None,
           overlap: int = 32, precision: str = "fp32", clip: bool = True,
           settings: DerainSettings | None = None, size: int | None = None, smooth: float | None = None,
           blend: str | None = None, forward: Forward | None = None):
    """Remove raindrops from one image -> ``(output, [A_1, ..., A_N])``.

    image: PIL image, numpy HxWx3 (uint8, or float in [0, 1]), or tensor (3, H, W) / (B, 3, H, W)
        (uint8 or float in [0, 1]). Any size: padded to a multiple of 4 and cropped back.
    model / weights: a Generator, or a checkpoint file (kit checkpoint, the authors' gen.pkl, a state
        dict, a kit release .safetensors; loaded once and cached). Neither: the kit's default model
        (``agan/weights/agan-synthetic.safetensors``, trained on synthetic drops only; said once on stderr).
    settings: how G's change is applied (``agan.infer.settings``); None = the settings saved with ``weights``
        (or the default model), and for a ``model`` given as a module the paper's O = G(I). ``size`` /
        ``smooth`` / ``blend`` override single fields of it.
    Returns the output as the input's kind (PIL -> PIL RGB; uint8 -> uint8; float -> float32, clipped to
    [0, 1] unless ``clip=False``; tensor -> tensor on the input's device, same dims) and the attention maps
    A_t at the input size (float32, unbounded): HxW numpy arrays for PIL / numpy input, tensors shaped like
    the input with one channel for tensors. Variant "A" and the baselines (Eigen13, Pix2Pix) have no maps.
    ``tile`` / ``overlap``: see :func:`derain_tensor`. G runs by its own ``forward`` (:func:`plain_forward`)
    at ``precision``: fp32 (default) | bf16 | fp16 (autocast) | auto (bf16 on CPUs with native bf16, fp16 on
    CUDA, else fp32); ``forward``: another way to run it, e.g. ``agan.accel.pick_forward(G, "int8", "cpu")``.
    """
    from PIL import Image

    given = model is not None and not isinstance(model, (str, os.PathLike))
    model, saved = _model_for(model, weights, device)
    settings = (settings or saved or PAPER).but(size, smooth, blend)
    if given and device == "auto":
        dev = next(model.parameters()).device  # a model the caller placed stays where it is
    else:
        dev = pick_device(device) if isinstance(device, str) else device
        if next(model.parameters()).device != dev:
            model = model.to(dev)
    x, kind, info = _to_batch(image)
    was_training = model.training
    model.eval()
    try:
        O, maps = derain_tensor(model, x.cpu() if kind != "tensor" else x, tile=tile, overlap=overlap,
                                precision=precision, device=dev, settings=settings, forward=forward)
    finally:
        model.train(was_training)
    if kind == "tensor":
        if info["dtype"] == torch.uint8:
            O = O.clamp(0, 1).mul(255).round().to(torch.uint8)
        elif clip:
            O = O.clamp(0, 1)
        O = O.to(info["device"])
        maps = [m.to(info["device"]) for m in maps]
        if info["dim"] == 3:
            O, maps = O[0], [m[0] for m in maps]
        return O, maps
    o = O[0].permute(1, 2, 0).cpu().numpy()  # (H, W, 3)
    maps_np = [m[0, 0].cpu().numpy() for m in maps]  # N x (H, W)
    if kind == "pil" or info.get("dtype") == np.uint8:
        o8 = np.rint(np.clip(o, 0, 1) * 255).astype(np.uint8)
        return (Image.fromarray(o8) if kind == "pil" else o8), maps_np
    return (np.clip(o, 0, 1) if clip else o).astype(np.float32), maps_np
