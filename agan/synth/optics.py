"""What a drop shows: each covered pixel's ray is refracted into the water by the flat glass and out of
it by the spherical cap (Snell, n_water = 1.333), then hits the scene plane; the background pixel there
is what the drop pixel shows, an inverted, minified, wide-angle view (../shared/RAINDROP_OPTICS.md,
"Refraction"). Past the critical angle the ray is totally internally reflected (TIR): the dark rim.
Fresnel transmission darkens the rim further; light scattered in the water makes drops translucent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from agan.synth.camera import PaneCamera
from agan.synth.drops import Drops, Footprints, Hits

__all__ = ["Trace", "drop_appearance", "haze_colour", "trace_rays"]


@dataclass
class Trace:
    """Per covered pixel (P rows, the order of :class:`Hits`): where its refracted ray meets the scene."""

    u_s: np.ndarray  # (P,) scene hit projected to output pixel coords, x
    v_s: np.ndarray  # (P,) ... y
    T_in: np.ndarray  # (P,) Fresnel transmittance air -> water (flat glass)
    T_out: np.ndarray  # (P,) Fresnel transmittance water -> air (cap), 0 where TIR
    tir: np.ndarray  # (P,) bool, totally internally reflected at the cap


def _fresnel_t(ci: np.ndarray, ct: np.ndarray, n1: float, n2: float) -> np.ndarray:
    """Unpolarised Fresnel transmittance 1 - (R_s + R_p) / 2 at an n1 -> n2 interface."""
    rs = (n1 * ci - n2 * ct) / (n1 * ci + n2 * ct + 1e-12)
    rp = (n1 * ct - n2 * ci) / (n1 * ct + n2 * ci + 1e-12)
    return 1.0 - 0.5 * (rs * rs + rp * rp)


def _enter_water(v: np.ndarray, n: np.ndarray, nw: float) -> tuple[np.ndarray, np.ndarray]:
    """Air -> water through the flat glass (Snell): rays v (P, 3) -> refracted directions (P, 3) and
    the Fresnel transmittance (P,)."""
    vh = v / np.sqrt(np.einsum("ij,ij->i", v, v))[:, None]  # unit rays
    ci = vh @ n  # cosine of incidence
    ct = np.sqrt(1.0 - (1.0 - ci ** 2) / nw ** 2)
    v1 = vh / nw + (ct - ci / nw)[:, None] * n
    return v1, _fresnel_t(ci, ct, 1.0, nw)


def _leave_cap(X: np.ndarray, v1: np.ndarray, C: np.ndarray, R: np.ndarray,
               nw: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Water -> air through the spherical cap (centre C (P, 3), radius R (P,)): from the entry point
    X (P, 3) along v1 to the exit point P on the sphere, outward normal N = (P - C) / R, Snell again.
    Returns exit points (P, 3), outgoing directions (P, 3), TIR (P,) bool and Fresnel T_out (P,)."""
    L = X - C
    b = np.einsum("ij,ij->i", v1, L)
    c = np.einsum("ij,ij->i", L, L) - R ** 2
    P = X + (-b + np.sqrt(np.maximum(b * b - c, 0)))[:, None] * v1  # exit point on the cap
    N = (P - C) / R[:, None]
    ci2 = np.einsum("ij,ij->i", v1, N)
    k2 = 1.0 - nw ** 2 * (1.0 - ci2 ** 2)
    tir = k2 <= 0  # past the critical angle asin(1 / n_water)
    ct2 = np.sqrt(np.maximum(k2, 0))
    t2 = nw * v1 + (ct2 - nw * ci2)[:, None] * N
    T_out = np.where(tir, 0.0, _fresnel_t(ci2, ct2, nw, 1.0))
    return P, t2, tir, T_out


def trace_rays(cam: PaneCamera, d: Drops, fp: Footprints, hits: Hits, nw: float) -> Trace:
    """Refraction: the flipped, minified view each drop shows. The ray of every covered pixel enters
    the water at its glass point (in the anti-aliasing band outside a footprint: at the footprint's
    edge), leaves through the cap and travels to the scene plane at depth Zs; the hit point projected
    through the camera is the background pixel it shows."""
    j = hits.j
    v = cam.ray(hits.xs.astype(np.float64), hits.ys.astype(np.float64))  # (P, 3) rays of the covered pixels
    X = cam.hit(v)  # (P, 3) entry points on the glass
    Gj = fp.Gc[j]
    inside = np.minimum(1.0, 0.999 * d.a[j] / np.maximum(hits.dist, 1e-12))[:, None]
    X = Gj + (X - Gj) * inside  # anti-aliasing band: use the footprint edge
    v1, T_in = _enter_water(v, cam.n, nw)
    C = Gj - cam.n * (fp.R[j] * np.cos(d.tau[j]))[:, None]  # (P, 3) sphere centres
    P, t2, tir, T_out = _leave_cap(X, v1, C, fp.R[j], nw)
    tz = np.maximum(t2[:, 2], 1e-3)
    Q = P + ((cam.Zs - P[:, 2]) / tz)[:, None] * t2  # (P, 3) hit on the scene plane
    u_s, v_s = Q[:, 0] / Q[:, 2] * cam.fpx + cam.cx, Q[:, 1] / Q[:, 2] * cam.fpx + cam.cy
    return Trace(u_s=u_s, v_s=v_s, T_in=T_in, T_out=T_out, tir=tir)


def _sample_bilinear(img: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """img (H, W, 3) float32 at float pixel coords (N,), mirror-reflected at the borders -> (N, 3)
    (``grid_sample`` with reflection padding: bilinear, deterministic on CPU)."""
    h, w = img.shape[:2]
    t = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]  # (1, 3, H, W)
    g = np.stack([x * (2.0 / max(w - 1, 1)) - 1.0, y * (2.0 / max(h - 1, 1)) - 1.0], -1).astype(np.float32)
    out = torch.nn.functional.grid_sample(t, torch.from_numpy(g)[None, None], mode="bilinear",
                                          padding_mode="reflection", align_corners=True)  # (1, 3, 1, N)
    return out[0, :, 0].T.numpy()


def haze_colour(B: np.ndarray) -> np.ndarray:
    """(3,) the bluish white of scattered light, scaled with the scene's mean brightness."""
    return np.array([0.90, 0.92, 0.95]) * float(np.clip(B.mean() * 1.3 + 0.25, 0.5, 1.0))


def drop_appearance(B: np.ndarray, tr: Trace, hits: Hits, cam: PaneCamera, s: dict[str, float],
                    haze_col: np.ndarray) -> np.ndarray:
    """D (P, 3), the colour of every covered pixel: the refracted view of B times drop_gain and the
    Fresnel transmittances; the TIR rim, which sees no scene light, only ``tir_brightness`` of the
    glass behind the drop; then the light scattered in the water, D <- (1 - v) D + v * haze colour."""
    seen = _sample_bilinear(B, tr.u_s, tr.v_s)  # (P, 3) refracted view
    D = (s["drop_gain"] * tr.T_in * tr.T_out)[:, None] * seen
    if tr.tir.any():  # total internal reflection rim
        ti = np.flatnonzero(tr.tir)
        H, W, m = cam.H, cam.W, cam.m
        behind = B[np.clip(hits.ys[ti] - m, 0, H - 1), np.clip(hits.xs[ti] - m, 0, W - 1)]  # (T, 3)
        D[ti] = s["tir_brightness"] * behind
    return (1.0 - s["drop_haze"]) * D + s["drop_haze"] * haze_col  # translucent drops
