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
rainy shot's global tone (gain/offset fit outside the drops); the per-pair statistics are
``agan.synth.realism.realism_stats``.

    table = realism_table()                  # None when the real folder is absent
    print(format_table(table))               # Markdown: real | synthetic (+ partner-free proxies)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from agan.images import difference_mask, list_images, read_image
from agan.synth.params import SynthParams
from agan.synth.realism import realism_stats, single_image_stats
from agan.synth.renderer import render

__all__ = ["AREA_BINS", "calibration_figure", "calibration_report", "default_real_dir", "format_table",
           "mask_stats", "realism_table"]

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
    rain, clean = _ids(rain_dir, "rain"), _ids(clean_dir, "clean")
    return [(rain[k], clean[k]) for k in sorted(set(rain) & set(clean))]


def _ids(folder: Path, kind: str) -> dict[int, Path]:
    """Numeric id -> path of the images ``<id>_<kind>.*`` in ``folder``."""
    return {int(m.group(1)): p for p in list_images(folder) if (m := re.match(rf"^(\d+)_{kind}$", p.stem))}


def mask_stats(rain: np.ndarray, clean: np.ndarray, min_area: int = 20,
               threshold: int = 30) -> dict[str, Any]:
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
        panels = [(e["real_rain"], f"real {e['id']}"), (e["real_mask"], "real M"),
                  (e["syn_rain"], "synthetic (same B)"), (e["syn_mask"], "synthetic M")]
        for c, (img, title) in enumerate(panels):
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
    """Real vs synthetic drops, measured with ``agan.synth.realism.realism_stats`` at the real frames'
    scale.

    ``real`` averages the real pairs in ``real_dir`` (default ../shared/real/train_pairs, 720x480);
    ``synthetic`` averages ``n_synthetic`` renders (``agan.synth.renderer.render`` with ``params``,
    default ``SynthParams()``, generator ``default_rng([seed, i, k])``) onto every real clean image, so
    only the drops (and the rainy shot's tone) differ. Averages are means over images (NaNs skipped),
    with the spread across images in ``<key>_sd``; ``per_image`` keeps every image's numbers.
    ``single`` holds the partner-free proxies (``agan.synth.realism.single_image_stats``) of the real
    rainy shots, the synthetic renders, the real clean shots (the scene's own smooth area) and every
    folder of ``unpaired_dir`` (default ``<real_dir>/../unpaired``; photos resized to fit 720x480).
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
        rows = [single_image_stats(_fit_frame(read_image(p)), min_area)
                for p in list_images(unpaired_dir / name)]
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
    counts = " | ".join(f"{g} ({t['single_counts'][g]})" for g in groups)
    lines += ["", "| partner-free proxy | " + counts + " |",
              "|" + "---|" * (len(groups) + 1)]
    for k in SINGLE_KEYS:
        cells = [labels[k].removeprefix("[single image] ")]
        cells += [_cell(fmts[k], t["single"][g][k], t["single"][g][k + "_sd"] if spread else None)
                  for g in groups]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
