"""Calibrate the raindrop renderer against real Raindrop pairs.

Compares real rainy/clean pairs (../shared/real/train_pairs, never bundled) with synthetic drops
rendered onto the *same* clean images, so only the drops differ:
    coverage   fraction of pixels in the difference mask M (|rain - clean| >= 30, any channel;
               docs/paper.md#raindrop-mask)
    drops      connected components of M (skimage.measure.label, 8-connectivity) of >= ``min_area`` px:
               count per image, median area, histogram over log2 area bins
    psnr       PSNR (dB, data range 255, RGB) of the rainy image against the clean one
    shift      mean brightness change rain - clean (grey levels)

    report = calibration_report()            # None when the real folder is absent
    fig = calibration_figure(report)         # side-by-side pictures + drop-size histograms

The realism table measures, at the real frames' scale (720x480), how synthetic drops differ from real
ones: drop diameters, edge softness, contrast and colour inside drops, the changed fraction and the
rainy shot's global tone (gain/offset fit outside the drops); see :func:`realism_stats`.

    table = realism_table()                  # None when the real folder is absent
    print(format_table(table))               # Markdown: real | synthetic (+ partner-free proxies)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from agan.images import difference_mask, list_images, read_image
from agan.synth.renderer import SynthParams, render

__all__ = ["AREA_BINS", "calibration_figure", "calibration_report", "default_real_dir", "format_table",
           "mask_stats", "realism_stats", "realism_table", "single_image_stats"]

AREA_BINS = 2.0 ** np.arange(4, 19)  # component areas 16 px .. 256k px, log2 bins


def default_real_dir() -> Path:
    """``<repo>/../shared/real/train_pairs`` (resolved from this file)."""
    return Path(__file__).resolve().parents[3] / "shared" / "real" / "train_pairs"


def _pairs(real_dir: Path) -> list[tuple[Path, Path]]:
    """Pairs ``rain|data/N_rain.*`` with ``clean|gt/N_clean.*`` by numeric id."""
    rain_dir = next((real_dir / d for d in ("rain", "data") if (real_dir / d).is_dir()), None)
    clean_dir = next((real_dir / d for d in ("clean", "gt") if (real_dir / d).is_dir()), None)
    if rain_dir is None or clean_dir is None:
        return []
    def ids(d, kind):
        return {int(m.group(1)): p for p in list_images(d) if (m := re.match(rf"^(\d+)_{kind}$", p.stem))}

    rain, clean = ids(rain_dir, "rain"), ids(clean_dir, "clean")
    return [(rain[k], clean[k]) for k in sorted(set(rain) & set(clean))]


def mask_stats(rain: np.ndarray, clean: np.ndarray, min_area: int = 20, threshold: int = 30) -> dict[str, Any]:
    """Statistics of one (rain, clean) uint8 pair; see the module docstring."""
    from skimage.measure import label

    m = difference_mask(rain, clean, threshold)[0].numpy() > 0
    lab = label(m, connectivity=2)
    areas = np.bincount(lab.ravel())[1:]
    big = areas[areas >= min_area]
    mse = float(((rain.astype(np.float64) - clean) ** 2).mean())
    return {
        "coverage": float(m.mean()),
        "n_drops": int(big.size),
        "median_area": float(np.median(big)) if big.size else 0.0,
        "area_hist": np.histogram(big, bins=AREA_BINS)[0].tolist(),
        "psnr": float(10 * np.log10(255.0 ** 2 / max(mse, 1e-10))),
        "shift": float((rain.astype(np.float64) - clean).mean()),
        "mask": m,
    }


def _summary(stats: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("coverage", "n_drops", "median_area", "psnr", "shift")
    out = {k: float(np.mean([s[k] for s in stats])) for k in keys}
    out.update({f"{k}_per_image": [round(float(s[k]), 4) for s in stats] for k in keys})
    out["area_hist"] = np.sum([s["area_hist"] for s in stats], 0).tolist()
    return out


def calibration_report(real_dir: str | Path | None = None, n_synthetic: int = 2, seed: int = 0,
                       params: SynthParams | None = None, min_area: int = 20,
                       keep_examples: bool = True) -> dict[str, Any] | None:
    """Real vs synthetic statistics; ``None`` when ``real_dir`` (default ../shared/real/train_pairs)
    is missing.  Synthetic drops are rendered ``n_synthetic`` times onto every real clean image."""
    real_dir = Path(real_dir) if real_dir else default_real_dir()
    if not real_dir.is_dir():
        return None
    pairs = _pairs(real_dir)
    if not pairs:
        return None
    real, syn, examples = [], [], []
    for i, (rp, cp) in enumerate(pairs):
        rain, clean = read_image(rp), read_image(cp)
        real.append(mask_stats(rain, clean, min_area))
        for k in range(n_synthetic):
            res = render(clean, np.random.default_rng([seed, i, k]), params)
            syn.append(mask_stats(res.rain, clean, min_area))
            if keep_examples and k == 0:
                examples.append({"id": rp.stem.split("_")[0], "real_rain": rain, "clean": clean,
                                 "real_mask": real[-1]["mask"], "syn_rain": res.rain,
                                 "syn_mask": syn[-1]["mask"], "syn_params": res.params})
    report = {"real_dir": str(real_dir), "n_real": len(real), "n_synthetic": len(syn),
              "min_area": min_area, "area_bins": AREA_BINS.tolist(),
              "real": _summary(real), "synthetic": _summary(syn)}
    if keep_examples:
        report["examples"] = examples
    return report


def calibration_figure(report: dict[str, Any], max_rows: int = 4):
    """Rows of (real rain, real M, synthetic rain, synthetic M) + a drop-size histogram panel."""
    import matplotlib.pyplot as plt

    ex = report.get("examples", [])[:max_rows]
    rows = len(ex) + 1
    fig, axes = plt.subplots(rows, 4, figsize=(16, 2.8 * rows), squeeze=False)
    for r, e in enumerate(ex):
        for c, (img, title) in enumerate([(e["real_rain"], f"real {e['id']}"), (e["real_mask"], "real M"),
                                          (e["syn_rain"], "synthetic (same B)"), (e["syn_mask"], "synthetic M")]):
            axes[r, c].imshow(img, cmap="gray" if img.ndim == 2 else None)
            axes[r, c].set_title(title, fontsize=9)
            axes[r, c].axis("off")
    bins = np.asarray(report["area_bins"])
    centres = np.sqrt(bins[:-1] * bins[1:])
    ax = axes[-1, 0]
    for name in ("real", "synthetic"):
        h = np.asarray(report[name]["area_hist"], float)
        ax.plot(centres, h / max(h.sum(), 1), marker="o", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("drop (component) area, px")
    ax.set_ylabel("fraction")
    ax.legend()
    ax = axes[-1, 1]
    keys = ["coverage", "psnr", "n_drops", "median_area"]
    text = "\n".join(f"{k:>12}: real {report['real'][k]:8.3f}  synthetic {report['synthetic'][k]:8.3f}"
                     for k in keys)
    ax.text(0, 0.5, text, family="monospace", fontsize=9, va="center")
    for a in axes[-1, 1:]:
        a.axis("off")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------------
# realism table: how synthetic drops compare with real ones, at the real frames' scale (720x480)

LUMA = np.array([0.299, 0.587, 0.114])  # Y of RGB (ITU-R BT.601), grey levels 0..255
UNPAIRED_SETS = ("raindrop_style", "raindrop_clarity", "in_the_wild")
# (key, label, format) of the table rows, in order; the paired statistics, then the single-image proxy
TABLE_ROWS = (
    ("n_drops", "drops per image (components of M >= min_area)", "{:.1f}"),
    ("diam_p25", "drop diameter, 25th percentile (px)", "{:.1f}"),
    ("diam_p50", "drop diameter, median (px)", "{:.1f}"),
    ("diam_p75", "drop diameter, 75th percentile (px)", "{:.1f}"),
    ("diam_area_p50", "drop diameter, area-weighted median (px)", "{:.1f}"),
    ("edge_width", "edge softness: 10-90% width of the drop edge (px)", "{:.2f}"),
    ("soft_ratio", "edge softness: soft / hard pixels near drops", "{:.2f}"),
    ("drop_contrast", "contrast inside drops: std rain / std clean", "{:.3f}"),
    ("drop_shift_r", "colour inside drops: mean R shift (grey levels)", "{:+.1f}"),
    ("drop_shift_g", "colour inside drops: mean G shift (grey levels)", "{:+.1f}"),
    ("drop_shift_b", "colour inside drops: mean B shift (grey levels)", "{:+.1f}"),
    ("coverage", "fraction of pixels in M (|d| >= 30, any channel)", "{:.3f}"),
    ("changed_5", "fraction of pixels with |dY| >= 5", "{:.3f}"),
    ("changed_5_tone", "fraction with |dY| >= 5 after the tone fit", "{:.3f}"),
    ("gain", "tone fit outside drops: gain a (rain_Y = a clean_Y + b)", "{:.3f}"),
    ("offset", "tone fit outside drops: offset b (grey levels)", "{:+.1f}"),
    ("tone_rmse", "tone fit outside drops: rms residual (grey levels)", "{:.1f}"),
    ("mean_shift", "mean Y shift rain - clean, all pixels", "{:+.1f}"),
    ("contrast_ratio", "global contrast: std(rain_Y) / std(clean_Y)", "{:.3f}"),
    ("detail_ratio", "fine detail outside drops: std Laplacian rain / clean", "{:.3f}"),
    ("smooth_frac", "[single image] smooth fraction (5x5 local std of Y < 6)", "{:.3f}"),
    ("smooth_d50", "[single image] smooth blobs, area-weighted median diameter (px)", "{:.1f}"),
)


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

    def crossing(level):
        k = int(np.argmax(prof >= level))  # first index at or above level (exists: the peak is)
        if k == 0:
            return float(pos[0])
        p0, p1, v0, v1 = pos[k - 1], pos[k], prof[k - 1], prof[k]
        return float(p0 + (level - v0) / (v1 - v0) * (p1 - p0))

    return crossing(floor + hi_frac * (peak - floor)) - crossing(floor + lo_frac * (peak - floor))


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


def realism_stats(rain: np.ndarray, clean: np.ndarray, min_area: int = 20, threshold: int = 30,
                  soft: int = 5, exclude_px: float = 9.0, band: int = 16) -> dict[str, Any]:
    """Realism statistics of one aligned (rain, clean) uint8 RGB pair; Y = BT.601 luma in grey levels,
    dY = Y(rain) - Y(clean), M = |rain - clean| >= ``threshold`` in any channel (docs/paper.md#raindrop-mask),
    "drops" = the 8-connected components of M of >= ``min_area`` px, D = their union.

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
        over D and the pixels within ``band`` px outside it: pixels with soft <= E < threshold over pixels with
        E >= threshold. Grows with blur, but also with small drops and low drop contrast.
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
    from scipy.ndimage import distance_transform_edt, laplace
    from skimage.measure import label

    rain, clean = np.asarray(rain), np.asarray(clean)
    if rain.shape != clean.shape or rain.ndim != 3 or rain.shape[2] != 3:
        raise ValueError(f"rain and clean must be (H, W, 3) images of one shape, got {rain.shape} and "
                         f"{clean.shape}")
    diff = np.abs(rain.astype(np.int16) - clean.astype(np.int16))
    m = diff.max(-1) >= threshold
    yr, yc = _luma(rain), _luma(clean)
    dy = yr - yc

    lab = label(m, connectivity=2)
    areas = np.bincount(lab.ravel())
    keep = areas >= min_area
    keep[0] = False
    drops = keep[lab]
    ids = np.flatnonzero(keep)
    diam = np.sqrt(4 * areas[ids] / np.pi)
    p25, p50, p75 = np.percentile(diam, [25, 50, 75]) if diam.size else (np.nan,) * 3
    if diam.size:
        o = np.argsort(diam)
        cum = np.cumsum(areas[ids][o])
        w50 = float(diam[o][np.searchsorted(cum, 0.5 * cum[-1])])
    else:
        w50 = float("nan")

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

    if drops.any() and (~drops).any():
        pos, prof = _edge_profile(err, drops, band)
        edge_width = _rise_width(pos, prof)
        d_out = distance_transform_edt(~drops)
        zone = drops | (d_out <= band)
        hard = int(((err >= threshold) & zone).sum())
        soft_ratio = float(((err >= soft) & (err < threshold) & zone).sum() / hard) if hard else float("nan")
    else:
        edge_width = soft_ratio = float("nan")

    contrast = float("nan")
    if ids.size:
        n = areas[ids].astype(np.float64)
        def comp_std(y):
            s1 = np.bincount(lab.ravel(), y.ravel(), minlength=lab.max() + 1)[ids]
            s2 = np.bincount(lab.ravel(), (y * y).ravel(), minlength=lab.max() + 1)[ids]
            return np.sqrt(np.maximum(s2 / n - (s1 / n) ** 2, 0.0))
        sr, sc = comp_std(yr), comp_std(yc)
        ok = sc >= 2.0
        if ok.any():
            contrast = float(np.median(sr[ok] / sc[ok]))
    shift = (rain[drops].astype(np.float64) - clean[drops]).mean(0) if drops.any() else np.full(3, np.nan)

    lr, lc = laplace(yr)[fit], laplace(yc)[fit]
    out = {
        "n_drops": int(ids.size), "diam_p25": float(p25), "diam_p50": float(p50), "diam_p75": float(p75),
        "diam_area_p50": w50,
        "edge_width": edge_width, "soft_ratio": soft_ratio, "drop_contrast": contrast,
        "drop_shift_r": float(shift[0]), "drop_shift_g": float(shift[1]), "drop_shift_b": float(shift[2]),
        "coverage": float(m.mean()), "changed_5": float((np.abs(dy) >= soft).mean()),
        "changed_5_tone": float((err >= soft).mean()),
        "gain": gain, "offset": offset, "tone_rmse": tone_rmse,
        "mean_shift": float(dy.mean()), "contrast_ratio": float(yr.std() / max(yc.std(), 1e-9)),
        "detail_ratio": float(lr.std() / max(lc.std(), 1e-9)),
    }
    out.update(single_image_stats(rain, min_area))
    return out


PAIRED_KEYS = tuple(k for k, _, _ in TABLE_ROWS if not k.startswith("smooth"))
SINGLE_KEYS = ("smooth_frac", "smooth_d50")


def _mean_rows(rows: list[dict[str, Any]], keys) -> dict[str, float]:
    out = {}
    for k in keys:
        v = np.array([r[k] for r in rows], np.float64)
        out[k] = float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
        out[k + "_sd"] = float(np.nanstd(v)) if np.isfinite(v).any() else float("nan")
    return out


def _fit_frame(img: np.ndarray, size: tuple[int, int] = (720, 480)) -> np.ndarray:
    """Resize (keeping the aspect) so that the image fits ``size`` = (W, H) with its longer side (the
    unpaired photos come at 259 px .. 4032 px wide; the proxies are measured at the pairs' scale)."""
    from PIL import Image

    h, w = img.shape[:2]
    s = min(max(size) / max(w, h), min(size) / min(w, h))  # portrait photos: the long side to 720
    if abs(s - 1.0) < 1e-3:
        return img
    return np.asarray(Image.fromarray(img).resize((max(1, round(w * s)), max(1, round(h * s))),
                                                  Image.Resampling.LANCZOS))


def realism_table(real_dir: str | Path | None = None, params: SynthParams | None = None,
                  n_synthetic: int = 2, seed: int = 0, min_area: int = 20,
                  unpaired_dir: str | Path | None = None, keep_example: bool = True) -> dict[str, Any] | None:
    """Real vs synthetic drops, measured with :func:`realism_stats` at the real frames' scale.

    ``real`` averages the real pairs in ``real_dir`` (default ../shared/real/train_pairs, 720x480);
    ``synthetic`` averages ``n_synthetic`` renders (``agan.synth.renderer.render`` with ``params``, default
    ``SynthParams()``, generator ``default_rng([seed, i, k])``) onto every real clean image, so only
    the drops (and the rainy shot's tone) differ. Averages are means over images (NaNs skipped), with
    the spread across images in ``<key>_sd``; ``per_image`` keeps every image's numbers.
    ``single`` holds the partner-free proxies (:func:`single_image_stats`) of the real rainy shots,
    the synthetic renders, the real clean shots (the scene's own smooth area) and every folder of
    ``unpaired_dir`` (default ``<real_dir>/../unpaired``; photos resized to fit 720x480).
    Returns ``None`` when ``real_dir`` is absent or holds no pairs."""
    real_dir = Path(real_dir) if real_dir else default_real_dir()
    pairs = _pairs(real_dir) if real_dir.is_dir() else []
    if not pairs:
        return None
    params = params or SynthParams()
    real, syn, clean_single, example = [], [], [], None
    for i, (rp, cp) in enumerate(pairs):
        rain, clean = read_image(rp), read_image(cp)
        real.append(realism_stats(rain, clean, min_area) | {"id": rp.stem.split("_")[0]})
        clean_single.append(single_image_stats(clean, min_area))
        for k in range(n_synthetic):
            res = render(clean, np.random.default_rng([seed, i, k]), params)
            syn.append(realism_stats(res.rain, clean, min_area) | {"id": f"{rp.stem.split('_')[0]}/{k}"})
            if keep_example and example is None:
                example = {"id": real[-1]["id"], "real_rain": rain, "clean": clean, "syn_rain": res.rain,
                           "syn_params": res.params}
    single = {"real rain": _mean_rows(real, SINGLE_KEYS), "synthetic rain": _mean_rows(syn, SINGLE_KEYS),
              "real clean": _mean_rows(clean_single, SINGLE_KEYS)}
    counts = {"real rain": len(real), "synthetic rain": len(syn), "real clean": len(clean_single)}
    unpaired_dir = Path(unpaired_dir) if unpaired_dir else real_dir.parent / "unpaired"
    for name in sorted(d.name for d in unpaired_dir.iterdir() if d.is_dir()) if unpaired_dir.is_dir() else []:
        rows = [single_image_stats(_fit_frame(read_image(p)), min_area) for p in list_images(unpaired_dir / name)]
        if rows:
            single[name], counts[name] = _mean_rows(rows, SINGLE_KEYS), len(rows)
    table = {"real_dir": str(real_dir), "n_real": len(real), "n_synthetic": len(syn), "min_area": min_area,
             "params": params.to_dict(), "seed": seed,
             "real": _mean_rows(real, PAIRED_KEYS + SINGLE_KEYS),
             "synthetic": _mean_rows(syn, PAIRED_KEYS + SINGLE_KEYS),
             "single": single, "single_counts": counts,
             "per_image": {"real": real, "synthetic": syn}}
    if example is not None:
        table["example"] = example
    return table


def _cell(fmt: str, v: float, sd: float | None = None) -> str:
    if not np.isfinite(v):
        return "–"
    return fmt.format(v) + (f" ± {fmt.format(sd).lstrip('+')}" if sd is not None and np.isfinite(sd) else "")


def format_table(t: dict[str, Any], per_image: bool = False, spread: bool = True) -> str:
    """Markdown: the paired statistics (real | synthetic, mean ± sd over images; ``per_image`` adds a
    column per real pair), then the partner-free proxies for every group of :func:`realism_table`."""
    fmts = {k: f for k, _, f in TABLE_ROWS}
    labels = {k: lab for k, lab, _ in TABLE_ROWS}
    head = ["statistic", f"real ({t['n_real']} pairs)", f"synthetic ({t['n_synthetic']} renders)"]
    reals = t["per_image"]["real"] if per_image else []
    head += [f"real {r['id']}" for r in reals]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for k in PAIRED_KEYS:
        cells = [labels[k]] + [_cell(fmts[k], t[g][k], t[g][k + "_sd"] if spread else None)
                               for g in ("real", "synthetic")]
        cells += [_cell(fmts[k], r[k]) for r in reals]
        lines.append("| " + " | ".join(cells) + " |")
    groups = list(t["single"])
    lines += ["", "| partner-free proxy | " + " | ".join(f"{g} ({t['single_counts'][g]})" for g in groups) + " |",
              "|" + "---|" * (len(groups) + 1)]
    for k in SINGLE_KEYS:
        cells = [labels[k].removeprefix("[single image] ")]
        cells += [_cell(fmts[k], t["single"][g][k], t["single"][g][k + "_sd"] if spread else None) for g in groups]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
