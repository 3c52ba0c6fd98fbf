"""The drops on the pane: where they sit (a Boolean model of spherical caps), their footprints, and which
canvas pixels each one covers (../shared/RAINDROP_OPTICS.md, "Geometry").

A drop has footprint centre G = O + G1 e1 + G2 e2 on the glass, footprint radius a and contact angle
tau; its sphere has radius R = a / sin tau and centre C = G - n R cos tau (the cap bulges towards the
scene). A pixel belongs to the drop when its viewing ray hits the glass within a of G: the exact mask.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from agan.synth.camera import PaneCamera
from agan.synth.params import SynthParams

__all__ = ["Drops", "Footprints", "Hits", "explicit_drops", "footprint_boxes", "rasterise", "sample_drops"]

E1 = np.array([1.0, 0.0, 0.0])  # first glass axis (the pane is tilted about x)


@dataclass
class Drops:
    """K drop footprints on the glass: the main drops, then their merged satellites."""

    G1: np.ndarray  # (K,) footprint centre along e1, mm
    G2: np.ndarray  # (K,) footprint centre along e2, mm
    a: np.ndarray  # (K,) footprint radius, mm
    tau: np.ndarray  # (K,) contact angle, rad
    n_main: int  # main drops (the first n_main rows)
    n_satellites: int  # merged satellites (the rest)


@dataclass
class Footprints:
    """Sphere caps of the drops and the canvas-pixel bounding box of each footprint."""

    R: np.ndarray  # (K,) sphere radius a / sin tau, mm
    Gc: np.ndarray  # (K, 3) footprint centres
    x0: np.ndarray  # (K,) bounding box: first column, first row, width, height (canvas px)
    y0: np.ndarray
    bw: np.ndarray
    bh: np.ndarray


@dataclass
class Hits:
    """The canvas pixels that the drops cover, one row per pixel: the drop whose cap is highest there."""

    j: np.ndarray  # (P,) drop index
    xs: np.ndarray  # (P,) canvas column
    ys: np.ndarray  # (P,) canvas row
    dist: np.ndarray  # (P,) distance of the ray's glass point from the footprint centre, mm
    pix: np.ndarray  # (P,) flat canvas index ys * Wc + xs


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
    """E[a^2] under p(a) ~ a^-k on [lo, hi] (trapezoidal rule)."""
    a = np.linspace(lo, hi, 257)
    p = a ** -k
    return float(np.trapezoid(p * a * a, a) / np.trapezoid(p, a)) if hi > lo else lo * lo


def sample_drops(rng: np.random.Generator, p: SynthParams, coverage: float, cam: PaneCamera) -> Drops:
    """Boolean model on the part of the glass that the canvas sees (padded by the largest radius): a
    Poisson number of drops whose expected union covers ``coverage`` of the glass, power-law radii,
    uniform centres and contact angles, then 1-3 merged satellites per drop with ``merge_prob``."""
    corners = cam.hit(cam.ray(np.array([0.0, cam.Wc, 0.0, cam.Wc]), np.array([0.0, 0.0, cam.Hc, cam.Hc])))
    g1c, g2c = corners[:, 0], (corners - cam.origin) @ cam.e2  # (4,) glass coords of the canvas corners
    a_lo, a_hi = p.radius_mm
    lo1, hi1 = g1c.min() - a_hi, g1c.max() + a_hi
    lo2, hi2 = g2c.min() - a_hi, g2c.max() + a_hi
    area = (hi1 - lo1) * (hi2 - lo2)
    lam = -math.log(1.0 - coverage) / (math.pi * _mean_sq_radius(a_lo, a_hi, p.size_exponent))  # per mm^2
    n_main = int(min(rng.poisson(lam * area) if coverage > 0 else 0, p.max_drops))
    a = _power_law(rng, n_main, a_lo, a_hi, p.size_exponent)
    G1, G2 = rng.uniform(lo1, hi1, n_main), rng.uniform(lo2, hi2, n_main)
    tau_lo, tau_hi = np.radians(p.contact_angle_deg)
    tau = tau_lo + (tau_hi - tau_lo) * rng.random(n_main)
    return _add_satellites(rng, p.merge_prob, a, G1, G2, tau)


def _add_satellites(rng: np.random.Generator, merge_prob: float, a: np.ndarray, G1: np.ndarray,
                    G2: np.ndarray, tau: np.ndarray) -> Drops:
    """Merged satellites: irregular footprints as a union of caps. A drop gets 1-3 smaller caps
    (0.4-0.8 of its radius, same contact angle) at 0.6-1.1 of its radius from its centre."""
    n_main = a.size
    n_sat = np.where(rng.random(n_main) < merge_prob, rng.integers(1, 4, n_main), 0)
    parent = np.repeat(np.arange(n_main), n_sat)
    ang = rng.uniform(0, 2 * np.pi, parent.size)
    off = rng.uniform(0.6, 1.1, parent.size) * a[parent]
    a = np.concatenate([a, rng.uniform(0.4, 0.8, parent.size) * a[parent]])
    G1 = np.concatenate([G1, G1[parent] + off * np.cos(ang)])
    G2 = np.concatenate([G2, G2[parent] + off * np.sin(ang)])
    tau = np.concatenate([tau, tau[parent]])
    return Drops(G1=G1, G2=G2, a=a, tau=tau, n_main=n_main, n_satellites=int(parent.size))


def explicit_drops(drops: np.ndarray, cam: PaneCamera) -> Drops:
    """Given drops: (K, 4) rows (x_px, y_px, a_mm, tau_deg), centres in output pixel coordinates."""
    drops = np.asarray(drops, dtype=np.float64).reshape(-1, 4)
    if (drops[:, 2] <= 0).any() or ((drops[:, 3] <= 0) | (drops[:, 3] >= 90)).any():
        raise ValueError("drops: radius a_mm must be > 0 and contact angle tau_deg in (0, 90)")
    Xd = cam.hit(cam.ray(drops[:, 0] + cam.m, drops[:, 1] + cam.m))  # (K, 3) centres on the glass
    return Drops(G1=Xd[:, 0], G2=(Xd - cam.origin) @ cam.e2, a=drops[:, 2], tau=np.radians(drops[:, 3]),
                 n_main=len(drops), n_satellites=0)


def footprint_boxes(d: Drops, cam: PaneCamera) -> Footprints:
    """Sphere radii and footprint centres; pixel bounding boxes from the projections of each footprint's
    four extreme points, padded for perspective and anti-aliasing, clipped to the canvas."""
    R = d.a / np.sin(d.tau)
    Gc = cam.origin + d.G1[:, None] * E1 + d.G2[:, None] * cam.e2  # (K, 3) footprint centres
    ext = np.stack([Gc + d.a[:, None] * v for v in (E1, -E1, cam.e2, -cam.e2)], 1)  # (K, 4, 3)
    ex, ey = cam.to_px(ext)  # (K, 4)
    pad_x = 0.05 * (ex.max(1) - ex.min(1)) + 1.5
    pad_y = 0.05 * (ey.max(1) - ey.min(1)) + 1.5
    x0 = np.clip(np.floor(ex.min(1) - pad_x), 0, cam.Wc).astype(np.intp)
    x1 = np.clip(np.ceil(ex.max(1) + pad_x), 0, cam.Wc).astype(np.intp)
    y0 = np.clip(np.floor(ey.min(1) - pad_y), 0, cam.Hc).astype(np.intp)
    y1 = np.clip(np.ceil(ey.max(1) + pad_y), 0, cam.Hc).astype(np.intp)
    return Footprints(R=R, Gc=Gc, x0=x0, y0=y0, bw=x1 - x0, bh=y1 - y0)


def _glass_rows(cam: PaneCamera) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Glass coordinates of every canvas pixel: the pane is tilted about x, so the ray parameter t
    depends on the row only, g1 = t(row) * vx(col), g2 = g2(row). Returns vx (Wc,), t_row, g2_row and
    the glass mm per pixel mmpp_row (centre-column approximation), each (Hc,)."""
    psi = cam.psi
    vy = (np.arange(cam.Hc) - cam.m - cam.cy) / cam.fpx  # (Hc,)
    vx = (np.arange(cam.Wc) - cam.m - cam.cx) / cam.fpx  # (Wc,)
    vn_row = -math.sin(psi) * vy + math.cos(psi)
    t_row = cam.nd / vn_row
    g2_row = t_row * vy * math.cos(psi) + (t_row - cam.dg) * math.sin(psi)
    mmpp_row = t_row * (1.0 + vy * vy) / (cam.fpx * vn_row)
    return vx, t_row, g2_row, mmpp_row


def _box_pixels(fp: Footprints) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (pixel, drop) pair of the bounding boxes, fully vectorised: drop index, column, row (N,)."""
    idx = np.flatnonzero((fp.bw > 0) & (fp.bh > 0))
    sizes = (fp.bw * fp.bh)[idx]
    j = np.repeat(idx, sizes)  # drop index of each pair
    local = np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    bwj = fp.bw[j]
    return j, fp.x0[j] + local % bwj, fp.y0[j] + local // bwj


def rasterise(d: Drops, fp: Footprints, cam: PaneCamera) -> tuple[np.ndarray, Hits]:
    """Anti-aliased coverage of every (pixel, drop) pair; alpha = the union (max) of the coverages,
    (Hc * Wc,). Where caps overlap (merged drops) the highest cap at the pixel owns it (ties resolved by
    pair order: deterministic); returns the owned pixels as :class:`Hits`."""
    vx, t_row, g2_row, mmpp_row = _glass_rows(cam)
    j, xs, ys = _box_pixels(fp)
    aj = d.a[j]
    dist = np.hypot(t_row[ys] * vx[xs] - d.G1[j], g2_row[ys] - d.G2[j])  # footprint distance, mm
    cov = np.clip(0.5 + (aj - dist) / mmpp_row[ys], 0.0, 1.0)  # anti-aliased coverage
    sel = np.flatnonzero(cov > 0)
    j, xs, ys, dist, cov, aj = j[sel], xs[sel], ys[sel], dist[sel], cov[sel], aj[sel]
    Rj = fp.R[j]
    # cap height above the glass; outside the footprint (anti-aliasing band) negative
    height = np.where(dist <= aj, np.sqrt(np.maximum(Rj * Rj - dist * dist, 0)) - Rj * np.cos(d.tau[j]),
                      aj - dist)
    pix = ys * cam.Wc + xs
    n_canvas = cam.Hc * cam.Wc
    alpha_c = np.zeros(n_canvas)
    np.maximum.at(alpha_c, pix, cov)  # union coverage of the footprints
    best = np.full(n_canvas, -np.inf)
    np.maximum.at(best, pix, height)  # the highest cap at each pixel wins (merged drops)
    win = np.flatnonzero(height >= best[pix])
    owner = np.full(n_canvas, -1, np.intp)
    owner[pix[win]] = win  # ties (equal heights) resolved by pair order: deterministic
    w_ = owner[owner >= 0]
    return alpha_c, Hits(j=j[w_], xs=xs[w_], ys=ys[w_], dist=dist[w_], pix=pix[w_])
