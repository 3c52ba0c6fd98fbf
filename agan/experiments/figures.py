"""The paper's figures, regenerated: compute the results once, then draw each figure from them.

Reference: Qian et al., CVPR 2018 -- Fig. 1 (inputs with raindrops vs results), Fig. 3 (attention maps
A_1..A_N across the recurrent steps), Fig. 4 (the contextual autoencoder's multi-scale outputs S_1, S_2, O),
Fig. 6 (qualitative comparison: input, Eigen13, Pix2Pix, ours, ground truth), Fig. 7 (the ablation
variants A, A+D, A+AD, AA+AD side by side) and Table 1 (PSNR / SSIM beside the paper's numbers).

    from agan.experiments.results import compute_results, load_results
    compute_results("figures", weights="", ablate_dir="runs/ablate-cpu")     # slow part, once
    results = load_results("figures")                                         # cheap
    figure3(results, "figures")                                               # one per figure
    make_all("figures", weights="", ablate_dir="runs/ablate-cpu")            # all of it
    python -m agan.experiments.figures --out figures --ablate runs/ablate-cpu [--weights PATH] \
        [--size 240x360]

The results (``results.npz`` + ``results.json``) are computed by ``agan.experiments.results``, which also
says how the weights are chosen. Which model draws what: Fig. 1, 3, 4 and the "kit
model" column of Fig. 6 are the model of ``weights`` ("" = the kit's shipped release); Fig. 6's Eigen13 /
Pix2Pix / AA+AD columns, Fig. 7 and Table 1 the ablation in ``ablate_dir``. Each figure's caption names
its weights (path, sha256), as results.json does (``drawn_from``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from agan.experiments.results import (
    FIG6_ROWS,
    FIG7_ROWS,
    FIGURE_FILES,
    FIGURE_SIZE,
    RESULTS_NPZ,
    compute_results,
    load_results,
    weights_label,
)

__all__ = ["FIGURES", "figure1", "figure3", "figure4", "figure6", "figure7", "main", "make_all", "table1"]

DPI = 80


def _mean_scores(results: dict, key: str) -> str:
    s = results["meta"]["scores"].get(key)
    if not s:
        return ""
    return f"{np.mean([a for a, _ in s]):.2f} dB / {np.mean([b for _, b in s]):.3f}"


def _scored_on(results: dict) -> str:
    meta = results["meta"]
    n = len(meta["scores"].get("input") or [])
    return f"mean PSNR/SSIM over {n} held-out frames ({meta['n_images']} shown)"


def _frames(results: dict) -> str:
    meta = results["meta"]
    H, W = meta["size"]
    return (f"synthetic held-out {W}x{H} frames (agan.synth.renderer.make_pair, seed {meta['seed']}, "
            f"frame_px {W})")


def _panel(results: dict) -> tuple[float, float]:
    """Inches per panel: about one image pixel per PNG pixel up to 360 px wide, at the frames' aspect."""
    H, W = results["rain"].shape[1:3]
    w = max(1.6, min(W, 360) / DPI)
    return w, w * H / W + 0.3  # + room for a title line: the images, not the gaps, fill the width


def _runs_at(rec: dict) -> str:
    s = rec.get("run_size") or 0
    if not s:
        return "run at full resolution"
    return f"run at {s} px on the longer side (only the change enlarged back)"


def _kit_vs_paper(rec: dict) -> str:
    return (f"Kit vs paper: the kit's model ({rec.get('preset')} preset, variant {rec.get('variant')}, "
            f"{_runs_at(rec)}) was trained on synthetic drops only (agan.synth.renderer) and is shown on "
            "synthetic frames; the paper trains on and shows real photos of its Raindrop dataset.")


def _save(fig, out_dir, name: str) -> Path:
    from agan.viz.plots import save_figure

    return save_figure(fig, Path(out_dir) / name, dpi=DPI)


# ----------------------------------------------------------------------------------------------
# one function per figure
# ----------------------------------------------------------------------------------------------
def figure1(results: dict, out_dir: str | os.PathLike) -> Path | None:
    """Fig. 1: images with raindrops (top), the kit model's results (middle), the ground truth (bottom)."""
    from agan.viz.plots import add_caption, image_grid

    if "model_O" not in results:
        return None
    rec = results["meta"]["model"]
    fig = image_grid([list(results["rain"]), list(results["model_O"]), list(results["clean"])],
                     row_titles=["input I", "kit model O", "ground truth"], ax_size=_panel(results),
                     title=f"Fig. 1: raindrop removal on {_frames(results)}\n{_scored_on(results)}: "
                           f"input {_mean_scores(results, 'input')}, "
                           f"kit model {_mean_scores(results, 'model')}")
    add_caption(fig, "Look for: the bright, blurred drops of the top row gone in the middle row, the scene "
                     f"around them unchanged (compare with the ground truth below). {_kit_vs_paper(rec)}\n"
                     f"Weights: {weights_label(rec)}.")
    return _save(fig, out_dir, FIGURE_FILES["fig1"])


def _attention_line(att: dict) -> str:
    fmt = lambda v, nd: ", ".join(f"{x:.{nd}f}" for x in v)  # noqa: E731
    return (f"IoU(A_t >= {att['threshold']:g}, M) for t = 1..{att['steps']}: {fmt(att['iou'], 2)}; "
            f"MSE(A_t, M): {fmt(att['mse'], 3)}")


def figure3(results: dict, out_dir: str | os.PathLike) -> Path | None:
    """Fig. 3 / 8: the attention maps A_1..A_N across the recurrent steps, over the image, with the drop
    mask M; per step the IoU of A_t >= threshold and the MSE of A_t against M (mean over the images shown)."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    from agan.viz.plots import add_caption, attention_overlay, image_grid

    if "model_A" not in results or results["model_A"].shape[1] == 0:
        return None
    meta = results["meta"]
    rec, att = meta["model"], meta["attention"]
    A = results["model_A"].astype(np.float32)  # (n, N, H, W)
    N = A.shape[1]
    rows = [[results["rain"][i]] + [attention_overlay(results["rain"][i], A[i, t]) for t in range(N)]
            + [attention_overlay(results["rain"][i], results["drop_mask"][i].astype(np.float32))]
            for i in range(len(A))]
    cols = (["input I"] + [f"A_{t + 1}: IoU {att['iou'][t]:.2f}, MSE {att['mse'][t]:.3f}" for t in range(N)]
            + [f"drop mask M ({att['mask'].split(' (')[0]})"])
    n = len(A)
    fig = image_grid(rows, col_titles=cols, ax_size=_panel(results),
                     title=f"Fig. 3: attention over the {N} recurrent steps, overlaid on I (one scale "
                           f"0..1), mean over the {n} shown\n{_attention_line(att)}")
    # the colour bar beside the grid, outside it: the panels keep their size
    right = max(ax.get_position().x1 for ax in fig.axes)
    bottom, top = min(ax.get_position().y0 for ax in fig.axes), max(ax.get_position().y1 for ax in fig.axes)
    cax = fig.add_axes((right + 0.006, bottom, 0.008, top - bottom))
    fig.colorbar(ScalarMappable(Normalize(0.0, 1.0), cmap="jet"), cax=cax,
                 label="A_t (opacity grows with A_t; >= 1 clipped)")
    held = {**att, "iou": att["iou_held_out"], "mse": att["mse_held_out"]}
    add_caption(fig, f"Look for: colour concentrating on the drops as t grows and matching M (last column, "
                     f"{att['mask']}); over all {meta['n_score']} held-out frames {_attention_line(held)}. "
                     f"Kit vs paper: the paper's A_t are learnt against M = |I - T| >= 30 of real pairs and "
                     f"shown on real photos; the kit's model was trained with "
                     f"mask_source={rec.get('mask_source')!r} on synthetic drops, {_runs_at(rec)}.\n"
                     f"Weights: {weights_label(rec)}.")
    return _save(fig, out_dir, FIGURE_FILES["fig3"])


def figure4(results: dict, out_dir: str | os.PathLike) -> Path | None:
    """Fig. 4: the contextual autoencoder's multi-scale outputs S_1 (1/4), S_2 (1/2), O, and the clean T."""
    from agan.viz.plots import add_caption, image_grid

    if "model_S1" not in results:
        return None
    rec = results["meta"]["model"]
    h, w = rec.get("working_size") or results["rain"].shape[1:3]
    H, W = results["rain"].shape[1:3]
    rows = [[results["rain"][i], results["model_S1"][i], results["model_S2"][i], results["model_O"][i],
             results["clean"][i]] for i in range(len(results["rain"]))]
    s1, s2 = results["model_S1"].shape[1:3], results["model_S2"].shape[1:3]
    cols = ["input I", f"S_1 (1/4: {s1[1]}x{s1[0]})", f"S_2 (1/2: {s2[1]}x{s2[0]})", f"O ({W}x{H})",
            "ground truth T"]
    fig = image_grid(rows, col_titles=cols, ax_size=_panel(results),
                     title=f"Fig. 4: multi-scale outputs of the contextual autoencoder (G runs at {w}x{h})")
    add_caption(fig, f"Look for: the drops fading from S_1 to O. S_1 and S_2 are the autoencoder's 1/4 and "
                     f"1/2 scale outputs of G on the frame reduced to {w}x{h} (coarse by design: they are "
                     f"trained against the downscaled T); O at full size, O = I + up(G(down I) - down I), "
                     f"keeps the input's detail (compare with T). Kit vs paper: the paper's G runs at full "
                     f"resolution on 720x480 photos; the kit's model {_runs_at(rec)}, trained on synthetic "
                     f"drops only.\nWeights: {weights_label(rec)}.")
    return _save(fig, out_dir, FIGURE_FILES["fig4"])


def _rows_figure(results: dict, out_dir, wanted: tuple[str, ...], name: str, title: str, caption: str,
                 kit: bool = False) -> Path | None:
    from agan.viz.plots import add_caption, image_grid

    meta = results["meta"]
    present = meta.get("rows", [])
    cols = [r for r in wanted if r in present]
    kit = kit and "model_O" in results
    if not cols and not kit:
        return None
    rows_O = results.get("rows_O")
    grid = [[results["rain"][i]] + [rows_O[present.index(r)][i] for r in cols]
            + ([results["model_O"][i]] if kit else []) + [results["clean"][i]]
            for i in range(len(results["rain"]))]
    suffix = " (ablation)" if kit else ""
    titles = ([f"input\n{_mean_scores(results, 'input')}"]
              + [f"{r}{suffix}\n{_mean_scores(results, r)}" for r in cols]
              + ([f"kit model\n{_mean_scores(results, 'model')}"] if kit else []) + ["ground truth"])
    fig = image_grid(grid, col_titles=titles, ax_size=_panel(results),
                     title=f"{title}\n{_scored_on(results)}")
    used = meta.get("drawn_from", {}).get(name, {})
    weights = "; ".join(f"{k}: {v}" for k, v in used.items() if k in cols or (kit and k == "kit model"))
    add_caption(fig, f"{caption}\nWeights: {weights}.")
    return _save(fig, out_dir, name)


def _ablation_budget(meta: dict) -> str:
    info = meta.get("table_info") or {}
    recs = list(meta.get("row_weights", {}).values())
    size = recs[0].get("run_size") if recs else None
    return (f"preset {info.get('preset', recs[0].get('preset') if recs else '?')}, "
            f"{info.get('iterations', recs[0].get('iterations') if recs else '?')} iterations, same data, "
            f"steps and seed for every row"
            + (f", each run at {size} px (its trained scale)" if size else ""))


def figure6(results: dict, out_dir: str | os.PathLike) -> Path | None:
    """Fig. 6: input, Eigen13, Pix2Pix, AA+AD (the ablation's rows, one budget), the kit's model, ground
    truth."""
    meta = results["meta"]
    rec = meta.get("model")
    kit = (f"kit model: the release weights, trained on their own recipe ({rec.get('preset')} preset, "
           f"{rec.get('iterations')} iterations), {_runs_at(rec)}" if rec else "")
    caption = (f"Look for: drops left behind or blurred scenes in each column against the ground truth. "
               f"Eigen13, Pix2Pix, AA+AD: the ablation ({_ablation_budget(meta)}); "
               f"{kit or 'no kit model (weights missing)'}: not the same budget, so compare the ablation's "
               f"columns with each other. Kit vs paper: the paper trains every method on its Raindrop "
               f"training set and shows real test photos; here all are synthetic.")
    return _rows_figure(results, out_dir, FIG6_ROWS, FIGURE_FILES["fig6"],
                        "Fig. 6: qualitative comparison with Eigen13 and Pix2Pix", caption, kit=True)


def figure7(results: dict, out_dir: str | os.PathLike) -> Path | None:
    """Fig. 7: the ablation variants A, A+D, A+AD, AA+AD side by side."""
    meta = results["meta"]
    caption = (f"Look for: drops removed more completely from A to AA+AD (the paper's PSNR order: AA+AD > "
               f"A+D > A+AD > A). The ablation: {_ablation_budget(meta)}. Kit vs paper: a CPU budget of "
               f"minutes on synthetic drops, against the paper's full training on real Raindrop pairs.")
    return _rows_figure(results, out_dir, FIG7_ROWS, FIGURE_FILES["fig7"],
                        "Fig. 7: ablation variants (A: autoencoder, D: discriminator, AD: attentive D, "
                        "AA: attention)", caption)


def table1(results: dict, out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Table 1: figures/table1.csv and table1.md, the paper's numbers beside the ablation's (when run)."""
    from agan.experiments.table1 import write_table1

    meta = results["meta"]
    measured, info = meta.get("table") or {}, meta.get("table_info") or {}
    if info:
        note = (f"Kit: preset `{info.get('preset')}`, {info.get('iterations')} iterations per row, seeds "
                f"{info.get('seeds')}, held-out {info.get('test_kind')}; paper: Raindrop test_a, full "
                "training. Protocol: the authors' (Y channel, PSNR range 255, SSIM 7x7). Numbers are "
                "comparable within a column, not across the two.")
    else:
        note = ("Paper numbers only: no ablation was run (make reproduce, or agan ablate, fills the kit "
                "columns).")
    return write_table1(measured, out_dir, kit_label="kit", note=note)


FIGURES = {"fig1": figure1, "fig3": figure3, "fig4": figure4, "fig6": figure6, "fig7": figure7}


def make_all(out_dir: str | os.PathLike, weights: str | os.PathLike | None = "",
             ablate_dir: str | os.PathLike | None = None, recompute: bool = True, **compute_kwargs: Any
             ) -> dict[str, Path | None]:
    """Compute the results (unless ``recompute=False`` and they exist), then draw every figure and Table 1."""
    out = Path(out_dir)
    if recompute or not (out / RESULTS_NPZ).is_file():
        compute_results(out, weights, ablate_dir, **compute_kwargs)
    results = load_results(out)
    made: dict[str, Path | None] = {name: fn(results, out) for name, fn in FIGURES.items()}
    made["table1.csv"], made["table1.md"] = table1(results, out)
    return made


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m agan.experiments.figures",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="figures", help="output folder (default figures/)")
    ap.add_argument("--weights", default="", help="model of Fig. 1/3/4/6: a release .safetensors, a "
                                                  "checkpoint or a run folder (default: the kit's shipped "
                                                  "release)")
    ap.add_argument("--ablate", default="runs/ablate-cpu", help="ablation folder for Fig. 6/7 and Table 1")
    ap.add_argument("--n-images", type=int, default=4)
    ap.add_argument("--size", default="x".join(map(str, FIGURE_SIZE)),
                    help="HxW of the frames (default 240x360)")
    ap.add_argument("--n-score", type=int, default=64, help="frames the means are taken over (default 64)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--no-recompute", action="store_true", help="draw from the existing results file")
    args = ap.parse_args(argv)
    try:
        made = make_all(args.out, args.weights, args.ablate, recompute=not args.no_recompute,
                        n_images=args.n_images, size=args.size, device=args.device, n_score=args.n_score)
    except (ValueError, FileNotFoundError) as e:
        print(f"agan.experiments.figures: error: {e}", file=sys.stderr)
        return 2
    meta = load_results(args.out)["meta"]
    if meta.get("model_missing"):
        print(f"model figures skipped: {meta['model_missing']}")
    for name, path in made.items():
        print(f"{name:12s} {path if path else 'skipped (no model or run for it)'}")
    for name, used in meta.get("drawn_from", {}).items():
        for col, label in used.items():
            print(f"  {name}: {col}: {label}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
