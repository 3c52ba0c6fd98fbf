"""The camera and the glass pane in front of it, and the thin-lens defocus of the drop layer.

Geometry (camera at the origin, looking along +z, image y pointing down, millimetres):
    glass plane  n . X = d_g cos(psi),  n = (0, -sin psi, cos psi)   (top of a tilted pane is nearer)
    glass axes   e1 = (1, 0, 0), e2 = (0, cos psi, sin psi), origin O = (0, 0, d_g)
Defocus (../shared/RAINDROP_OPTICS.md, "Defocus"): aperture q = f / N, image distance s' = f S / (S - f),
circle of confusion r = (q / 2) (s' / S) |z - S| / z on the sensor for a point at depth z.

The drops are drawn on a canvas: the output (H, W) plus a margin of ``m`` px on every side (so that
the defocus blur needs no wrap-around), padded to FFT-friendly sizes (Hc, Wc). Canvas pixel (x, y) is
output pixel (x - m, y - m).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import fft as sp_fft

from agan.synth.params import SynthParams

__all__ = ["SENSOR_MM", "PaneCamera", "defocus_drop_layer", "pane_camera"]

SENSOR_MM = 36.0  # 35 mm-equivalent sensor width: focal_mm and f_number are full-frame equivalents


@dataclass(frozen=True)
class PaneCamera:
    """The sampled camera, pane and canvas of one image (see the module docstring for the frames)."""

    H: int  # output height, px
    W: int  # output width, px
    frame: float  # width of the whole camera frame, px (the output is a crop of it)
    fpx: float  # focal length, px
    ox: float  # where the output crop sits in the frame: offset of its centre, px
    oy: float
    cx: float  # principal point in output pixel coordinates
    cy: float
    psi: float  # pane tilt about the x axis, rad
    dg: float  # d_g, lens -> glass along the optical axis, mm
    n: np.ndarray  # (3,) glass normal, towards the scene
    e2: np.ndarray  # (3,) second glass axis (the first is x)
    nd: float  # n . X of every point X on the glass
    origin: np.ndarray  # (3,) glass origin O = (0, 0, d_g)
    Zs: float  # depth of the scene plane, mm
    r_rows: np.ndarray  # (H,) defocus (circle of confusion) radius of the glass seen at each output row, px
    m: int  # canvas margin, px
    Hc: int  # canvas height, px
    Wc: int  # canvas width, px

    @property
    def r_top(self) -> float:
        return float(self.r_rows[0])

    @property
    def r_bot(self) -> float:
        return float(self.r_rows[-1])

    def ray(self, xc: np.ndarray, yc: np.ndarray) -> np.ndarray:
        """Canvas pixel coords -> unnormalised ray directions (..., 3)."""
        m, fpx = self.m, self.fpx
        return np.stack([(xc - m - self.cx) / fpx, (yc - m - self.cy) / fpx, np.ones_like(xc)], -1)

    def hit(self, v: np.ndarray) -> np.ndarray:
        """Ray directions (..., 3) -> their points on the glass (..., 3)."""
        return v * (self.nd / (v @ self.n))[..., None]

    def to_px(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """3D points (..., 3) -> canvas pixel coords (x, y), each (...)."""
        return (X[..., 0] / X[..., 2] * self.fpx + self.cx + self.m,
                X[..., 1] / X[..., 2] * self.fpx + self.cy + self.m)


def pane_camera(rng: np.random.Generator, p: SynthParams, s: dict[str, float], H: int, W: int) -> PaneCamera:
    """The camera, pane and canvas for the per-image values ``s`` (``sample_image_values``); draws the
    crop offset (2 draws of ``rng``: x, then y)."""
    frame = float(p.frame_px or W)
    fpx = s["focal_mm"] / SENSOR_MM * frame  # focal length in pixels
    frame_h = frame * 2.0 / 3.0
    ox = rng.uniform(-1, 1) * max(frame - W, 0) / 2  # where the output crop sits in the frame
    oy = rng.uniform(-1, 1) * max(frame_h - H, 0) / 2
    cx, cy = (W - 1) / 2.0 + ox, (H - 1) / 2.0 + oy  # principal point in output pixel coords
    psi, dg = math.radians(s["tilt_deg"]), s["glass_mm"]
    n = np.array([0.0, -math.sin(psi), math.cos(psi)])
    e2 = np.array([0.0, math.cos(psi), math.sin(psi)])
    nd = dg * math.cos(psi)  # n . X on the glass
    r_rows = _coc_rows(s, H, cy, fpx, n, nd, frame)  # (H,)
    m = math.ceil(max(float(r_rows[0]), float(r_rows[-1]))) + 2  # canvas margin: blur needs no wrap-around
    Hc, Wc = (sp_fft.next_fast_len(k + 2 * m, real=True) for k in (H, W))  # FFT-friendly canvas
    return PaneCamera(H=H, W=W, frame=frame, fpx=fpx, ox=ox, oy=oy, cx=cx, cy=cy, psi=psi, dg=dg, n=n,
                      e2=e2, nd=nd, origin=np.array([0.0, 0.0, dg]), Zs=s["scene_m"] * 1000.0, r_rows=r_rows,
                      m=m, Hc=Hc, Wc=Wc)


def _coc_rows(s: dict[str, float], H: int, cy: float, fpx: float, n: np.ndarray, nd: float,
              frame: float) -> np.ndarray:
    """Thin-lens circle-of-confusion radius (px) of the glass seen at each output row (centre column),
    (H,): a tilted pane is nearer at the top, so its drops blur differently from row to row."""
    S, f_mm = s["focus_m"] * 1000.0, s["focal_mm"]
    q, s_img = f_mm / s["f_number"], f_mm * S / max(S - f_mm, 1e-6)  # aperture; image distance s'
    yy = np.arange(H, dtype=np.float64)
    v = np.stack([np.zeros_like(yy), (yy - cy) / fpx, np.ones_like(yy)])  # (3, H) rays of the rows
    z = nd / (n @ v)  # (H,) depth of the glass at each row, mm
    return 0.5 * q * (s_img / S) * np.abs(z - S) / z / SENSOR_MM * frame


# ---------------------------------------------------------------------------------------------------
# defocus blur


def _disk_fft(radius: float, shape: tuple[int, int]) -> np.ndarray:
    """rfft2 of an anti-aliased, normalised disk kernel of ``radius`` px, centred at (0, 0) with wrap."""
    h, w = shape
    r = int(math.ceil(radius + 0.5))
    d = np.arange(-r, r + 1)
    patch = np.clip(radius + 0.5 - np.hypot(d[:, None], d[None, :]), 0.0, 1.0).astype(np.float32)
    k = np.zeros((h, w), np.float32)
    k[np.ix_(d % h, d % w)] = patch / patch.sum()  # the canvas is always wider than the kernel
    return sp_fft.rfft2(k)


def _defocus(layer: np.ndarray, radii: list[float]) -> list[np.ndarray]:
    """Convolve (Hc, Wc, C) float32 with disks of the given radii (px) via one forward FFT;
    the canvas margin exceeds every radius, so the circular wrap never reaches the output."""
    if all(r < 0.5 for r in radii):
        return [layer for _ in radii]
    F = sp_fft.rfft2(layer, axes=(0, 1))
    return [layer if r < 0.5 else sp_fft.irfft2(F * _disk_fft(r, layer.shape[:2])[..., None],
                                                 s=layer.shape[:2], axes=(0, 1)) for r in radii]


def defocus_drop_layer(alpha_c: np.ndarray, D: np.ndarray, pix: np.ndarray, cam: PaneCamera) -> np.ndarray:
    """Blur the premultiplied drop layer (D * alpha, alpha) with the thin-lens disk: one blur when the
    circle of confusion varies by < 1 px over the image, else two blurs (top and bottom row radii)
    blended row by row according to the local radius. alpha_c (Hc * Wc,) coverage of the canvas,
    D (K, 3) drop colour at the canvas pixels ``pix`` (K,) -> (H, W, 4) blurred (RGB * alpha, alpha)."""
    H, W, m = cam.H, cam.W, cam.m
    r_top, r_bot = cam.r_top, cam.r_bot
    layer = np.zeros((cam.Hc * cam.Wc, 4), np.float32)
    layer[:, 3] = alpha_c
    layer[pix, :3] = D * alpha_c[pix, None]
    layer = layer.reshape(cam.Hc, cam.Wc, 4)  # (Hc, Wc, 4)
    if abs(r_top - r_bot) < 1.0:  # a CoC that varies by < 1 px over the image: one blur
        return _defocus(layer, [0.5 * (r_top + r_bot)])[0][m:m + H, m:m + W]
    # tilted pane: blend two disk blurs row by row according to the local circle of confusion
    wgt = ((cam.r_rows - r_top) / (r_bot - r_top))[:, None, None].astype(np.float32)  # (H, 1, 1)
    b_top, b_bot = _defocus(layer, [r_top, r_bot])
    return b_top[m:m + H, m:m + W] * (1 - wgt) + b_bot[m:m + H, m:m + W] * wgt
