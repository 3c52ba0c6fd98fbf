"""Calibrate the raindrop renderer against real Raindrop pairs.

Compares real rainy/clean pairs (../shared/real/train_pairs, never bundled) with synthetic drops
rendered onto the *same* clean images, so only the drops differ:
    coverage   fraction of pixels in the SPEC 4 difference mask M (|rain - clean| >= 30, any channel)
    drops      connected components of M (skimage.measure.label, 8-connectivity) of >= ``min_area`` px:
               count per image, median area, histogram over log2 area bins
    psnr       PSNR (dB, data range 255, RGB) of the rainy image against the clean one
    shift      mean brightness change rain - clean (grey levels)

    report = calibration_report()            # None when the real folder is absent
    fig = calibration_figure(report)         # side-by-side pictures + drop-size histograms
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from agan.images import difference_mask, list_images, read_image
from agan.synth import SynthParams, render

__all__ = ["AREA_BINS", "calibration_figure", "calibration_report", "default_real_dir", "mask_stats"]

AREA_BINS = 2.0 ** np.arange(4, 19)  # component areas 16 px .. 256k px, log2 bins


def default_real_dir() -> Path:
    """``<repo>/../shared/real/train_pairs`` (resolved from this file)."""
    return Path(__file__).resolve().parents[2] / "shared" / "real" / "train_pairs"


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
