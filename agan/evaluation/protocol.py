"""The authors' evaluation protocol and its switches: PSNR / SSIM on the Y channel.

References
    Qian et al., "Attentive Generative Adversarial Network for Raindrop Removal from A Single Image",
    CVPR 2018, Sec. 6 and Table 1 (PSNR / SSIM on Raindrop test_a); the released evaluation script
    (protocol only, summarised in docs/paper.md#evaluation-protocol; no code copied).
    Wang, Bovik, Sheikh, Simoncelli, "Image quality assessment: from error visibility to structural
    similarity", IEEE TIP 2004 (SSIM).

Protocol (defaults = the authors' protocol, with clip-and-round instead of their unclipped cast):
    1. top-left crop input and ground truth to a multiple of 4 (the generator needs it);
    2. run G on the cropped input; O (float, not squashed to [0, 1]) -> x255 -> uint8
       ``cast="clip"``  clip to [0, 1], x255, round half to even (the kit's default)
       ``cast="wrap"``  the released script: x255 and a C-style cast without clipping, so 1.01 -> 257 -> 1
    3. Y channel of both uint8 images, as the libraries return it on uint8 input (rounded to integers):
       ``color="y"``        full range Y = 0.299 R + 0.587 G + 0.114 B (OpenCV's YCrCb, 14-bit fixed point)
       ``color="y-matlab"`` MATLAB's rgb2ycbcr Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 (16..235)
       ``color="rgb"``      no conversion; PSNR over all channels, SSIM averaged over channels
    4. PSNR with data range 255; SSIM with scikit-image's defaults (7x7 uniform window, K1 0.01,
       K2 0.03, sample covariance) and data range 255; mean over images.

Folders of pairs are read by ``agan.data.layout``; ``agan.evaluation.evaluate`` scores folders and models,
``agan.evaluation.results`` holds the scores.
"""

from __future__ import annotations

import math

import numpy as np

from agan.images import crop_to_multiple

__all__ = ["CASTS", "COLORS", "psnr", "rgb_to_y", "score_pair", "ssim", "to_uint8_output"]

CASTS = ("clip", "wrap")
COLORS = ("y", "y-matlab", "rgb")


# ----------------------------------------------------------------------------------------------
# Pixels: output cast and Y channel
# ----------------------------------------------------------------------------------------------


def to_uint8_output(x, cast: str = "clip") -> np.ndarray:
    """Generator output O (float HxWx3, nominally [0, 1]) -> uint8 HxWx3.

    ``cast="clip"``: clip to [0, 1], x255, round (half to even, like ``np.rint``).
    ``cast="wrap"``: the authors' script, ``(x * 255).astype(np.uint8)`` without clipping. Converting an
    out-of-range float to uint8 is undefined behaviour in C (numpy's result depends on the platform), so
    the wrap-around that their x86 run produced is emulated explicitly and deterministically: truncate
    toward zero (a C cast), then modulo 256, e.g. 1.01 -> 257.55 -> 257 -> 1 and -0.01 -> -2.55 -> -2 -> 254.
    The product x * 255 is taken in the input's float precision (float32 for a network output), as theirs.
    NaN becomes 0 in both modes. A uint8 input is returned unchanged.
    """
    if cast not in CASTS:
        raise ValueError(f"cast must be one of {CASTS}, got {cast!r}")
    x = _as_hwc_numpy(x)
    if x.dtype == np.uint8:
        return x
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    x = np.nan_to_num(x, nan=0.0, posinf=np.finfo(x.dtype).max, neginf=-np.finfo(x.dtype).max)
    if cast == "clip":
        return np.rint(np.clip(x, 0.0, 1.0) * x.dtype.type(255)).astype(np.uint8)
    scaled = x * x.dtype.type(255)  # same precision as the network's output
    scaled = np.clip(scaled, -(2.0 ** 62), 2.0 ** 62)  # keep the int64 conversion defined
    return (np.trunc(scaled).astype(np.int64) % 256).astype(np.uint8)


def rgb_to_y(img: np.ndarray, mode: str = "full", quantize: bool = False) -> np.ndarray:
    """Luma of an RGB image HxWx3 with values on the 0..255 scale -> float64 HxW.

    ``mode="full"``:   Y = 0.299 R + 0.587 G + 0.114 B (OpenCV COLOR_RGB2YCrCb, range 0..255).
    ``mode="matlab"``: Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 (MATLAB rgb2ycbcr, range 16..235).
    ``quantize=True`` rounds as those libraries do on uint8 images (the authors' protocol): OpenCV's
    14-bit fixed point ``(4899 R + 9617 G + 1868 B + 8192) >> 14``; MATLAB's round-half-away.
    """
    a = np.asarray(img)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"expected an RGB image of shape HxWx3, got {a.shape}")
    if mode == "full":
        if quantize:
            q = np.rint(a).astype(np.int64) if not np.issubdtype(a.dtype, np.integer) else a.astype(np.int64)
            y = (4899 * q[..., 0] + 9617 * q[..., 1] + 1868 * q[..., 2] + (1 << 13)) >> 14
            return y.astype(np.float64)
        a = a.astype(np.float64)
        return 0.299 * a[..., 0] + 0.587 * a[..., 1] + 0.114 * a[..., 2]
    if mode == "matlab":
        a = a.astype(np.float64)
        y = 16.0 + (65.481 * a[..., 0] + 128.553 * a[..., 1] + 24.966 * a[..., 2]) / 255.0
        return np.floor(y + 0.5) if quantize else y
    raise ValueError(f"mode must be 'full' or 'matlab', got {mode!r}")


# ----------------------------------------------------------------------------------------------
# Metrics
# ----------------------------------------------------------------------------------------------


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """10 log10(data_range^2 / MSE) over all elements; inf for identical images."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(data_range ** 2 / mse)


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """SSIM with scikit-image's defaults (7x7 uniform window, K1 0.01, K2 0.03, sample covariance).
    HxW images, or HxWx3 (mean over channels)."""
    from skimage.metrics import structural_similarity

    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if min(a.shape[:2]) < 7:
        raise ValueError(f"SSIM needs images of at least 7x7 pixels, got {a.shape[0]}x{a.shape[1]}")
    return float(structural_similarity(a, b, win_size=7, data_range=data_range,
                                       channel_axis=2 if a.ndim == 3 else None))


def _as_hwc_numpy(x) -> np.ndarray:
    """numpy HxWx3 as is; torch (3, H, W) or (1, 3, H, W) -> HxWx3 numpy (same dtype family)."""
    if isinstance(x, np.ndarray):
        return x
    try:
        import torch
    except ImportError:  # pragma: no cover
        torch = None
    if torch is not None and isinstance(x, torch.Tensor):
        t = x.detach()
        if t.dim() == 4:
            if t.shape[0] != 1:
                raise ValueError(f"expected one image, got a batch of {t.shape[0]}")
            t = t[0]
        if t.dim() != 3 or t.shape[0] != 3:
            raise ValueError(f"expected an image tensor (3, H, W), got {tuple(x.shape)}")
        t = t.permute(1, 2, 0).cpu()
        return t.numpy() if t.dtype in (torch.uint8, torch.float32, torch.float64) else t.float().numpy()
    return np.asarray(x)


def score_pair(output, gt, cast: str = "clip", color: str = "y") -> tuple[float, float]:
    """(PSNR, SSIM) of one output against its ground truth, the authors' protocol (module docstring).

    ``output``: float HxWx3 in [0, 1] (raw generator output; cast to uint8 per ``cast``) or uint8 HxWx3;
    torch (3, H, W) tensors are accepted too. ``gt``: uint8 HxWx3 (a float one is clip-rounded).
    Both are top-left cropped to a multiple of 4 first and must then have the same size.
    """
    if color not in COLORS:
        raise ValueError(f"color must be one of {COLORS}, got {color!r}")
    out = crop_to_multiple(to_uint8_output(output, cast))
    ref = crop_to_multiple(to_uint8_output(gt, "clip"))
    if out.shape != ref.shape:
        raise ValueError(f"output and ground truth differ in size after cropping to a multiple of 4: "
                         f"{out.shape[1]}x{out.shape[0]} vs {ref.shape[1]}x{ref.shape[0]} (WxH)")
    if out.ndim != 3 or out.shape[2] != 3:
        raise ValueError(f"expected RGB images HxWx3, got {out.shape}")
    if color == "rgb":
        a, b = out.astype(np.float64), ref.astype(np.float64)
    else:
        mode = "full" if color == "y" else "matlab"
        a, b = rgb_to_y(out, mode, quantize=True), rgb_to_y(ref, mode, quantize=True)
    return psnr(a, b), ssim(a, b)
