"""Figure helpers shared by the notebooks and ``agan.experiments.figures``: attention strips, image grids,
attention overlays, captions and loss curves from ``metrics.jsonl``.

Reference: Qian et al., CVPR 2018 -- Fig. 3/8 (attention maps A_1..A_N across the recurrent
steps), Fig. 4 (multi-scale outputs S_1, S_2, O). Table 1 (its rows, the paper's numbers and its
formatting) is ``agan.experiments.table1``; where the repository's folders are, ``agan.viz.paths``.

Conventions: images are tensors (3, H, W) / (1, 3, H, W) in [0, 1], HxWx3 uint8/float arrays or
PIL images; ``to_display`` turns any of them into an HxWx3 float array in [0, 1]. Attention maps
are (1, H, W) / (B, 1, H, W) tensors or HxW arrays and are *not* squashed by the network, so
strips share one colour scale (``vmin``/``vmax``) to keep the steps comparable.
Only matplotlib, numpy and torch; nothing here trains, loads or writes models.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agan.train.records import read_rows

__all__ = [
    "add_caption",
    "attention_overlay",
    "attention_strip",
    "attention_to_display",
    "image_grid",
    "plot_loss_curves",
    "read_metrics",
    "save_figure",
    "to_display",
]

# ----------------------------------------------------------------------------------------------
# conversions
# ----------------------------------------------------------------------------------------------
def to_display(image: Any) -> np.ndarray:
    """Tensor (3, H, W) / (1, 3, H, W) in [0, 1], HxWx3 array (uint8 or float) or PIL image
    -> HxWx3 float64 array clipped to [0, 1]."""
    try:
        import torch

        if isinstance(image, torch.Tensor):
            t = image.detach().float().cpu()
            if t.dim() == 4:
                if t.shape[0] != 1:
                    raise ValueError(f"expected one image, got a batch of {t.shape[0]}")
                t = t[0]
            if t.dim() != 3 or t.shape[0] not in (1, 3):
                raise ValueError(f"expected an image tensor (3, H, W), got {tuple(image.shape)}")
            image = t.permute(1, 2, 0).numpy()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    arr = np.asarray(image)
    if arr.dtype == np.uint8:
        arr = arr / 255.0
    arr = arr.astype(np.float64)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (1, 3):
        raise ValueError(f"expected an HxWx3 image, got shape {arr.shape}")
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return np.clip(arr, 0.0, 1.0)


def attention_to_display(A: Any) -> np.ndarray:
    """An attention map A_t ((1, H, W), (1, 1, H, W) tensor or HxW array) -> HxW float array (not clipped)."""
    if hasattr(A, "detach"):
        A = A.detach().float().cpu().numpy()
    arr = np.asarray(A, dtype=np.float64)
    arr = arr.reshape(arr.shape[-2:]) if arr.ndim > 2 and int(np.prod(arr.shape[:-2])) == 1 else arr
    if arr.ndim != 2:
        raise ValueError(f"expected one attention map (H, W), got shape {np.asarray(A).shape}")
    return arr


# ----------------------------------------------------------------------------------------------
# figures
# ----------------------------------------------------------------------------------------------
def _new_figure(rows: int, cols: int, ax_size: float | tuple[float, float]):
    import matplotlib.pyplot as plt

    w, h = (ax_size, ax_size) if np.isscalar(ax_size) else ax_size
    fig, axes = plt.subplots(rows, cols, figsize=(w * cols, h * rows), squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig, axes


def attention_strip(image: Any, attention: Sequence[Any], *, mask: Any = None, output: Any = None,
                    vmin: float | None = 0.0, vmax: float | None = None, cmap: str = "jet",
                    ax_size: float = 2.2, title: str | None = None):
    """Paper Figs. 3/8: the input I, then A_1..A_N on one colour scale, then optionally the mask M and O.

    ``vmax=None`` uses the largest value over all steps (at least 1), so sharpening with t stays visible.
    Returns the matplotlib Figure.
    """
    maps = [attention_to_display(A) for A in attention]
    if vmax is None:
        vmax = max([1.0] + [float(m.max()) for m in maps])
    panels: list[tuple[str, Any, bool]] = [("input I", to_display(image), False)]
    panels += [(f"A_{t}", m, True) for t, m in enumerate(maps, start=1)]
    if mask is not None:
        panels.append(("mask M", attention_to_display(mask), True))
    if output is not None:
        panels.append(("output O", to_display(output), False))
    fig, axes = _new_figure(1, len(panels), ax_size)
    for ax, (name, data, is_map) in zip(axes[0], panels):
        if is_map:
            ax.imshow(data, cmap=cmap, vmin=vmin, vmax=vmax)
        else:
            ax.imshow(data)
        ax.set_title(name, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def _is_map(item: Any) -> bool:
    """A single-channel map: HxW array, (1, H, W) or (1, 1, H, W) tensor/array."""
    shape = tuple(item.shape) if hasattr(item, "shape") else np.shape(item)
    return len(shape) == 2 or (len(shape) in (3, 4) and shape[-3] == 1)


def image_grid(rows: Sequence[Sequence[Any]], *, col_titles: Sequence[str] | None = None,
               row_titles: Sequence[str] | None = None, ax_size: float | tuple[float, float] = 2.2,
               cmap: str = "jet", title: str | None = None):
    """A grid of images (rows x columns). An entry may be an image (see ``to_display``), a 2-D map
    (drawn with ``cmap`` on its own range) or None (blank). ``ax_size``: inches per panel, one number
    (square panels) or (width, height). Returns the Figure."""
    n_rows, n_cols = len(rows), max((len(r) for r in rows), default=0)
    if n_rows == 0 or n_cols == 0:
        raise ValueError("image_grid needs at least one image")
    fig, axes = _new_figure(n_rows, n_cols, ax_size)
    for i, row in enumerate(rows):
        for j in range(n_cols):
            ax = axes[i][j]
            item = row[j] if j < len(row) else None
            if item is None:
                ax.axis("off")
                continue
            is_map = _is_map(item)
            if is_map:
                ax.imshow(attention_to_display(item), cmap=cmap)
            else:
                ax.imshow(to_display(item))
            if i == 0 and col_titles is not None and j < len(col_titles):
                ax.set_title(col_titles[j], fontsize=9)
            if j == 0 and row_titles is not None and i < len(row_titles):
                ax.set_ylabel(row_titles[i], fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def attention_overlay(image: Any, A: Any, *, vmin: float = 0.0, vmax: float = 1.0, cmap: str = "jet",
                      alpha: float = 0.65) -> np.ndarray:
    """An attention map drawn over its image -> HxWx3 float array in [0, 1].

    The map is coloured with ``cmap`` on the scale ``vmin..vmax`` (values outside are clipped) and laid
    over ``image`` with an opacity that grows with the map: ``alpha * (A - vmin) / (vmax - vmin)``, so
    where A is 0 the image shows through untouched and where A reaches ``vmax`` the colour covers it at
    ``alpha``. ``A`` must have the image's height and width (``attention_to_display`` shapes)."""
    import matplotlib

    img = to_display(image)
    a = attention_to_display(A)
    if a.shape != img.shape[:2]:
        raise ValueError(f"map {a.shape} and image {img.shape[:2]} differ in size")
    if not vmax > vmin:
        raise ValueError(f"vmax must be > vmin, got vmin={vmin}, vmax={vmax}")
    v = np.clip((a - vmin) / (vmax - vmin), 0.0, 1.0)
    colour = matplotlib.colormaps[cmap](v)[..., :3]
    w = (alpha * v)[..., None]
    return np.clip(img * (1.0 - w) + colour * w, 0.0, 1.0)


def add_caption(fig, text: str, *, fontsize: float = 9.0, width: int | None = None):
    """Write ``text`` under the figure (``fig.text`` below its bottom edge: ``save_figure``'s tight bounding
    box takes it in), each paragraph (``\n``-separated) wrapped to the figure's width. Returns the Text."""
    import textwrap

    if width is None:  # characters of ~0.55 em that fit across the figure
        width = max(60, int(fig.get_size_inches()[0] * 72 / (0.55 * fontsize)))
    wrapped = "\n".join(textwrap.fill(par, width, break_on_hyphens=False, break_long_words=False)
                         for par in text.split("\n"))
    return fig.text(0.005, -0.005, wrapped, ha="left", va="top", fontsize=fontsize)


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """Read a JSON-lines metrics log (one object per line, e.g. runs/<name>/metrics.jsonl).
    Blank lines are skipped; a malformed line raises ValueError naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no metrics log (train a run first: agan train --preset cpu)")
    return read_rows(path)


def _series(records: Iterable[Mapping], key: str, x_key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for i, rec in enumerate(records):
        v = rec.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            xs.append(float(rec.get(x_key, i)))
            ys.append(float(v))
    return xs, ys


# legend text for the trainer's validation keys (metrics.jsonl rows with "split": "val"; the rows with
# "split": "real", the real pairs of Config.real_val, are read as real_<key>: see _real_keys)
_CURVE_LABELS = {"psnr": "output O", "ssim": "output O", "psnr_input": "rainy input I",
                 "ssim_input": "rainy input I", "psnr_raw": "O of the raw G (ema on)",
                 "ssim_raw": "O of the raw G (ema on)"}
# ... and beside real pairs, where "output O" alone would not say which images
_CURVE_LABELS_WITH_REAL = {**_CURVE_LABELS, "psnr": "val (synthetic)", "ssim": "val (synthetic)",
                           "psnr_input": "synthetic input", "ssim_input": "synthetic input",
                           "real_psnr": "real pairs", "real_ssim": "real pairs",
                           "real_psnr_input": "real input", "real_ssim_input": "real input"}
# one colour per set of images (output solid, its rainy input dashed); the loss terms keep the default cycle
_CURVE_COLORS = {"val_psnr": "C0", "val_ssim": "C0", "psnr": "C0", "ssim": "C0", "psnr_raw": "C2",
                 "ssim_raw": "C2", "real_psnr": "C3", "real_ssim": "C3"}


def _real_keys(records: Iterable[Mapping], x_key: str) -> tuple[list[Mapping], list[str]]:
    """Rows with ``"split": "real"`` (the real pairs' validation) with their keys renamed ``real_<key>`` (with
    several sets of real pairs, ``real <set>_<key>``), so that their psnr / ssim never join the synthetic
    validation's; the other rows as they are. Also: the sets of real pairs seen, in order."""
    records = list(records)
    sets = list(dict.fromkeys(str(r.get("set", "")) for r in records if r.get("split") == "real"))
    out = []
    for rec in records:
        if rec.get("split") == "real":
            tag = "real" if len(sets) == 1 else f"real {rec.get('set', '')}"
            rec = {(k if k in (x_key, "split") else f"{tag}_{k}"): v for k, v in rec.items() if k != "set"}
        out.append(rec)
    return out, sets


def plot_loss_curves(metrics: str | os.PathLike | Sequence[Mapping], keys: Sequence[str] | None = None,
                     *, x_key: str = "step", groups: Mapping[str, Sequence[str]] | None = None,
                     ax_size: float = 3.2, title: str | None = None):
    """Curves of a metrics log: one panel per group of keys (default: generator terms, discriminator terms,
    validation PSNR, validation SSIM), each against ``x_key``. Keys absent from the log are skipped;
    ``keys`` restricts what is drawn. The validation panels show the synthetic split and, where the log has
    ``"split": "real"`` rows (``Config.real_val``), the real pairs (keys ``real_psnr``, ``real_ssim``) beside
    it; each set's rainy input (``*_input``) is dashed in its colour. Returns the Figure."""
    records = read_metrics(metrics) if isinstance(metrics, (str, os.PathLike)) else list(metrics)
    records, sets = _real_keys(records, x_key)
    labels = dict(_CURVE_LABELS_WITH_REAL if sets else _CURVE_LABELS)
    colors = dict(_CURVE_COLORS)
    tags = ["real"] if len(sets) == 1 else [f"real {s}" for s in sets]
    if len(sets) > 1:  # one colour and label per set of real pairs
        for i, (tag, name) in enumerate(zip(tags, sets)):
            for m in ("psnr", "ssim"):
                labels[f"{tag}_{m}"], labels[f"{tag}_{m}_input"] = f"real: {name}", f"{name} input"
                colors[f"{tag}_{m}"] = f"C{3 + i}"
    if groups is None:
        groups = {"generator": ("L_G", "L_ATT", "L_M", "L_P", "L_GAN"),
                  "discriminator": ("L_D", "L_map"),
                  "validation PSNR (dB)": ("val_psnr", "val_psnr_input", "psnr", "psnr_raw", "psnr_input",
                                           *(f"{t}_psnr{s}" for t in tags for s in ("", "_input"))),
                  "validation SSIM": ("val_ssim", "val_ssim_input", "ssim", "ssim_raw", "ssim_input",
                                      *(f"{t}_ssim{s}" for t in tags for s in ("", "_input")))}
    panels = []
    for name, group_keys in groups.items():
        lines = [(k, *_series(records, k, x_key)) for k in group_keys if keys is None or k in keys]
        lines = [ln for ln in lines if ln[1]]
        if lines:
            panels.append((name, lines))
    if not panels:
        raise ValueError("no plottable series in the metrics (expected keys such as L_G, L_D, val_psnr)")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(ax_size * 1.3 * len(panels), ax_size), squeeze=False)
    for ax, (name, lines) in zip(axes[0], panels):
        for key, xs, ys in lines:
            dashed = key.endswith("_input")
            color = colors.get(key[: -len("_input")] if dashed else key)
            ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, ms=3, label=labels.get(key, key),
                    linestyle="--" if dashed else "-", **({"color": color} if color else {}))
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(x_key)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Save a Figure as PNG atomically (``agan.atomic.atomic_path``) and close it."""
    import matplotlib.pyplot as plt

    from agan.atomic import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    return path
