"""Realism statistics of one image pair: how the drops of an aligned (rain, clean) pair look, measured
the same way on real pairs and on synthetic drops rendered onto the real clean shots (the table of
``agan.synth.calibrate.realism_table``): drop diameters, edge softness, contrast and colour inside the
drops, the changed fraction and the rainy shot's global tone; plus partner-free proxies of one image.

Notation: Y = BT.601 luma in grey levels, dY = Y(rain) - Y(clean), M = |rain - clean| >= threshold in
any channel (docs/paper.md#raindrop-mask), "drops" = the 8-connected components of M of >= min_area px,
D = their union.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["LUMA", "realism_stats", "single_image_stats"]

LUMA = np.array([0.299, 0.587, 0.114])  # Y of RGB (ITU-R BT.601), grey levels 0..255


def _luma(img: np.ndarray) -> np.ndarray:
    return np.asarray(img, np.float64) @ LUMA


def _edge_profile(err: np.ndarray, mask: np.ndarray, band: int) -> tuple[np.ndarray, np.ndarray]:
    """Median of ``err`` over 1-px-wide shells at signed distance s from the boundary of ``mask``
    (s < 0 outside, s > 0 inside; shell j holds Euclidean distances in [j - 0.5, j + 0.5) and sits at
    |s| = j - 0.5, so the boundary is s = 0). Returns (positions, medians); empty shells give NaN."""
    from scipy.ndimage import distance_transform_edt

    d_in = distance_transform_edt(mask)
    d_out = distance_transform_edt(~mask)
    j = np.where(mask, np.floor(d_in + 0.5), -np.floor(d_out + 0.5)).astype(np.int64)  # +-1, +-2, ...
    sel = np.abs(j) <= band
    js, es = j[sel], err[sel]
    shells = np.r_[np.arange(-band, 0), np.arange(1, band + 1)]
    pos = np.where(shells < 0, shells + 0.5, shells - 0.5).astype(np.float64)
    order = np.argsort(js, kind="stable")
    js, es = js[order], es[order]
    edges = np.searchsorted(js, np.r_[shells, band + 1])  # shells are contiguous in the sorted js
    med = np.full(shells.size, np.nan)
    for k in range(shells.size):  # 2 * band shells: a short loop
        lo, hi = edges[k], edges[k + 1]
        if hi - lo >= 10:
            med[k] = float(np.median(es[lo:hi]))
    return pos, med


def _crossing(pos: np.ndarray, prof: np.ndarray, level: float) -> float:
    """Position where ``prof`` first reaches ``level`` (linear interpolation; it must reach it)."""
    k = int(np.argmax(prof >= level))  # first index at or above level
    if k == 0:
        return float(pos[0])
    p0, p1, v0, v1 = pos[k - 1], pos[k], prof[k - 1], prof[k]
    return float(p0 + (level - v0) / (v1 - v0) * (p1 - p0))


def _rise_width(pos: np.ndarray, prof: np.ndarray, lo_frac: float = 0.1, hi_frac: float = 0.9) -> float:
    """Distance between the first crossings (scanning from outside inwards) of the 10% and 90% levels
    between the profile's outside floor (its minimum at s < 0) and its inside peak (maximum at s > 0)."""
    ok = np.isfinite(prof)
    pos, prof = pos[ok], prof[ok]
    if not (pos < 0).any() or not (pos > 0).any():
        return float("nan")
    floor, peak = float(prof[pos < 0].min()), float(prof[pos > 0].max())
    if peak - floor < 1e-6:
        return float("nan")
    return (_crossing(pos, prof, floor + hi_frac * (peak - floor))
            - _crossing(pos, prof, floor + lo_frac * (peak - floor)))


def single_image_stats(rain: np.ndarray, min_area: int = 20, window: int = 5,
                       smooth_level: float = 6.0) -> dict[str, float]:
    """Partner-free drop proxies of one rainy image (no clean shot needed):

    smooth_frac  fraction of pixels whose local contrast -- the std of Y over a ``window`` x ``window``
                 box -- is below ``smooth_level`` grey levels. Defocused drops are smooth blobs, but so
                 are sky, walls and road: compare with the same number on clean shots (the confound).
    smooth_d50   area-weighted median equivalent diameter sqrt(4 area / pi) (px) of the smooth regions'
                 connected components of >= ``min_area`` px (8-connectivity): the size of the smooth
                 blob that a typical smooth pixel lies in; a blob-size proxy with the same confound.

    A weak proxy: on the 4 real train pairs smooth_frac(rain) - smooth_frac(clean) is +0.15, +0.20,
    +0.32 and -0.05 (5x5, level 6; the setting that separated them best of 5..25 px x 1.5..6 levels),
    while scenes differ by more than that. It ranks rainy photos of similar scenes, nothing finer.
    """
    from scipy.ndimage import uniform_filter
    from skimage.measure import label

    y = _luma(rain)
    mean = uniform_filter(y, window, mode="reflect")
    var = np.maximum(uniform_filter(y * y, window, mode="reflect") - mean * mean, 0.0)
    smooth = np.sqrt(var) < smooth_level
    areas = np.bincount(label(smooth, connectivity=2).ravel())[1:]
    areas = np.sort(areas[areas >= min_area])
    d50 = float(np.sqrt(4 * areas[np.searchsorted(np.cumsum(areas), 0.5 * areas.sum())] / np.pi)) \
        if areas.size else float("nan")
    return {"smooth_frac": float(smooth.mean()), "smooth_d50": d50}


# ---------------------------------------------------------------------------------------------------
# the steps of realism_stats


def _drop_components(m: np.ndarray,
                     min_area: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """Label M (8-connectivity) and keep the components of >= ``min_area`` px. Returns the labels
    (H, W), the areas of every label, the kept label ids, their union D (H, W) bool, and the diameter
    statistics (n_drops, diam_p25/p50/p75 and the area-weighted median diam_area_p50)."""
    from skimage.measure import label

    lab = label(m, connectivity=2)
    areas = np.bincount(lab.ravel())
    keep = areas >= min_area
    keep[0] = False
    ids = np.flatnonzero(keep)
    diam = np.sqrt(4 * areas[ids] / np.pi)  # equivalent diameters, px
    p25, p50, p75 = np.percentile(diam, [25, 50, 75]) if diam.size else (np.nan,) * 3
    if diam.size:
        o = np.argsort(diam)
        cum = np.cumsum(areas[ids][o])
        w50 = float(diam[o][np.searchsorted(cum, 0.5 * cum[-1])])
    else:
        w50 = float("nan")
    stats = {"n_drops": int(ids.size), "diam_p25": float(p25), "diam_p50": float(p50),
             "diam_p75": float(p75), "diam_area_p50": w50}
    return lab, areas, ids, keep[lab], stats


def _tone_fit(m: np.ndarray, yr: np.ndarray, yc: np.ndarray,
              exclude_px: float) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """Least-squares Y(rain) = gain Y(clean) + offset over the unclipped pixels farther than
    ``exclude_px`` from M. Returns the fit pixels (H, W) bool, the residual E = |Y(rain) - gain Y(clean)
    - offset| (H, W) and {gain, offset, tone_rmse}."""
    from scipy.ndimage import distance_transform_edt

    far = distance_transform_edt(~m) > exclude_px if m.any() else np.ones_like(m)
    fit = far & (yc >= 2) & (yc <= 253) & (yr >= 2) & (yr <= 253)
    if fit.sum() < 100:  # almost everything is drop: fit on every unclipped pixel instead
        fit = (yc >= 2) & (yc <= 253) & (yr >= 2) & (yr <= 253)
    xc, xr = yc[fit], yr[fit]
    var = float(xc.var())
    gain = float(((xc - xc.mean()) * (xr - xr.mean())).mean() / var) if var > 1e-9 else 1.0
    offset = float(xr.mean() - gain * xc.mean())
    err = np.abs(yr - (gain * yc + offset))
    tone_rmse = float(np.sqrt(np.mean(err[fit] ** 2)))
    return fit, err, {"gain": gain, "offset": offset, "tone_rmse": tone_rmse}


def _edge_softness(err: np.ndarray, drops: np.ndarray, band: int, soft: int,
                   threshold: int) -> dict[str, float]:
    """edge_width: the 10-90% rise of E's shell-median profile across the boundary of D;
    soft_ratio: soft <= E < threshold pixels over E >= threshold pixels, on D and ``band`` px around it."""
    from scipy.ndimage import distance_transform_edt

    if not (drops.any() and (~drops).any()):
        return {"edge_width": float("nan"), "soft_ratio": float("nan")}
    pos, prof = _edge_profile(err, drops, band)
    zone = drops | (distance_transform_edt(~drops) <= band)
    hard = int(((err >= threshold) & zone).sum())
    soft_ratio = float(((err >= soft) & (err < threshold) & zone).sum() / hard) if hard else float("nan")
    return {"edge_width": _rise_width(pos, prof), "soft_ratio": soft_ratio}


def _component_std(lab: np.ndarray, ids: np.ndarray, n: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Std of ``y`` (H, W) over each labelled component ``ids`` (of ``n`` px each) -> (len(ids),)."""
    s1 = np.bincount(lab.ravel(), y.ravel(), minlength=lab.max() + 1)[ids]
    s2 = np.bincount(lab.ravel(), (y * y).ravel(), minlength=lab.max() + 1)[ids]
    return np.sqrt(np.maximum(s2 / n - (s1 / n) ** 2, 0.0))


def _drop_contrast(lab: np.ndarray, areas: np.ndarray, ids: np.ndarray, yr: np.ndarray,
                   yc: np.ndarray) -> float:
    """Median over drops of std(Y rain) / std(Y clean) inside the drop (drops with clean std >= 2)."""
    if not ids.size:
        return float("nan")
    n = areas[ids].astype(np.float64)
    sr, sc = _component_std(lab, ids, n, yr), _component_std(lab, ids, n, yc)
    ok = sc >= 2.0
    return float(np.median(sr[ok] / sc[ok])) if ok.any() else float("nan")


def realism_stats(rain: np.ndarray, clean: np.ndarray, min_area: int = 20, threshold: int = 30,
                  soft: int = 5, exclude_px: float = 9.0, band: int = 16) -> dict[str, Any]:
    """Realism statistics of one aligned (rain, clean) uint8 RGB pair (notation: the module docstring).

    n_drops, diam_p25/p50/p75, diam_area_p50
        number of drops; percentiles of their equivalent diameters sqrt(4 area / pi), px; the
        area-weighted median (the diameter of the drop that a typical pixel of D lies in: less
        dominated by the many small fragments that texture changes leave in M of real pairs).
    gain, offset, tone_rmse
        least-squares fit Y(rain) = gain * Y(clean) + offset over the pixels farther than
        ``exclude_px`` from M (M dilated by a disk) whose Y lies in [2, 253] in both shots (no
        clipping); tone_rmse = rms residual of the fit there (misalignment, motion, glass blur).
    edge_width (primary softness measure)
        E = |Y(rain) - gain Y(clean) - offset| (the residual of the tone fit) is summarised by its
        median over 1-px shells at signed distance s from the boundary of D (s in -band..band,
        outside < 0); the width is the distance between the first crossings, going inwards, of the
        10% and 90% levels between the outside floor (min over s < 0) and the inside peak (max over
        s > 0). A straight step blurred by a Gaussian of sigma reads 2.56 sigma (a 60 px disk: 2.4-2.5
        sigma, the curvature); a perfectly sharp edge ~0.8 px
        (the pixel grid). Relative to its own floor and peak, so independent of the drops' contrast.
    soft_ratio (secondary)
        over D and the pixels within ``band`` px outside it: pixels with soft <= E < threshold over
        pixels with E >= threshold. Grows with blur, but also with small drops and low drop contrast.
    drop_contrast
        median over drops of std(Y rain) / std(Y clean) inside the drop (drops with clean std >= 2):
        below 1 when the drop shows a blurred or minified view, ~0 for a flat blob.
    drop_shift_r/g/b
        mean rain - clean per channel over D, grey levels.
    coverage, changed_5, changed_5_tone
        fraction of pixels in M; with |dY| >= ``soft``; with E >= ``soft`` (after the tone fit).
    mean_shift, contrast_ratio
        mean dY over all pixels; std Y(rain) / std Y(clean) over all pixels.
    detail_ratio
        std of the 4-neighbour Laplacian of Y, rain over clean, on the tone-fit pixels: below 1
        the gain a for a pure tone change (synthetic drops on B); below a when the whole rainy shot
        is softer (wet glass, focus).
    plus the partner-free proxies of :func:`single_image_stats` of the rainy image.
    """
    from scipy.ndimage import laplace

    rain, clean = np.asarray(rain), np.asarray(clean)
    if rain.shape != clean.shape or rain.ndim != 3 or rain.shape[2] != 3:
        raise ValueError(f"rain and clean must be (H, W, 3) images of one shape, got {rain.shape} and "
                         f"{clean.shape}")
    # 1. the difference mask M and the lumas
    m = np.abs(rain.astype(np.int16) - clean.astype(np.int16)).max(-1) >= threshold  # (H, W)
    yr, yc = _luma(rain), _luma(clean)  # (H, W)
    dy = yr - yc
    # 2. drops: the large components of M, their sizes
    lab, areas, ids, drops, out = _drop_components(m, min_area)  # drops: D (H, W) bool
    # 3. the rainy shot's tone away from the drops, and its residual E
    fit, err, tone = _tone_fit(m, yr, yc, exclude_px)
    # 4. edge softness, contrast and colour inside the drops
    out.update(_edge_softness(err, drops, band, soft, threshold))
    out["drop_contrast"] = _drop_contrast(lab, areas, ids, yr, yc)
    shift = (rain[drops].astype(np.float64) - clean[drops]).mean(0) if drops.any() else np.full(3, np.nan)
    out.update(drop_shift_r=float(shift[0]), drop_shift_g=float(shift[1]), drop_shift_b=float(shift[2]))
    # 5. global change: coverage, changed fractions, tone, contrast and fine detail
    lr, lc = laplace(yr)[fit], laplace(yc)[fit]
    out.update({
        "coverage": float(m.mean()), "changed_5": float((np.abs(dy) >= soft).mean()),
        "changed_5_tone": float((err >= soft).mean()), **tone,
        "mean_shift": float(dy.mean()), "contrast_ratio": float(yr.std() / max(yc.std(), 1e-9)),
        "detail_ratio": float(lr.std() / max(lc.std(), 1e-9)),
    })
    out.update(single_image_stats(rain, min_area))
    return out
