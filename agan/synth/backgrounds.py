"""Clean backgrounds for the raindrop renderer: outdoor photos bundled with the package
(``agan/assets/backgrounds``, licences in its README.md), scikit-image's bundled colour photos, procedural
street scenes (a cached bank), or a folder of the user's photos; random crops (``view``: the fraction of
the photo in view) with flips and colour jitter. Item i of a seeded stream depends only on (seed, i).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from functools import cache, lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["BUNDLED_DIR", "MIX_BUNDLED", "MIX_PROCEDURAL", "MIX_SKIMAGE", "N_PROCEDURAL", "SKIMAGE_PHOTOS",
           "BackgroundSource", "backgrounds", "bundled_photos", "procedural_scene"]


# outdoor photographs shipped in this package (package data; see the folder's README.md for licences)
BUNDLED_DIR = Path(__file__).resolve().parents[1] / "assets" / "backgrounds"
BUNDLED_EXTENSIONS = (".jpg", ".jpeg", ".png")

# the default mix of BackgroundSource(): fractions of bundled photos, scikit-image photos, procedural scenes
MIX_BUNDLED, MIX_SKIMAGE, MIX_PROCEDURAL = 0.6, 0.2, 0.2


@cache
def _bundled_files(folder: Path) -> tuple[Path, ...]:
    """The bundled photos in ``folder`` (sorted); warns once when there are none (a trimmed install)."""
    files = ()
    if folder.is_dir():
        files = tuple(sorted(p for p in folder.iterdir()
                             if p.is_file() and p.suffix.lower() in BUNDLED_EXTENSIONS))
    if not files:
        warnings.warn(f"{folder}: the bundled background photos are missing (a trimmed install?); the "
                      "default backgrounds fall back to scikit-image's photos + procedural scenes",
                      stacklevel=3)
    return files


def bundled_photos() -> tuple[str, ...]:
    """File names of the bundled background photos (empty, with a warning, if the folder is missing)."""
    return tuple(p.name for p in _bundled_files(BUNDLED_DIR))


@lru_cache(maxsize=None)
def _bundled_photo(path: Path) -> np.ndarray:
    from agan.images import read_image

    return read_image(path)


# colour photographs shipped inside scikit-image (no download needed)
SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "motorcycle")


@cache
def _skimage_photo(name: str) -> np.ndarray | None:
    try:
        import skimage.data as skd

        img = skd.stereo_motorcycle()[0] if name == "motorcycle" else getattr(skd, name)()
    except Exception:  # noqa: BLE001  (a trimmed scikit-image install: use procedural scenes)
        return None
    img = np.asarray(img)
    return img[..., :3].astype(np.uint8) if img.ndim == 3 else None


def _noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Smooth value noise in [0, 1], (h, w) float32: random grid upsampled bicubically."""
    ch, cw = max(2, int(cells * h / max(h, w)) + 1), max(2, int(cells * w / max(h, w)) + 1)
    small = Image.fromarray(rng.random((ch, cw)).astype(np.float32), mode="F")
    return np.clip(np.asarray(small.resize((w, h), Image.BICUBIC)), 0, 1)


def _fractal(rng: np.random.Generator, h: int, w: int, base: int, octaves: int = 4) -> np.ndarray:
    """Multi-octave value noise in about [0, 1]: ``base`` cells, each octave twice finer, half as strong."""
    out, amp, total = np.zeros((h, w), np.float32), 1.0, 0.0
    for o in range(octaves):
        out += amp * _noise(rng, h, w, base * 2 ** o)
        total += amp
        amp *= 0.5
    return out / total


def procedural_scene(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A street-like scene: sky, buildings with windows, trees, poles, cars, road and textured ground.
    (h, w, 3) uint8.  Cheap and cartoonish, but full of edges and colours for the drops to refract."""
    yy = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    y1 = yy[..., 0]
    xx = np.arange(w)[None, :]
    horizon = rng.uniform(0.35, 0.7)
    hy = int(horizon * h)
    if rng.random() < 0.6:  # blue sky
        sky_top = np.array([0.35, 0.55, 0.85], np.float32) * rng.uniform(0.8, 1.1)
    else:  # overcast
        sky_top = np.full(3, rng.uniform(0.55, 0.85), np.float32) * np.array([0.97, 0.99, 1.03], np.float32)
    sky_bot = np.clip(sky_top + rng.uniform(0.1, 0.3), 0, 1).astype(np.float32)
    img = sky_top + (sky_bot - sky_top) * np.clip(yy / horizon, 0, 1)  # (h, 1, 3)
    img = np.broadcast_to(img, (h, w, 3)).copy()
    img += (0.12 * (_fractal(rng, h, w, 3, 3) - 0.5))[..., None]  # clouds
    for _ in range(rng.integers(2, 9)):  # buildings with a window grid
        bx0, bw = int(rng.uniform(-0.1, 0.95) * w), int(rng.uniform(0.08, 0.4) * w)
        top = int(rng.uniform(0.02, horizon - 0.05) * h)
        col = (rng.uniform(0.3, 0.9) * (1 + rng.uniform(-0.15, 0.15, 3))).astype(np.float32)
        x0, x1 = min(max(bx0, 0), w), min(max(bx0 + bw, 0), w)
        if x1 > x0 and hy > top:
            img[top:hy, x0:x1] = col * (0.85 + 0.3 * _noise(rng, hy - top, x1 - x0, 6)[..., None])
        sx, sy = max(int(rng.uniform(0.015, 0.05) * w), 3), max(int(rng.uniform(0.025, 0.07) * h), 3)
        yy_b = np.arange(top, hy)[:, None]
        win = ((xx - bx0) % sx < sx * 0.55) & ((yy_b - top) % sy < sy * 0.5) & (xx >= bx0) & (xx < bx0 + bw)
        img[top:hy][win] = rng.uniform(0.05, 0.5) + 0.25 * rng.random(3).astype(np.float32)
    kind = rng.integers(3)  # ground: grass, asphalt/paving, earth
    g = [np.array([0.3, 0.5, 0.15]), np.array([0.45, 0.45, 0.45]), np.array([0.5, 0.38, 0.25])][kind]
    g = (g * rng.uniform(0.7, 1.2) * (1 + rng.uniform(-0.1, 0.1, 3))).astype(np.float32)
    tex = _fractal(rng, h, w, 16, 4)[..., None]
    depth = np.clip((yy - horizon) / max(1 - horizon, 1e-3), 0, 1)
    img[hy:] = (g * (0.55 + 0.9 * tex) * (0.8 + 0.4 * depth))[hy:]
    if rng.random() < 0.6:  # road in perspective, with a dashed centre line
        cxr, wr = rng.uniform(0.25, 0.75), rng.uniform(0.1, 0.4)
        road = (np.abs(xx / w - cxr) < wr * depth[..., 0] + 0.01) & (y1 > horizon)
        grey = np.float32(rng.uniform(0.3, 0.55))
        img[road] = grey * (0.85 + 0.3 * tex[road])
        dash = road & (np.abs(xx / w - cxr) < 0.004 + 0.01 * depth[..., 0]) & ((depth[..., 0] * 12) % 1 < 0.5)
        img[dash] = np.float32(0.9)
    for _ in range(rng.integers(0, 6)):  # poles
        px, pw = int(rng.uniform(0, w)), max(int(rng.uniform(0.004, 0.012) * w), 1)
        ptop = int(rng.uniform(0.05, horizon) * h)
        img[ptop:hy + int(0.05 * h), px:px + pw] = rng.uniform(0.1, 0.5)
    for _ in range(rng.integers(0, 4)):  # cars on the horizon: a body and a darker cabin
        cxp, cw = int(rng.uniform(0, w)), int(rng.uniform(0.08, 0.18) * w)
        ch, base = int(cw * 0.35), hy + int(rng.uniform(0.0, 0.08) * h)
        col = rng.uniform(0.05, 0.9, 3).astype(np.float32)
        img[max(base - ch // 2, 0):base, cxp:cxp + cw] = col
        img[max(base - ch, 0):max(base - ch // 2, 0), cxp + cw // 5:cxp + 4 * cw // 5] = col * 0.35
    trees = _fractal(rng, h, w, int(rng.integers(4, 10)), 3)  # foliage near the horizon
    band = np.exp(-((y1 - horizon + 0.1) / 0.22) ** 2)
    leaf = (trees * band) > rng.uniform(0.3, 0.5)
    fol = (np.array([0.15, 0.35, 0.08]) * rng.uniform(0.6, 1.4)
           * (1 + rng.uniform(-0.2, 0.2, 3))).astype(np.float32)  # foliage colour
    img[leaf] = fol * (0.4 + 1.2 * _fractal(rng, h, w, 24, 3)[leaf][:, None])
    img += rng.normal(0, 0.012, (h, w, 1)).astype(np.float32)  # sensor noise
    return np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)


N_PROCEDURAL = 64  # procedural scenes in the bank (each rendered once, 360 x 540, then cropped/jittered)


@lru_cache(maxsize=N_PROCEDURAL)
def _procedural_bank(k: int) -> np.ndarray:
    return procedural_scene(np.random.default_rng([20180618, k]), 360, 540)


def _crop_resize(rng: np.random.Generator, img: np.ndarray, h: int, w: int,
                 view: tuple[float, float] = (0.5, 1.0)) -> np.ndarray:
    """Random crop of random scale (``view``: fraction of the shorter side) with the output aspect
    ratio, resized to (h, w)."""
    ih, iw = img.shape[:2]
    scale = rng.uniform(*view)
    ch = max(1, min(ih, round(min(ih, iw * h / w) * scale)))
    cw = max(1, min(iw, round(ch * w / h)))
    y0, x0 = int(rng.integers(0, ih - ch + 1)), int(rng.integers(0, iw - cw + 1))
    crop = img[y0:y0 + ch, x0:x0 + cw]
    if (ch, cw) != (h, w):
        crop = np.asarray(Image.fromarray(crop).resize((w, h), Image.BILINEAR))
    return crop


def _jitter(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Horizontal flip and colour jitter (brightness, contrast, saturation, white balance)."""
    flip = rng.random() < 0.5
    sat, con, bri = rng.uniform(0.7, 1.3), rng.uniform(0.8, 1.2), rng.uniform(0.8, 1.2)
    wb = rng.uniform(0.92, 1.08, 3).astype(np.float32)
    x = img[:, ::-1] if flip else img
    x = x.astype(np.float32)
    grey = ((x[..., 0] + x[..., 1] + x[..., 2]) * np.float32(1 / 3))[..., None]
    mu = float(grey.mean())
    # saturation, contrast, brightness and white balance folded into x * g + grey * h + c
    gain = (sat * con * bri) * wb
    x = x * gain + grey * ((1 - sat) * con * bri * wb) + ((1 - con) * mu * bri * wb + 0.5)
    return np.clip(x, 0, 255).astype(np.uint8)


class BackgroundSource:
    """Clean backgrounds B.  ``folder=None``: the built-in mix, a fraction ``MIX_BUNDLED`` of the photos
    bundled with the package (``BUNDLED_DIR``), ``MIX_SKIMAGE`` of scikit-image's colour photos and
    ``MIX_PROCEDURAL`` of procedural scenes (``mix``: other fractions, renormalised over what exists); if
    the bundled folder is missing (warned once) it falls back to the old mix, scikit-image photos with
    probability ``photo_fraction``, else procedural scenes.  ``folder``: the images of that folder
    (recursively: e.g. a Raindrop ``gt``).  ``sample(rng, size)`` -> (H, W, 3) uint8, a random crop with
    flip and colour jitter; ``sample_with_origin`` also says which image it came from."""

    def __init__(self, folder: str | Path | None = None, photo_fraction: float = 0.5, cache: int = 64,
                 mix: tuple[float, float, float] | None = None):
        self.folder = Path(folder) if folder else None
        self.photo_fraction = photo_fraction
        if self.folder is not None:
            from agan.images import IMAGE_EXTENSIONS

            if not self.folder.is_dir():
                raise FileNotFoundError(f"{self.folder}: backgrounds folder does not exist")
            self.files = sorted(p for p in self.folder.rglob("*")
                                if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            if not self.files:
                raise ValueError(f"{self.folder}: no images found (expected .png/.jpg clean photos)")
            self._read = lru_cache(maxsize=cache)(self._read_file)
        else:
            self.photos = [n for n in SKIMAGE_PHOTOS if _skimage_photo(n) is not None]
            self.bundled = list(_bundled_files(BUNDLED_DIR))
            if self.bundled:
                b, s, p = mix if mix is not None else (MIX_BUNDLED, MIX_SKIMAGE, MIX_PROCEDURAL)
                if min(b, s, p) < 0 or b + s + p <= 0:
                    raise ValueError(f"mix must be 3 fractions >= 0 with a positive sum, got {mix}")
                s = s if self.photos else 0.0
                total = b + s + p
                if total <= 0:  # only scikit-image photos asked for, and there are none
                    b, p, total = 0.0, 1.0, 1.0
                self.mix = (b / total, s / total, p / total)
            else:  # the old mix
                s = photo_fraction if self.photos else 0.0
                self.mix = (0.0, s, 1.0 - s)

    @staticmethod
    def _read_file(path: Path) -> np.ndarray:
        from agan.images import read_image

        return read_image(path)

    def describe(self) -> str:
        if self.folder is not None:
            return str(self.folder)
        b, s, p = self.mix
        parts = [f"{b:.0%} bundled photos ({len(self.bundled)})"] if self.bundled else []
        if s > 0:
            parts.append(f"{s:.0%} skimage ({', '.join(self.photos)})")
        parts.append(f"{p:.0%} procedural")
        fallback = "" if self.bundled else ", bundled photos missing"
        return f"builtin ({' + '.join(parts)}{fallback})"

    def _pick(self, rng: np.random.Generator) -> tuple[np.ndarray, str]:
        """The source image and its origin ('folder:<path>', 'bundled:<file>', 'skimage:<name>' or
        'procedural:<k>').  Without the bundle: the old draws exactly (same rng calls, same images)."""
        if self.folder is not None:
            path = self.files[int(rng.integers(len(self.files)))]
            return self._read(path), f"folder:{path}"
        b, s, _ = self.mix
        if self.bundled:
            u = rng.random()
            if u < b:
                path = self.bundled[int(rng.integers(len(self.bundled)))]
                return _bundled_photo(path), f"bundled:{path.name}"
            take_photo = u < b + s
        else:
            take_photo = bool(self.photos) and rng.random() < s
        if take_photo:
            name = self.photos[int(rng.integers(len(self.photos)))]
            return _skimage_photo(name), f"skimage:{name}"
        k = int(rng.integers(N_PROCEDURAL))
        return _procedural_bank(k), f"procedural:{k}"

    def sample_with_origin(self, rng: np.random.Generator, size: int | tuple[int, int],
                           view: tuple[float, float] = (0.5, 1.0)) -> tuple[np.ndarray, str]:
        """Like :meth:`sample` (the same draws from ``rng``, the same array), plus where the image came
        from: 'bundled:<file>', 'skimage:<name>', 'procedural:<k>' or 'folder:<path>'."""
        h, w = (size, size) if isinstance(size, int) else size
        img, origin = self._pick(rng)
        return _jitter(rng, _crop_resize(rng, img, h, w, view)), origin

    def sample(self, rng: np.random.Generator, size: int | tuple[int, int],
               view: tuple[float, float] = (0.5, 1.0)) -> np.ndarray:
        return self.sample_with_origin(rng, size, view)[0]

    __call__ = sample


def backgrounds(seed: int, size: int | tuple[int, int], n: int | None = None,
                folder: str | Path | None = None) -> Iterator[np.ndarray]:
    """Yield ``n`` (or endless) clean backgrounds; image i depends only on (seed, i)."""
    source = BackgroundSource(folder)
    i = 0
    while n is None or i < n:
        yield source.sample(np.random.default_rng([seed, i, 0]), size)
        i += 1


@lru_cache(maxsize=1)
def _default_source() -> BackgroundSource:
    return BackgroundSource()
