"""Pixels <-> tensors: reading and writing images, the raindrop mask M, crops.

The lowest floor of the kit: imports nothing from the rest of ``agan``.
Conventions: numpy images are HxWx3 uint8 RGB; tensors are float32 (3, H, W) or (B, 3, H, W) in [0, 1].
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from agan.atomic import atomic_path

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageReadError",
    "crop_to_multiple",
    "difference_mask",
    "list_images",
    "read_image",
    "read_image_alpha",
    "to_tensor",
    "to_uint8",
    "write_image",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class ImageReadError(ValueError):
    """An image could not be read; the message names the file."""


def list_images(folder: str | os.PathLike) -> list[Path]:
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read any common image as HxWx3 uint8 RGB (EXIF orientation applied; grey, palette, 16-bit,
    CMYK converted; transparency dropped). Raises :class:`ImageReadError` naming the file."""
    return read_image_alpha(path)[0]


def read_image_alpha(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None]:
    """Like :func:`read_image`, plus the alpha channel kept aside: ``(HxWx3 uint8 RGB, HxW uint8 alpha)``
    for files with transparency (RGBA, LA, PA, palette or grey with a transparent colour), else
    ``(rgb, None)``. Both have the EXIF orientation applied."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float64)
                # 16-bit modes scale by 65535; plain 32-bit "I" (older Pillow for 16-bit PNG) by its range
                full = 65535.0 if (im.mode.startswith("I;16") or arr.max() > 255) else 255.0
                arr = np.clip(arr / full * 255.0 + 0.5, 0, 255).astype(np.uint8)
                arr = np.repeat(arr[..., None], 3, axis=2)
                return np.ascontiguousarray(arr), None
            alpha = None
            if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
                rgba = im.convert("RGBA")
                alpha = np.asarray(rgba, dtype=np.uint8)[..., 3].copy()  # (H, W)
                im = rgba
            if im.mode != "RGB":
                im = im.convert("RGB")
            return np.asarray(im, dtype=np.uint8).copy(), alpha
    except FileNotFoundError:
        raise ImageReadError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageReadError(f"{path}: is a folder, not an image file") from None
    except UnidentifiedImageError:
        raise ImageReadError(f"{path}: not an image file (or an unsupported format)") from None
    except Image.DecompressionBombError as e:
        raise ImageReadError(f"{path}: image too large to read safely ({e})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ImageReadError(f"{path}: unreadable image ({reason})") from None


def write_image(path: str | os.PathLike, image: np.ndarray | Tensor, overwrite: bool = True,
                **save_kwargs) -> Path:
    """Write an RGB (HxWx3), RGBA (HxWx4) or grey (HxW) image atomically (temp file + rename, usual
    permissions); format from the extension;
    ``save_kwargs`` go to PIL's ``Image.save`` (e.g. ``quality=95`` for JPEG)."""
    path = Path(path)
    if not overwrite and path.exists():
        raise FileExistsError(f"{path}: exists (use --overwrite to replace it)")
    arr = to_uint8(image) if isinstance(image, Tensor) else np.asarray(image)
    with atomic_path(path, suffix=path.suffix or ".png") as tmp:
        fmt = Image.registered_extensions().get(path.suffix.lower(), "PNG")
        Image.fromarray(arr).save(tmp, format=fmt, **save_kwargs)
    return path


def to_tensor(image: np.ndarray) -> Tensor:
    """HxWx3 uint8 -> (3, H, W) float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)


def to_uint8(t: Tensor) -> np.ndarray:
    """(3, H, W) or (1, 3, H, W) float in [0, 1] -> HxWx3 uint8 (clipped and rounded)."""
    if t.dim() == 4:
        if t.shape[0] != 1:
            raise ValueError(f"expected one image, got a batch of {t.shape[0]}")
        t = t[0]
    return t.detach().float().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()


def difference_mask(rain: Tensor | np.ndarray, clean: Tensor | np.ndarray, threshold: int = 30,
                    dilate: bool = False) -> Tensor:
    """The raindrop mask M: 1 where |rain - clean| >= threshold/255 in any channel.

    The paper's rule for aligned pairs: docs/paper.md#raindrop-mask.

    Accepts float tensors in [0, 1] of shape (..., 3, H, W) or uint8 arrays HxWx3.
    Returns a float tensor (..., 1, H, W) of 0/1; ``dilate`` applies a 3x3 max filter.
    """
    if isinstance(rain, np.ndarray):
        diff = np.abs(rain.astype(np.int16) - np.asarray(clean).astype(np.int16)).max(axis=-1)
        m = torch.from_numpy((diff >= threshold).astype(np.float32))[None]  # (1, H, W)
    else:
        # compare in 0..255 units; round to avoid float noise on uint8-derived inputs
        diff = ((rain - clean).abs() * 255.0).round().amax(dim=-3, keepdim=True)
        m = (diff >= threshold).float()
    if dilate:
        squeeze = m.dim() == 3
        m4 = m[None] if squeeze else m.reshape(-1, 1, *m.shape[-2:])
        m4 = torch.nn.functional.max_pool2d(m4, 3, stride=1, padding=1)
        m = m4[0] if squeeze else m4.reshape(m.shape)
    return m


def crop_to_multiple(image: np.ndarray | Tensor, multiple: int = 4):
    """Top-left crop so that H and W are multiples of ``multiple`` (the authors' protocol)."""
    if isinstance(image, np.ndarray):
        h, w = image.shape[:2]
        return image[: h - h % multiple, : w - w % multiple]
    h, w = image.shape[-2:]
    return image[..., : h - h % multiple, : w - w % multiple]
