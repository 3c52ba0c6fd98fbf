"""The paper's figures, regenerated: compute the results once, then draw each figure from them.

Reference: Qian et al., CVPR 2018 -- Fig. 1 (inputs with raindrops vs results), Fig. 3 (attention maps
A_1..A_N across the recurrent steps), Fig. 4 (the contextual autoencoder's multi-scale outputs S_1, S_2, O),
Fig. 6 (qualitative comparison: input, Eigen13, Pix2Pix, ours, ground truth), Fig. 7 (the ablation
variants A, A+D, A+AD, AA+AD side by side) and Table 1 (PSNR / SSIM beside the paper's numbers).

    res = compute_results("figures", run_dir="runs/cpu", ablate_dir="runs/ablate-cpu")  # slow part, once
    results = load_results("figures")                                                  # cheap
    figure3(results, "figures")                                                        # one per figure
    make_all("figures", run_dir="runs/cpu", ablate_dir="runs/ablate-cpu")             # all of it
    python -m agan.figures --out figures --run runs/cpu --ablate runs/ablate-cpu

Results (``results.npz`` + ``results.json`` in the output folder; images stored as uint8, maps as
float16, scores computed on the raw outputs first): a fixed set of held-out synthetic pairs (``agan.synth.make_pair`` with a seed no training run uses, and the synthesiser settings of the run in ``run_dir``), the trained generator's A_t, S_1, S_2
and O on them, each ablation row's O, per-image PSNR / SSIM (the authors' protocol, ``agan.evaluate``)
and the ablation's Table 1. The images never come from ../shared/real (no licence to redistribute).
Fig. 1/3/4 show the run in ``run_dir``; Fig. 6/7 compare the ablation's rows, trained under one budget.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FIGURES", "FIGURE_SEED", "compute_results", "figure1", "figure3", "figure4", "figure6", "figure7",
           "load_results", "main", "make_all", "table1"]

FIGURE_SEED = 2_018_0001  # held-out synthetic pairs for the figures: a seed of their own
RESULTS_NPZ, RESULTS_JSON = "results.npz", "results.json"
ABLATION_ROWS = ("Eigen13", "Pix2Pix", "A", "A+D", "A+AD", "AA+AD")


def _row_generator(ablate_dir: Path, row: str, seed: int = 0) -> Path:
    return ablate_dir / row.replace("+", "_") / f"s{seed}" / "train" / "checkpoints" / "generator.pt"


# ----------------------------------------------------------------------------------------------
# compute once
# ----------------------------------------------------------------------------------------------
def compute_results(out_dir: str | os.PathLike, run_dir: str | os.PathLike | None = None,
                    ablate_dir: str | os.PathLike | None = None, n_images: int = 4, size: int = 160,
                    seed: int = FIGURE_SEED, device: str = "auto", progress: bool = True,
                    n_score: int = 64) -> Path:
    """Run the models on ``max(n_score, n_images)`` held-out synthetic pairs of ``size`` x ``size``, score
    them all (a few images are too few for a mean: per-image gains spread by dB), store the first
    ``n_images`` for the figures, and write ``out_dir/results.npz`` + ``results.json``. Missing runs are
    recorded as missing (their figures are skipped), so this works on a fresh clone too. Returns the npz path."""
    import torch
    from tqdm.auto import tqdm

    from . import pick_device
    from .checkpoint import safe_load
    from .evaluate import score_pair
    from .images import to_tensor
    from .infer import derain, load_generator
    from .synth import SynthParams, make_pair

    if size % 4:
        raise ValueError(f"size must be a multiple of 4, got {size}")
    if n_images < 1:
        raise ValueError(f"n_images must be >= 1, got {n_images}")
    n_score = max(int(n_score), n_images)
    dev = pick_device(device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # the renderer settings the run was trained with (e.g. the cpu preset's frame_px / view), so that the
    # figures show drops of the size the model saw; the synthesiser's defaults when there is no run
    run_cfg_path = Path(run_dir) / "config.json" if run_dir else None
    run_cfg = json.loads(run_cfg_path.read_text()) if run_cfg_path is not None and run_cfg_path.is_file() else {}
    synth = dict((run_cfg.get("extra") or {}).get("synth") or {})
    if synth.get("view") and run_cfg.get("crop_size"):  # same texture scale as the run's crops: view grows with size
        k = size / run_cfg["crop_size"]
        synth["view"] = [min(1.0, round(v * k, 4)) for v in synth["view"]]
    params = SynthParams.from_dict(synth) if synth else None
    pairs = [make_pair(seed, i, size, params)
             for i in tqdm(range(n_score), desc="held-out pairs", disable=not progress)]
    shown = pairs[:n_images]
    arrays: dict[str, np.ndarray] = {
        "rain": np.stack([p.rain for p in shown]),  # (n, H, W, 3) uint8
        "clean": np.stack([p.clean for p in shown]),  # (n, H, W, 3) uint8
        "mask": np.stack([p.diff_mask for p in shown]),  # (n, H, W) bool, M of SPEC 4
    }
    meta: dict[str, Any] = {"seed": seed, "size": size, "n_images": n_images, "n_score": n_score, "synth": synth, "run_dir": None,
                            "rows": [], "scores": {}, "table": None, "table_info": None}
    scores = meta["scores"]
    scores["input"] = [score_pair(p.rain, p.clean) for p in pairs]

    # the trained run: A_t, S1, S2, O (Fig. 1, 3, 4)
    gen = Path(run_dir) / "checkpoints" / "generator.pt" if run_dir else None
    if gen is not None and gen.is_file():
        G = load_generator(gen, device=dev)
        A, S1, S2, O = [], [], [], []
        with torch.no_grad():
            for k, p in enumerate(tqdm(pairs, desc=f"run {run_dir}", disable=not progress)):
                o = G(to_tensor(p.rain)[None].to(dev))
                O.append(o.O[0].float().permute(1, 2, 0).cpu().numpy())
                if k >= n_images:  # scored only
                    continue
                A.append(np.stack([a[0, 0].float().cpu().numpy() for a in o.attention]) if o.attention
                         else np.zeros((0, size, size), np.float32))
                S1.append(o.S1[0].float().clamp(0, 1).permute(1, 2, 0).cpu().numpy())
                S2.append(o.S2[0].float().clamp(0, 1).permute(1, 2, 0).cpu().numpy())
        scores["run"] = [score_pair(o, p.clean) for o, p in zip(O, pairs)]  # on the raw outputs
        arrays.update(run_A=np.stack(A).astype(np.float16), run_S1=_u8(np.stack(S1)), run_S2=_u8(np.stack(S2)),
                      run_O=_u8(np.stack(O[:n_images])))
        cfg = run_cfg
        step = safe_load(gen).get("step")
        meta["run_dir"] = str(run_dir)
        meta["run"] = {"preset": cfg.get("name"), "variant": cfg.get("variant"), "step": step,
                       "width": cfg.get("width")}

    # the ablation rows: O of each (Fig. 6, 7) and its Table 1
    if ablate_dir and Path(ablate_dir).is_dir():
        ab = Path(ablate_dir)
        row_O = []
        for row in ABLATION_ROWS:
            path = _row_generator(ab, row)
            if not path.is_file():
                continue
            G = load_generator(path, device=dev)
            outs = [derain(p.rain.astype(np.float32) / 255.0, model=G, device=dev, clip=False)[0]
                    for p in tqdm(pairs, desc=f"row {row}", disable=not progress)]
            scores[row] = [score_pair(o, p.clean) for o, p in zip(outs, pairs)]  # on the raw outputs
            row_O.append(_u8(np.stack(outs[:n_images])))
            meta["rows"].append(row)
        if row_O:
            arrays["rows_O"] = np.stack(row_O)  # (rows, n, H, W, 3) uint8
        summary = ab / "ablation.json"
        if summary.is_file():
            data = json.loads(summary.read_text())
            meta["table"], meta["table_info"] = data.get("measured"), data.get("info")
        meta["ablate_dir"] = str(ablate_dir)

    npz = out / RESULTS_NPZ
    tmp = out / f".{RESULTS_NPZ}.tmp.npz"
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, npz)
    (out / RESULTS_JSON).write_text(json.dumps(meta, indent=2) + "\n")
    return npz


def _u8(x: np.ndarray) -> np.ndarray:
    """Images in [0, 1] -> uint8, clipped and rounded (what the protocol scores and the figures show)."""
    return np.rint(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


def load_results(out_dir: str | os.PathLike) -> dict[str, Any]:
    """The arrays of results.npz and the metadata of results.json in one dict (metadata under "meta")."""
    out = Path(out_dir)
    if not (out / RESULTS_NPZ).is_file():
        raise FileNotFoundError(f"{out / RESULTS_NPZ}: no results yet (run compute_results or make_all first)")
    with np.load(out / RESULTS_NPZ) as z:
        res = {k: z[k] for k in z.files}
    res["meta"] = json.loads((out / RESULTS_JSON).read_text())
    return res


def _mean_scores(results: dict, key: str) -> str:
    s = results["meta"]["scores"].get(key)
    if not s:
        return ""
    return f"{np.mean([a for a, _ in s]):.2f} dB / {np.mean([b for _, b in s]):.3f}"


def _scored_on(results: dict) -> str:
    meta = results["meta"]
    n = len(meta["scores"].get("input") or [])
    return f"mean PSNR/SSIM over {n} held-out pairs ({meta['n_images']} shown)"


def _save(fig, out_dir, name: str) -> Path:
    from .viz import save_figure

    return save_figure(fig, Path(out_dir) / name, dpi=80)  # ~ one image pixel per screen pixel at ax_size 2


# ----------------------------------------------------------------------------------------------
# one function per figure
# ----------------------------------------------------------------------------------------------
def figure1(results: dict, out_dir: str | os.PathLike) -> Path | None:
    """Fig. 1: images with raindrops (top) and the model's results (bottom)."""
    from .viz import image_grid

    if "run_O" not in results:
        return None
    run = results["meta"].get("run", {})
    fig = image_grid([list(results["rain"]), list(results["run_O"])], row_titles=["input", "result"],
                     ax_size=2.4, title=f"Fig. 1: raindrop removal ({run.get('preset')} preset, step {run.get('step')})\n"
                                        f"{_scored_on(results)}: input {_mean_scores(results, 'input')}, "
                                        f"result {_mean_scores(results, 'run')}")
    return _save(fig, out_dir, "fig1_results.png")


def figure3(results: dict, out_dir: str | os.PathLike) -> Path | None:
    """Fig. 3 / 8: the attention maps A_1..A_N across the recurrent steps, with the mask M."""
    from .viz import image_grid

    if "run_A" not in results or results["run_A"].shape[1] == 0:
        return None
    A = results["run_A"]  # (n, N, H, W)
    N = A.shape[1]
    vmax = max(1.0, float(A.max()))
    rows = [[results["rain"][i]] + [np.clip(A[i, t], 0, vmax) / vmax for t in range(N)]
            + [results["mask"][i].astype(np.float32)] for i in range(len(A))]
    fig = image_grid(rows, col_titles=["input I"] + [f"A_{t + 1}" for t in range(N)] + ["mask M"], ax_size=2.0,
                     title=f"Fig. 3: attention maps over the {N} recurrent steps (one colour scale, 0..{vmax:.2f})")
    for ax in fig.axes:  # one scale for every step: image_grid draws maps on their own range by default
        for im in ax.images:
            if im.get_array().ndim == 2:
                im.set_clim(0.0, 1.0)
    return _save(fig, out_dir, "fig3_attention.png")


def figure4(results: dict, out_dir: str | os.PathLike) -> Path | None:
    """Fig. 4: the contextual autoencoder's multi-scale outputs S_1 (1/4), S_2 (1/2), O, and the clean T."""
    from .viz import image_grid

    if "run_S1" not in results:
        return None
    rows = [[results["rain"][i], results["run_S1"][i], results["run_S2"][i], results["run_O"][i], results["clean"][i]]
            for i in range(len(results["rain"]))]
    fig = image_grid(rows, col_titles=["input I", "S_1 (1/4)", "S_2 (1/2)", "O", "clean T"], ax_size=2.0,
                     title="Fig. 4: multi-scale outputs of the contextual autoencoder")
    return _save(fig, out_dir, "fig4_multiscale.png")


def _rows_figure(results: dict, out_dir, wanted: tuple[str, ...], name: str, title: str) -> Path | None:
    from .viz import image_grid

    present = results["meta"].get("rows", [])
    cols = [r for r in wanted if r in present]
    if not cols:
        return None
    rows_O = results["rows_O"]
    grid = [[results["rain"][i]] + [rows_O[present.index(r)][i] for r in cols] + [results["clean"][i]]
            for i in range(len(results["rain"]))]
    titles = ([f"input\n{_mean_scores(results, 'input')}"] + [f"{r}\n{_mean_scores(results, r)}" for r in cols]
              + ["ground truth"])
    fig = image_grid(grid, col_titles=titles, ax_size=2.0, title=f"{title}\n{_scored_on(results)}")
    return _save(fig, out_dir, name)


def figure6(results: dict, out_dir: str | os.PathLike) -> Path | None:
    """Fig. 6: input, Eigen13, Pix2Pix, ours (AA+AD), ground truth -- the ablation's rows, one budget."""
    return _rows_figure(results, out_dir, ("Eigen13", "Pix2Pix", "AA+AD"), "fig6_comparison.png",
                        "Fig. 6: qualitative comparison (same data, steps and seed for every method)")


def figure7(results: dict, out_dir: str | os.PathLike) -> Path | None:
    """Fig. 7: the ablation variants A, A+D, A+AD, AA+AD side by side."""
    return _rows_figure(results, out_dir, ("A", "A+D", "A+AD", "AA+AD"), "fig7_ablation.png",
                        "Fig. 7: ablation variants (A: autoencoder, D: discriminator, AD: attentive D, AA: attention)")


def table1(results: dict, out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Table 1: figures/table1.csv and table1.md, the paper's numbers beside the ablation's (when run)."""
    from .viz import write_table1

    meta = results["meta"]
    measured, info = meta.get("table") or {}, meta.get("table_info") or {}
    if info:
        note = (f"Kit: preset `{info.get('preset')}`, {info.get('iterations')} iterations per row, seeds "
                f"{info.get('seeds')}, held-out {info.get('test_kind')}; paper: Raindrop test_a, full training. "
                "Protocol: the authors' (Y channel, PSNR range 255, SSIM 7x7). Numbers are comparable within a "
                "column, not across the two.")
    else:
        note = "Paper numbers only: no ablation was run (make reproduce, or agan ablate, fills the kit columns)."
    return write_table1(measured, out_dir, kit_label="kit", note=note)


FIGURES = {"fig1": figure1, "fig3": figure3, "fig4": figure4, "fig6": figure6, "fig7": figure7}


def make_all(out_dir: str | os.PathLike, run_dir: str | os.PathLike | None = None,
             ablate_dir: str | os.PathLike | None = None, recompute: bool = True, **compute_kwargs: Any
             ) -> dict[str, Path | None]:
    """Compute the results (unless ``recompute=False`` and they exist), then draw every figure and Table 1."""
    out = Path(out_dir)
    if recompute or not (out / RESULTS_NPZ).is_file():
        compute_results(out, run_dir, ablate_dir, **compute_kwargs)
    results = load_results(out)
    made: dict[str, Path | None] = {name: fn(results, out) for name, fn in FIGURES.items()}
    made["table1.csv"], made["table1.md"] = table1(results, out)
    return made


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m agan.figures", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="figures", help="output folder (default figures/)")
    ap.add_argument("--run", default="runs/cpu", help="trained run for Fig. 1/3/4 (default runs/cpu)")
    ap.add_argument("--ablate", default="runs/ablate-cpu", help="ablation folder for Fig. 6/7 and Table 1")
    ap.add_argument("--n-images", type=int, default=4)
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--n-score", type=int, default=64, help="pairs the means are taken over (default 64)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--no-recompute", action="store_true", help="draw from the existing results file")
    args = ap.parse_args(argv)
    try:
        made = make_all(args.out, args.run, args.ablate, recompute=not args.no_recompute, n_images=args.n_images,
                        size=args.size, device=args.device, n_score=args.n_score)
    except (ValueError, FileNotFoundError) as e:
        print(f"agan.figures: error: {e}", file=sys.stderr)
        return 2
    for name, path in made.items():
        print(f"{name:12s} {path if path else 'skipped (no run for it)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
