"""A physically based raindrop renderer: drops on a glass pane in front of the lens, ray traced.

References (textbook optics, no code copied):
    J. Roser, A. Geiger, "Video-based raindrop detection for improved image registration", ICCV-W 2009.
    M. Halimeh, J. Roser, "Raindrop detection on car windshields using geometric-photometric
    environment construction and intensity-based correlation", IEEE IV 2009.
    Z. Hao et al., "Learning from synthetic photorealistic raindrop for single image raindrop removal",
    ICCV-W 2019.   F. Pizzati et al., "Model-based occlusion disentanglement", ECCV 2020.
    The synthesiser is the kit's addition, not the paper's: docs/paper.md#kit-additions.

Image model (paper Sec. 3, Eq. 1; docs/paper.md#image-model):
    I = blur(D * alpha) + B * (1 - blur(alpha)),  i.e. I = (1 - M) B + R.
    B      clean background, treated as a fronto-parallel scene plane at depth ``scene_m``
    alpha  exact (anti-aliased) coverage of the drop footprints on the glass, seen from the camera
    D      drop appearance: each drop pixel's ray is refracted by the flat glass/water interface
           (Snell, n_water = 1.333) and by the spherical cap (Snell again), then hits the scene plane;
           the hit point projected through the camera is the pixel of B that the drop shows
           (an inverted, minified, wide-angle view).  Past the critical angle the ray is totally
           internally reflected (TIR): the dark rim.  Fresnel transmission darkens the rim further.
    blur   thin-lens defocus: the camera focuses at ``focus_m`` while the drops sit ``glass_mm`` away,
           so the drop layer is convolved with a disk (circle of confusion), per row for a tilted pane.

Geometry (camera at the origin, looking along +z, image y pointing down, millimetres):
    glass plane  n . X = d_g cos(psi),  n = (0, -sin psi, cos psi)   (top of a tilted pane is nearer)
    glass axes   e1 = (1, 0, 0), e2 = (0, cos psi, sin psi), origin O = (0, 0, d_g)
    drop         footprint centre G, radius a, contact angle tau; sphere radius R = a / sin tau,
                 centre C = G - n R cos tau; the cap bulges towards the scene.

Everything is vectorised over (pixel, drop) pairs; the only Python loop is over a handful of
procedural shapes.  Same seed + same parameters -> identical bytes.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import numpy as np
import torch
from scipy import fft as sp_fft

from agan.synth.backgrounds import (  # noqa: F401  (re-exported: agan.synth.renderer is where users look)
    N_PROCEDURAL,
    SKIMAGE_PHOTOS,
    BackgroundSource,
    _default_source,
    _procedural_bank,
    backgrounds,
    procedural_scene,
)

__all__ = [
    "SKIMAGE_PHOTOS",
    "BackgroundSource",
    "SynthParams",
    "SynthResult",
    "backgrounds",
    "make_pair",
    "procedural_scene",
    "render",
]

SENSOR_MM = 36.0  # 35 mm-equivalent sensor width: focal_mm and f_number are full-frame equivalents

Range = tuple[float, float]


@dataclass
class SynthParams:
    """Physical parameters of the raindrop renderer.  Each ``(lo, hi)`` range is sampled uniformly
    once per image (``radius_mm`` per drop, from a power law); give ``(v, v)`` to fix a value.
    Defaults are tuned toward the real Raindrop train pairs (see ``agan.synth.calibrate``).

    coverage           expected fraction of the glass covered by drops (Boolean model, before merging)
    radius_mm          footprint radius a of a drop on the glass, mm
    size_exponent      k of p(a) ~ a^-k: many small drops, few large ones
    contact_angle_deg  tau, angle between glass and cap at the footprint edge (steeper = more TIR rim)
    merge_prob         probability that a drop has 1-3 merged satellites (irregular footprints)
    glass_mm           d_g, distance from the lens to the glass along the optical axis, mm
    tilt_deg           psi, tilt of the pane about the x axis (0 = upright window, ~35 = windshield)
    focal_mm           35 mm-equivalent focal length; field of view = 2 atan(18 / focal_mm)
    frame_px           width of the camera frame in px; the output is a crop of it (None = the output)
    f_number           35 mm-equivalent f-number N; aperture q = f / N; smaller = blurrier drops
    focus_m            focus distance S, m (the scene is sharp, the drops are not)
    scene_m            depth of the fronto-parallel scene plane that the background shows, m
    drop_gain          brightness gain of the light gathered by a drop
    tir_brightness     fraction of the background that a totally-internally-reflecting pixel shows
    drop_haze          light the water scatters inside a drop: D <- (1 - v) D + v * haze colour (real drops are
                       bright, translucent blobs: on the real pairs RGB inside M is +40/+43/+50 above the clean shot)
    haze               veil of the wet glass over the whole image: I <- (1 - h) I + h * haze colour
    exposure           global gain of the rainy shot relative to the clean one (real pairs, away from drops:
                       0.90-1.03, 3-9 levels darker)
    view               fraction of the background photo (its shorter side) that the output shows; the
                       crop is resized to the output size. Small crops of a large frame (the paper trains
                       on 224 crops of 720x480 shots) show ~0.3 of the scene, whole shots 1.0
    n_water, max_drops refractive index of water; safety cap on drops per image
    """

    coverage: Range = (0.15, 0.4)  # expected fraction of the glass covered by drops (Boolean model)
    radius_mm: Range = (0.8, 3.0)  # footprint radius a of one drop, mm
    size_exponent: float = 2.0  # p(a) ~ a^-k on radius_mm: many small drops, few large ones
    contact_angle_deg: Range = (25.0, 45.0)  # tau, angle between glass and cap at the footprint edge
    merge_prob: float = 0.3  # probability that a drop has 1-3 merged satellites (irregular footprint)
    glass_mm: Range = (25.0, 60.0)  # d_g, lens -> glass along the optical axis, mm (a few cm: big, defocused drops)
    tilt_deg: Range = (0.0, 25.0)  # psi, pane tilt about the x axis (0 = upright window, ~35 = windshield)
    focal_mm: Range = (24.0, 40.0)  # 35 mm-equivalent focal length (fov = 2 atan(18 / f))
    frame_px: int | None = 720  # width of the full camera frame; the output is a crop of it (None = output)
    f_number: Range = (10.0, 24.0)  # 35 mm-equivalent f-number N (aperture q = f / N); smaller = blurrier
    focus_m: Range = (3.0, 15.0)  # focus distance S, m
    scene_m: Range = (4.0, 8.0)  # depth of the scene plane that B shows, m
    drop_gain: Range = (0.95, 1.2)  # brightness gain of the light a drop gathers (Hao et al.: ~1.2)
    tir_brightness: Range = (0.05, 0.25)  # TIR pixels show this fraction of the background behind them
    drop_haze: Range = (0.4, 0.8)  # scattered light inside drops: D <- (1 - v) D + v * haze colour
    haze: Range = (0.0, 0.02)  # veil of the wet glass: I <- (1 - h) I + h * haze colour
    exposure: Range = (0.92, 1.02)  # global gain of the rainy shot vs the clean one
    view: Range = (0.5, 1.0)  # fraction of the background photo in view (crop of it resized to the output)
    n_water: float = 1.333  # refractive index of water
    max_drops: int = 4000  # safety cap on the number of drops per image

    # bounds for validate(): name -> (min, max)
    _BOUNDS: ClassVar[dict[str, tuple[float, float]]] = {
        "coverage": (0.0, 0.95), "radius_mm": (0.05, 50.0), "contact_angle_deg": (1.0, 89.0),
        "glass_mm": (5.0, 5000.0), "tilt_deg": (0.0, 75.0), "focal_mm": (5.0, 600.0),
        "f_number": (0.5, 200.0), "focus_m": (0.1, 1e4), "scene_m": (0.1, 1e4),
        "drop_gain": (0.0, 5.0), "tir_brightness": (0.0, 1.0), "haze": (0.0, 0.9), "exposure": (0.1, 5.0),
        "drop_haze": (0.0, 1.0),
        "view": (0.01, 1.0),
    }

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, list):
                setattr(self, f.name, tuple(v))

    def validate(self) -> SynthParams:
        """Raise ValueError naming the first bad parameter; return self."""
        for name, (lo, hi) in self._BOUNDS.items():
            v = getattr(self, name)
            if not (isinstance(v, tuple) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v)):
                raise ValueError(f"synth parameter {name} must be a (lo, hi) pair of numbers, got {v!r}")
            if not all(math.isfinite(x) for x in v) or v[0] > v[1]:
                raise ValueError(f"synth parameter {name} must satisfy lo <= hi, got {v!r}")
            if v[0] < lo or v[1] > hi:
                raise ValueError(f"synth parameter {name}={v!r} is outside its physical range [{lo}, {hi}]")
        if not (0.0 <= self.merge_prob <= 1.0):
            raise ValueError(f"synth parameter merge_prob must be in [0, 1], got {self.merge_prob!r}")
        if not (0.0 <= self.size_exponent <= 10.0):
            raise ValueError(f"synth parameter size_exponent must be in [0, 10], got {self.size_exponent!r}")
        if not (1.0 < self.n_water < 3.0):
            raise ValueError(f"synth parameter n_water must be in (1, 3), got {self.n_water!r}")
        if self.frame_px is not None and not (isinstance(self.frame_px, int) and 8 <= self.frame_px <= 20000):
            raise ValueError(f"synth parameter frame_px must be an integer in [8, 20000] or None, "
                             f"got {self.frame_px!r}")
        if not (isinstance(self.max_drops, int) and self.max_drops >= 1):
            raise ValueError(f"synth parameter max_drops must be a positive integer, got {self.max_drops!r}")
        if self.scene_m[0] * 1000.0 <= self.glass_mm[1]:
            raise ValueError(f"synth parameter scene_m={self.scene_m!r} must lie beyond glass_mm={self.glass_mm!r}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SynthParams:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown synth parameter(s) {unknown}; known: {', '.join(sorted(names))}")
        return cls(**d).validate()

    def override(self, items: list[str] | dict[str, Any]) -> SynthParams:
        """``["coverage=0.1,0.3", "tilt_deg=30", "merge_prob=0"]`` -> new validated SynthParams.
        A single number for a range parameter fixes it (lo = hi)."""
        if isinstance(items, dict):
            pairs = list(items.items())
        else:
            pairs = []
            for item in items:
                if "=" not in item:
                    raise ValueError(f"synth parameter override {item!r} is not of the form name=value")
                k, v = item.split("=", 1)
                pairs.append((k.strip(), _parse_value(v)))
        current = self.to_dict()
        for k, v in pairs:
            if k not in current:
                raise ValueError(f"unknown synth parameter {k!r}; known: {', '.join(sorted(current))}")
            if isinstance(current[k], list) and isinstance(v, (int, float)):
                v = (v, v)
            current[k] = tuple(v) if isinstance(v, list) else v
        return SynthParams.from_dict(current)


def _parse_value(text: str) -> Any:
    text = text.strip()
    if text.lower() in ("none", "null"):
        return None
    try:
        return json.loads(text if not ("," in text and not text.startswith("[")) else f"[{text}]")
    except json.JSONDecodeError:
        raise ValueError(f"cannot parse synth parameter value {text!r} (use a number or lo,hi)") from None


@dataclass
class SynthResult:
    rain: np.ndarray  # (H, W, 3) uint8, the rendered rainy image I
    clean: np.ndarray  # (H, W, 3) uint8, the background B
    alpha: np.ndarray  # (H, W) float32, blur(alpha): the weight of the drop layer in I (soft coverage)
    mask: np.ndarray  # (H, W) bool, binary drop mask: ray-hit footprint test (footprint >= 0.5)
    diff_mask: np.ndarray  # (H, W) bool, the paper's M: |rain - clean| >= 30 in any channel
    params: dict[str, Any] = field(default_factory=dict)  # sampled values, JSON-serialisable
    footprint: np.ndarray | None = None  # (H, W) float32, sharp anti-aliased coverage (before defocus)


# ---------------------------------------------------------------------------------------------------
# the renderer


def _u(rng: np.random.Generator, r: Range) -> float:
    """Uniform in [lo, hi]; always consumes one draw, so fixing one parameter leaves the others'
    samples unchanged (same seed -> same drops, only that parameter differs)."""
    u = float(rng.random())
    return float(r[0]) + (float(r[1]) - float(r[0])) * u


def _power_law(rng: np.random.Generator, n: int, lo: float, hi: float, k: float) -> np.ndarray:
    """Inverse-CDF samples of p(a) ~ a^-k on [lo, hi]."""
    u = rng.random(n)
    if hi <= lo:
        return np.full(n, lo)
    if abs(k - 1.0) < 1e-6:
        return lo * (hi / lo) ** u
    e = 1.0 - k
    return (lo ** e + u * (hi ** e - lo ** e)) ** (1.0 / e)


def _mean_sq_radius(lo: float, hi: float, k: float) -> float:
    a = np.linspace(lo, hi, 257)
    p = a ** -k
    return float(np.trapezoid(p * a * a, a) / np.trapezoid(p, a)) if hi > lo else lo * lo


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
    return [layer if r < 0.5 else sp_fft.irfft2(F * _disk_fft(r, layer.shape[:2])[..., None], s=layer.shape[:2],
                                                 axes=(0, 1)) for r in radii]


def _sample_bilinear(img: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """img (H, W, 3) float32 at float pixel coords (N,), mirror-reflected at the borders -> (N, 3)
    (``grid_sample`` with reflection padding: bilinear, deterministic on CPU)."""
    h, w = img.shape[:2]
    t = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]  # (1, 3, H, W)
    g = np.stack([x * (2.0 / max(w - 1, 1)) - 1.0, y * (2.0 / max(h - 1, 1)) - 1.0], -1).astype(np.float32)
    out = torch.nn.functional.grid_sample(t, torch.from_numpy(g)[None, None], mode="bilinear",
                                          padding_mode="reflection", align_corners=True)  # (1, 3, 1, N)
    return out[0, :, 0].T.numpy()


def render(clean: np.ndarray, seed: int | np.random.Generator, params: SynthParams | None = None,
           diff_threshold: int = 30, drops: np.ndarray | None = None) -> SynthResult:
    """Render raindrops on glass in front of the camera that sees ``clean`` (H, W, 3 uint8).

    ``seed`` (int or Generator) drives every random choice: same seed + params -> identical bytes.
    ``drops``: optional (K, 4) array of explicit drops (x_px, y_px, a_mm, tau_deg), centres in output
    pixel coordinates, instead of the random Boolean-model drops (for tests and teaching).
    """
    p = (params or SynthParams()).validate()
    clean = np.asarray(clean)
    if clean.ndim != 3 or clean.shape[2] != 3 or clean.dtype != np.uint8:
        raise ValueError(f"clean must be an (H, W, 3) uint8 image, got {clean.shape} {clean.dtype}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    H, W = clean.shape[:2]
    B = clean.astype(np.float32) / 255.0  # (H, W, 3)

    # --- camera, glass, focus: one draw per image ------------------------------------------------
    s = {k: _u(rng, getattr(p, k)) for k in ("coverage", "contact_angle_deg", "glass_mm", "tilt_deg",
                                             "focal_mm", "f_number", "focus_m", "scene_m", "drop_gain",
                                             "tir_brightness", "haze", "exposure", "drop_haze")}
    tau_lo, tau_hi = np.radians(p.contact_angle_deg)
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
    Zs, S = s["scene_m"] * 1000.0, s["focus_m"] * 1000.0
    f_mm = s["focal_mm"]
    q, s_img = f_mm / s["f_number"], f_mm * S / max(S - f_mm, 1e-6)

    def glass_depth(yy):  # z of the glass seen at image row yy (centre column), mm
        v = np.stack([np.zeros_like(yy), (yy - cy) / fpx, np.ones_like(yy)])
        return nd / (n @ v)

    def coc_radius_px(z):  # thin-lens circle of confusion radius, pixels
        return 0.5 * q * (s_img / S) * np.abs(z - S) / z / SENSOR_MM * frame

    rows = np.arange(H, dtype=np.float64)
    r_rows = coc_radius_px(glass_depth(rows))  # (H,)
    r_top, r_bot = float(r_rows[0]), float(r_rows[-1])
    m = math.ceil(max(r_top, r_bot)) + 2  # canvas margin so that blur needs no wrap-around
    Hc, Wc = (sp_fft.next_fast_len(k + 2 * m, real=True) for k in (H, W))  # FFT-friendly canvas

    def ray(xc, yc):  # canvas pixel -> unnormalised ray direction (..., 3)
        return np.stack([(xc - m - cx) / fpx, (yc - m - cy) / fpx, np.ones_like(xc)], -1)

    def hit(v):  # ray direction -> point on the glass (..., 3)
        return v * (nd / (v @ n))[..., None]

    def to_px(X):  # 3D point (..., 3) -> canvas pixel coords
        return X[..., 0] / X[..., 2] * fpx + cx + m, X[..., 1] / X[..., 2] * fpx + cy + m

    # --- drops: Boolean model on the visible part of the glass ------------------------------------
    corners = hit(ray(np.array([0.0, Wc, 0.0, Wc]), np.array([0.0, 0.0, Hc, Hc])))
    O = np.array([0.0, 0.0, dg])
    g1c, g2c = corners[:, 0], (corners - O) @ e2
    a_lo, a_hi = p.radius_mm
    lo1, hi1 = g1c.min() - a_hi, g1c.max() + a_hi
    lo2, hi2 = g2c.min() - a_hi, g2c.max() + a_hi
    area = (hi1 - lo1) * (hi2 - lo2)
    if drops is None:
        lam = -math.log(1.0 - s["coverage"]) / (math.pi * _mean_sq_radius(a_lo, a_hi, p.size_exponent))
        n_main = int(min(rng.poisson(lam * area) if s["coverage"] > 0 else 0, p.max_drops))
        a = _power_law(rng, n_main, a_lo, a_hi, p.size_exponent)
        G1, G2 = rng.uniform(lo1, hi1, n_main), rng.uniform(lo2, hi2, n_main)
        tau = tau_lo + (tau_hi - tau_lo) * rng.random(n_main)
        # merged satellites: irregular footprints as a union of caps
        n_sat = np.where(rng.random(n_main) < p.merge_prob, rng.integers(1, 4, n_main), 0)
        parent = np.repeat(np.arange(n_main), n_sat)
        ang = rng.uniform(0, 2 * np.pi, parent.size)
        off = rng.uniform(0.6, 1.1, parent.size) * a[parent]
        a = np.concatenate([a, rng.uniform(0.4, 0.8, parent.size) * a[parent]])
        G1 = np.concatenate([G1, G1[parent] + off * np.cos(ang)])
        G2 = np.concatenate([G2, G2[parent] + off * np.sin(ang)])
        tau = np.concatenate([tau, tau[parent]])
    else:  # explicit drops: (x_px, y_px, a_mm, tau_deg) rows, centres in output pixel coordinates
        drops = np.asarray(drops, dtype=np.float64).reshape(-1, 4)
        if (drops[:, 2] <= 0).any() or ((drops[:, 3] <= 0) | (drops[:, 3] >= 90)).any():
            raise ValueError("drops: radius a_mm must be > 0 and contact angle tau_deg in (0, 90)")
        Xd = hit(ray(drops[:, 0] + m, drops[:, 1] + m))
        G1, G2, a, tau = Xd[:, 0], (Xd - O) @ e2, drops[:, 2], np.radians(drops[:, 3])
        n_main, parent = len(drops), np.zeros(0, np.intp)
    R = a / np.sin(tau)
    Gc = O + G1[:, None] * np.array([1.0, 0.0, 0.0]) + G2[:, None] * e2  # (K, 3) footprint centres
    # pixel bounding boxes: project the footprint's extreme points, pad for perspective + anti-aliasing
    ext = np.stack([Gc + a[:, None] * d for d in (np.array([1.0, 0, 0]), -np.array([1.0, 0, 0]), e2, -e2)], 1)
    ex, ey = to_px(ext)  # (K, 4)
    pad_x = 0.05 * (ex.max(1) - ex.min(1)) + 1.5
    pad_y = 0.05 * (ey.max(1) - ey.min(1)) + 1.5
    x0 = np.clip(np.floor(ex.min(1) - pad_x), 0, Wc).astype(np.intp)
    x1 = np.clip(np.ceil(ex.max(1) + pad_x), 0, Wc).astype(np.intp)
    y0 = np.clip(np.floor(ey.min(1) - pad_y), 0, Hc).astype(np.intp)
    y1 = np.clip(np.ceil(ey.max(1) + pad_y), 0, Hc).astype(np.intp)
    bw, bh = x1 - x0, y1 - y0

    # glass coordinates of every canvas pixel: the pane is tilted about x, so the ray parameter t
    # depends on the row only and g1 = t(row) * vx(col), g2 = g2(row)
    vy = (np.arange(Hc) - m - cy) / fpx  # (Hc,)
    vx = (np.arange(Wc) - m - cx) / fpx  # (Wc,)
    vn_row = -math.sin(psi) * vy + math.cos(psi)
    t_row = nd / vn_row
    g2_row = t_row * vy * math.cos(psi) + (t_row - dg) * math.sin(psi)
    mmpp_row = t_row * (1.0 + vy * vy) / (fpx * vn_row)  # glass mm per pixel (centre-column approx.)

    # (pixel, drop) pairs over every drop's bounding box, fully vectorised
    idx = np.flatnonzero((bw > 0) & (bh > 0))
    sizes = (bw * bh)[idx]
    j = np.repeat(idx, sizes)  # drop index of each pair
    local = np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    bwj = bw[j]
    xs = x0[j] + local % bwj
    ys = y0[j] + local // bwj
    aj = a[j]
    dist = np.hypot(t_row[ys] * vx[xs] - G1[j], g2_row[ys] - G2[j])  # footprint distance, mm
    cov = np.clip(0.5 + (aj - dist) / mmpp_row[ys], 0.0, 1.0)  # anti-aliased coverage
    sel = np.flatnonzero(cov > 0)
    j, xs, ys, dist, cov, aj = j[sel], xs[sel], ys[sel], dist[sel], cov[sel], aj[sel]
    Rj = R[j]
    height = np.where(dist <= aj, np.sqrt(np.maximum(Rj * Rj - dist * dist, 0)) - Rj * np.cos(tau[j]), aj - dist)
    pix = ys * Wc + xs

    alpha_c = np.zeros(Hc * Wc)
    np.maximum.at(alpha_c, pix, cov)  # union coverage of the footprints
    best = np.full(Hc * Wc, -np.inf)
    np.maximum.at(best, pix, height)  # the highest cap at each pixel wins (merged drops)
    win = np.flatnonzero(height >= best[pix])
    owner = np.full(Hc * Wc, -1, np.intp)
    owner[pix[win]] = win  # ties (equal heights) resolved by pair order: deterministic
    w_ = owner[owner >= 0]
    j, xs, ys, dist, pix = j[w_], xs[w_], ys[w_], dist[w_], pix[w_]
    v = ray(xs.astype(np.float64), ys.astype(np.float64))  # (K, 3) rays of the covered pixels
    X = v * (nd / (v @ n))[:, None]  # entry points on the glass

    # --- optics of every covered pixel ----------------------------------------------------------
    nw = p.n_water
    Gj = Gc[j]
    inside = np.minimum(1.0, 0.999 * a[j] / np.maximum(dist, 1e-12))[:, None]
    X = Gj + (X - Gj) * inside  # anti-aliasing band: use the footprint edge
    vh = v / np.sqrt(np.einsum("ij,ij->i", v, v))[:, None]
    ci = vh @ n  # air -> water through the flat glass
    ct = np.sqrt(1.0 - (1.0 - ci ** 2) / nw ** 2)
    v1 = vh / nw + (ct - ci / nw)[:, None] * n
    T_in = _fresnel_t(ci, ct, 1.0, nw)
    C = Gj - n * (R[j] * np.cos(tau[j]))[:, None]  # sphere centres
    L = X - C
    b = np.einsum("ij,ij->i", v1, L)
    c = np.einsum("ij,ij->i", L, L) - R[j] ** 2
    P = X + (-b + np.sqrt(np.maximum(b * b - c, 0)))[:, None] * v1  # exit point on the cap
    N = (P - C) / R[j][:, None]
    ci2 = np.einsum("ij,ij->i", v1, N)
    k2 = 1.0 - nw ** 2 * (1.0 - ci2 ** 2)
    tir = k2 <= 0
    ct2 = np.sqrt(np.maximum(k2, 0))
    t2 = nw * v1 + (ct2 - nw * ci2)[:, None] * N  # water -> air through the cap
    T_out = np.where(tir, 0.0, _fresnel_t(ci2, ct2, nw, 1.0))
    tz = np.maximum(t2[:, 2], 1e-3)
    Q = P + ((Zs - P[:, 2]) / tz)[:, None] * t2  # hit on the scene plane
    u_s, v_s = Q[:, 0] / Q[:, 2] * fpx + cx, Q[:, 1] / Q[:, 2] * fpx + cy
    seen = _sample_bilinear(B, u_s, v_s)  # (K, 3) refracted view
    D = (s["drop_gain"] * T_in * T_out)[:, None] * seen
    if tir.any():  # TIR: no scene light; a little light of the glass behind the drop
        ti = np.flatnonzero(tir)
        D[ti] = s["tir_brightness"] * B[np.clip(ys[ti] - m, 0, H - 1), np.clip(xs[ti] - m, 0, W - 1)]
    haze_col = np.array([0.90, 0.92, 0.95]) * float(np.clip(B.mean() * 1.3 + 0.25, 0.5, 1.0))  # (3,) bluish white
    D = (1.0 - s["drop_haze"]) * D + s["drop_haze"] * haze_col  # light scattered in the water: translucent drops

    layer = np.zeros((Hc * Wc, 4), np.float32)
    layer[:, 3] = alpha_c
    layer[pix, :3] = D * alpha_c[pix, None]
    layer = layer.reshape(Hc, Wc, 4)
    if abs(r_top - r_bot) < 1.0:  # a CoC that varies by < 1 px over the image: one blur
        blurred = _defocus(layer, [0.5 * (r_top + r_bot)])[0][m:m + H, m:m + W]
    else:  # tilted pane: blend two disk blurs row by row according to the local circle of confusion
        wgt = ((r_rows - r_top) / (r_bot - r_top))[:, None, None].astype(np.float32)
        b_top, b_bot = _defocus(layer, [r_top, r_bot])
        blurred = b_top[m:m + H, m:m + W] * (1 - wgt) + b_bot[m:m + H, m:m + W] * wgt
    ab = np.clip(blurred[..., 3:], 0.0, 1.0)
    I = blurred[..., :3] + B * (1.0 - ab)
    # glass haze and exposure: I <- exposure * ((1 - h) I + h * haze colour), then quantise
    gain = np.float32(255.0 * s["exposure"] * (1.0 - s["haze"]))
    offset = (255.0 * s["exposure"] * s["haze"] * haze_col + 0.5).astype(np.float32)
    rain = np.clip(I * gain + offset, 0, 255).astype(np.uint8)
    ad = np.maximum(rain, clean) - np.minimum(rain, clean)  # |rain - clean| in uint8
    # the paper's M, docs/paper.md#raindrop-mask
    diff = np.maximum(np.maximum(ad[..., 0], ad[..., 1]), ad[..., 2]) >= diff_threshold
    footprint = alpha_c.reshape(Hc, Wc)[m:m + H, m:m + W].astype(np.float32)

    sampled = {k: round(v_, 6) for k, v_ in s.items()}
    sampled.update(n_drops=int(n_main), n_satellites=int(parent.size), blur_radius_px=[round(r_top, 3),
                   round(r_bot, 3)], tir_fraction=round(float(tir.mean()) if tir.size else 0.0, 6),
                   crop_offset_px=[round(float(ox), 3), round(float(oy), 3)])
    return SynthResult(rain=rain, clean=clean.copy(), alpha=ab[..., 0].astype(np.float32),
                       mask=footprint >= 0.5, diff_mask=diff, params=sampled, footprint=footprint)


def _fresnel_t(ci: np.ndarray, ct: np.ndarray, n1: float, n2: float) -> np.ndarray:
    """Unpolarised Fresnel transmittance 1 - (R_s + R_p) / 2 at an n1 -> n2 interface."""
    rs = (n1 * ci - n2 * ct) / (n1 * ci + n2 * ct + 1e-12)
    rp = (n1 * ct - n2 * ci) / (n1 * ct + n2 * ci + 1e-12)
    return 1.0 - 0.5 * (rs * rs + rp * rp)


def make_pair(seed: int, index: int, size: int | tuple[int, int], params: SynthParams | None = None,
              source: BackgroundSource | None = None) -> SynthResult:
    """Pair ``index`` of the synthetic set ``seed``: a deterministic function of (seed, index).
    Shared by ``agan synth`` and ``agan.data.datasets.SyntheticRaindrops`` so files and on-the-fly data agree."""
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be >= 0, got seed={seed}, index={index}")
    source = source or _default_source()
    params = params_from_any(params)
    clean = source.sample(np.random.default_rng([seed, index, 0]), size, params.view)
    return render(clean, np.random.default_rng([seed, index, 1]), params)


def params_from_any(params: SynthParams | dict | None) -> SynthParams:
    if params is None:
        return SynthParams()
    if isinstance(params, dict):
        return SynthParams.from_dict(params)
    return params.validate()


def replace(params: SynthParams, **changes: Any) -> SynthParams:
    return dataclasses.replace(params, **changes).validate()
