"""The paper's figures, regenerated: compute the results once, then draw each figure from them.

Reference: Qian et al., CVPR 2018 -- Fig. 1 (inputs with raindrops vs results), Fig. 3 (attention maps
A_1..A_N across the recurrent steps), Fig. 4 (the contextual autoencoder's multi-scale outputs S_1, S_2, O),
Fig. 6 (qualitative comparison: input, Eigen13, Pix2Pix, ours, ground truth), Fig. 7 (the ablation
variants A, A+D, A+AD, AA+AD side by side) and Table 1 (PSNR / SSIM beside the paper's numbers).

    res = compute_results("figures", weights="", ablate_dir="runs/ablate-cpu")  # slow part, once
    results = load_results("figures")                                          # cheap
    figure3(results, "figures")                                                # one per figure
    make_all("figures", weights="", ablate_dir="runs/ablate-cpu")             # all of it
    python -m agan.experiments.figures --out figures --ablate runs/ablate-cpu [--weights PATH] [--size 240x360]

Which model draws what:
    * Fig. 1, 3, 4 and the "kit model" column of Fig. 6: ``weights`` -- "" (default) is the kit's shipped
      release (``agan.infer.release.default_weights()``, agan/weights/agan-synthetic.safetensors); a release
      ``.safetensors``, a kit checkpoint (``generator.pt``) or a run folder (its checkpoints/generator.pt)
      overrides it. Every model runs at its trained scale (``agan.infer.pipeline.derain``: ``derain_size``, or the
      ``frame_px`` its drops were drawn at; only the change is enlarged back).
    * Fig. 6's Eigen13 / Pix2Pix / AA+AD columns, Fig. 7 and Table 1: the ablation in ``ablate_dir``.
  The weights of every figure (path, sha256) are recorded in results.json (``drawn_from``) and printed in
  each figure's caption.

Results (``results.npz`` + ``results.json`` in the output folder; images stored as uint8, maps as
float16, scores computed on the raw outputs first): a fixed set of held-out synthetic frames
(``agan.synth.renderer.make_pair`` with a seed no training run uses, whole 3:2 frames of ``size`` = (H, W) with the
synthesiser's defaults and ``frame_px = W``: drops at the scale of a real photo), the model's A_t, S_1, S_2
and O on them, each ablation row's O, per-image PSNR / SSIM (the authors' protocol, ``agan.evaluation.protocol``),
per-step attention scores (:func:`attention_scores`: IoU of ``A_t >= 0.5`` and the MSE of A_t against the
drop mask ``SynthResult.alpha >= agan.data.datasets.DROP_MASK_ALPHA``) and the ablation's Table 1. The images never
come from ../shared/real (no licence to redistribute).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ATTENTION_THRESHOLD", "FIGURES", "FIGURE_SEED", "FIGURE_SIZE", "attention_scores", "compute_results",
           "figure1", "figure3", "figure4", "figure6", "figure7", "load_results", "main", "make_all", "parse_size",
           "table1"]

FIGURE_SEED = 2_018_0001  # held-out synthetic pairs for the figures: a seed of their own
FIGURE_SIZE = (240, 360)  # (H, W): a whole 3:2 frame, drops recognisable; the paper's photos are 480 x 720
ATTENTION_THRESHOLD = 0.5  # Fig. 3's IoU: A_t >= this against the drop mask
RESULTS_NPZ, RESULTS_JSON = "results.npz", "results.json"
ABLATION_ROWS = ("Eigen13", "Pix2Pix", "A", "A+D", "A+AD", "AA+AD")
DPI = 80
FIGURE_FILES = {"fig1": "fig1_results.png", "fig3": "fig3_attention.png", "fig4": "fig4_multiscale.png",
                "fig6": "fig6_comparison.png", "fig7": "fig7_ablation.png"}


def _row_generator(ablate_dir: Path, row: str, seed: int = 0) -> Path:
    return ablate_dir / row.replace("+", "_") / f"s{seed}" / "train" / "checkpoints" / "generator.pt"


def parse_size(size: int | str | tuple | list) -> tuple[int, int]:
    """``(H, W)`` of the figures' frames from 240, "240x360", (240, 360) or [240, 360] (an int: square)."""
    if isinstance(size, str):
        parts = size.lower().replace(",", "x").split("x")
        try:
            hw = tuple(int(v) for v in parts)
        except ValueError:
            raise ValueError(f"size must be H, HxW or (H, W), got {size!r}") from None
    elif isinstance(size, (int, np.integer)):
        hw = (int(size), int(size))
    else:
        hw = tuple(int(v) for v in size)
    if len(hw) == 1:
        hw = (hw[0], hw[0])
    if len(hw) != 2 or min(hw) < 8:
        raise ValueError(f"size must be (H, W) with both sides >= 8, got {size!r}")
    return hw  # type: ignore[return-value]


# ----------------------------------------------------------------------------------------------
# attention against the drop mask (Fig. 3)
# ----------------------------------------------------------------------------------------------
def attention_scores(A: Any, mask: Any, threshold: float = ATTENTION_THRESHOLD) -> tuple[np.ndarray, np.ndarray]:
    """Per step t: (IoU of ``A_t >= threshold`` with ``mask``, MSE of A_t against ``mask`` as 0/1).

    ``A``: one map (H, W) or the N steps (N, H, W), raw (the network does not squash them: values above 1
    count in the MSE); ``mask``: (H, W), bool or 0/1. Returns two float arrays of shape (N,) ((1,) for one
    map). IoU = |A_t >= threshold AND M| / |A_t >= threshold OR M|, 1 when both are empty."""
    a = np.asarray(A, dtype=np.float64)
    if a.ndim == 2:
        a = a[None]
    m = np.asarray(mask)
    if a.ndim != 3 or m.shape != a.shape[1:]:
        raise ValueError(f"expected maps (N, H, W) and a mask (H, W) of the same size, got {np.shape(A)} and {m.shape}")
    m = m.astype(bool)
    hard = a >= threshold
    inter = (hard & m).sum(axis=(1, 2))
    union = (hard | m).sum(axis=(1, 2))
    iou = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    mse = ((a - m) ** 2).mean(axis=(1, 2))
    return iou, mse


# ----------------------------------------------------------------------------------------------
# which weights
# ----------------------------------------------------------------------------------------------
def _shown_path(path: Path) -> str:
    """``agan/...`` for files inside the package (the shipped release), else the path as given."""
    pkg = Path(__file__).resolve().parents[1]
    try:
        return str(Path("agan") / path.resolve().relative_to(pkg))
    except ValueError:
        return str(path)


def _resolve_weights(weights: str | os.PathLike | None) -> Path:
    """"" / None -> the shipped release (FileNotFoundError when absent); a run folder -> its generator.pt."""
    if weights is None or str(weights) == "":
        from agan.infer.release import default_weights

        return default_weights()
    p = Path(weights)
    if p.is_dir():
        ckpt = p / "checkpoints" / "generator.pt"
        if not ckpt.is_file():
            raise FileNotFoundError(f"{p}: a folder without checkpoints/generator.pt (give a run folder, a checkpoint "
                                    f"or a release .safetensors)")
        return ckpt
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such weights file")
    return p


def _weights_record(path: Path, G) -> dict[str, Any]:
    """What a figure says about the weights that drew it: path, sha256, kind, recipe, the scale G ran at."""
    from agan.checkpoint import safe_load
    from agan.infer.pipeline import model_size
    from agan.infer.release import read_release_info, sha256_file

    if path.suffix.lower() == ".safetensors":
        info = read_release_info(path)
        cfg = info.get("config", {})
        rec = {"kind": "release", "path": _shown_path(path), "sha256": info["sha256"],
               "preset": info.get("preset", cfg.get("name")), "iterations": info.get("iterations", info.get("step")),
               "seed": info.get("seed", cfg.get("seed"))}
    else:
        ckpt = safe_load(path, map_location="cpu")
        cfg = ckpt.get("config", {}) if isinstance(ckpt, dict) else {}
        rec = {"kind": "checkpoint", "path": _shown_path(path), "sha256": sha256_file(path),
               "preset": cfg.get("name"), "iterations": ckpt.get("step") if isinstance(ckpt, dict) else None,
               "seed": cfg.get("seed")}
    frame = ((cfg.get("extra") or {}).get("synth") or {}).get("frame_px")
    size = model_size(G) or int(frame or 0)  # trained scale: derain_size, else the frame its drops were drawn in
    rec.update(variant=cfg.get("variant"), model=cfg.get("model", "agan"), mask_source=cfg.get("mask_source"),
               derain_size=model_size(G), frame_px=frame, run_size=size)
    return rec


def _label(rec: dict | None) -> str:
    """One line naming the weights: path, sha256 (12 hex digits), iterations."""
    if not rec:
        return "none"
    it = f", {rec['iterations']} iterations" if rec.get("iterations") is not None else ""
    return f"{rec['path']} ({rec['kind']}, sha256 {str(rec.get('sha256'))[:12]}{it})"


# ----------------------------------------------------------------------------------------------
# compute once
# ----------------------------------------------------------------------------------------------
def _multiscale(G, rain: np.ndarray, size: int, dev) -> tuple[np.ndarray, np.ndarray, tuple[int, int]] | None:
    """S_1, S_2 of G at the scale it runs at (the frame reduced to ``size`` px on its longer side, as
    ``agan.infer.pipeline.derain_tensor`` reduces it) and that working size; None for models without S_1/S_2."""
    import torch
    import torch.nn.functional as F

    from agan.images import to_tensor

    x = to_tensor(rain)[None]
    H, W = x.shape[-2:]
    if 0 < size < max(H, W):
        s = size / max(H, W)
        x = F.interpolate(x, (max(4, round(H * s)), max(4, round(W * s))), mode="bilinear", antialias=True,
                          align_corners=False)
    h, w = x.shape[-2:]
    xp = F.pad(x, (0, -w % 4, 0, -h % 4), mode="replicate")
    with torch.inference_mode():
        o = G(xp.to(dev))
    if not hasattr(o, "S1"):  # baselines return O alone
        return None
    S1 = o.S1[0, :, : math.ceil(h / 4), : math.ceil(w / 4)].float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    S2 = o.S2[0, :, : math.ceil(h / 2), : math.ceil(w / 2)].float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    return S1, S2, (h, w)


def _run_model(G, rec: dict, pairs, dev, progress: bool, desc: str):
    """derain (at the model's trained scale) on every pair -> raw outputs, maps."""
    from tqdm.auto import tqdm

    from agan.infer.pipeline import derain

    outs, maps = [], []
    for p in tqdm(pairs, desc=desc, disable=not progress):
        o, a = derain(p.rain.astype(np.float32) / 255.0, model=G, device=dev, clip=False, size=rec["run_size"])
        outs.append(o)
        maps.append(a)
    return outs, maps


def compute_results(out_dir: str | os.PathLike, weights: str | os.PathLike | None = "",
                    ablate_dir: str | os.PathLike | None = None, n_images: int = 4,
                    size: int | str | tuple | list = FIGURE_SIZE, seed: int = FIGURE_SEED, device: str = "auto",
                    progress: bool = True, n_score: int = 64, threshold: float = ATTENTION_THRESHOLD) -> Path:
    """Run the models on ``max(n_score, n_images)`` held-out synthetic frames of ``size`` = (H, W), score them
    all (a few images are too few for a mean: per-image gains spread by dB), store the first ``n_images`` for
    the figures, and write ``out_dir/results.npz`` + ``results.json``. ``weights``: the model of Fig. 1/3/4/6
    ("" = the kit's shipped release; see the module docstring). Missing weights or runs are recorded as
    missing (their figures are skipped), so this works on a fresh clone too. Returns the npz path."""
    from tqdm.auto import tqdm

    from agan import pick_device
    from agan.data.datasets import DROP_MASK_ALPHA
    from agan.evaluation.protocol import score_pair
    from agan.infer.pipeline import load_generator
    from agan.synth.renderer import SynthParams, make_pair, replace

    H, W = parse_size(size)
    if n_images < 1:
        raise ValueError(f"n_images must be >= 1, got {n_images}")
    n_score = max(int(n_score), n_images)
    dev = pick_device(device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # whole frames: the synthesiser's defaults (tuned toward the real pairs) with the frame as wide as the image,
    # so that drops have the size they have in a photo of that width
    synth = {"frame_px": W}
    params = replace(SynthParams(), **synth)
    pairs = [make_pair(seed, i, (H, W), params)
             for i in tqdm(range(n_score), desc="held-out frames", disable=not progress)]
    shown = pairs[:n_images]
    drop_masks = [p.alpha >= DROP_MASK_ALPHA for p in pairs]
    arrays: dict[str, np.ndarray] = {
        "rain": np.stack([p.rain for p in shown]),  # (n, H, W, 3) uint8
        "clean": np.stack([p.clean for p in shown]),  # (n, H, W, 3) uint8
        "drop_mask": np.stack(drop_masks[:n_images]),  # (n, H, W) bool: alpha >= DROP_MASK_ALPHA
    }
    meta: dict[str, Any] = {"seed": seed, "size": [H, W], "n_images": n_images, "n_score": n_score, "synth": synth,
                            "model": None, "model_missing": None, "rows": [], "row_weights": {}, "scores": {},
                            "attention": None, "drawn_from": {}, "table": None, "table_info": None,
                            "ablate_dir": None}
    scores = meta["scores"]
    scores["input"] = [score_pair(p.rain, p.clean) for p in pairs]

    # the kit's model: A_t, S1, S2, O (Fig. 1, 3, 4, the kit column of Fig. 6)
    try:
        path = _resolve_weights(weights)
    except FileNotFoundError as e:
        if weights not in (None, ""):  # a path that was asked for: say so now
            raise
        path, meta["model_missing"] = None, str(e)  # the shipped model not installed: its figures are skipped
    if path is not None:
        G = load_generator(path, device=dev)
        rec = _weights_record(path, G)
        meta["model"] = rec
        O, maps = _run_model(G, rec, pairs, dev, progress, f"model {rec['path']}")
        scores["model"] = [score_pair(o, p.clean) for o, p in zip(O, pairs)]  # on the raw outputs
        arrays["model_O"] = _u8(np.stack(O[:n_images]))
        N = len(maps[0])
        arrays["model_A"] = (np.stack([np.stack(a) for a in maps[:n_images]]) if N
                             else np.zeros((n_images, 0, H, W))).astype(np.float16)  # (n, N, H, W)
        if N:
            per = [attention_scores(np.stack(a), m, threshold) for a, m in zip(maps, drop_masks)]
            iou, mse = np.array([i for i, _ in per]), np.array([e for _, e in per])  # (n_score, N)
            meta["attention"] = {
                "threshold": threshold, "steps": N,
                "mask": f"SynthResult.alpha >= {DROP_MASK_ALPHA} (agan.data.datasets.DROP_MASK_ALPHA, mask_source='drops')",
                "iou": iou[:n_images].mean(0).round(4).tolist(), "mse": mse[:n_images].mean(0).round(5).tolist(),
                "iou_held_out": iou.mean(0).round(4).tolist(), "mse_held_out": mse.mean(0).round(5).tolist(),
                "mask_coverage": round(float(np.mean([m.mean() for m in drop_masks])), 4),
                "per_image": {"iou": iou.round(4).tolist(), "mse": mse.round(5).tolist()}}
        ms = [_multiscale(G, p.rain, rec["run_size"], dev) for p in shown]
        if all(m is not None for m in ms):
            arrays.update(model_S1=_u8(np.stack([m[0] for m in ms])), model_S2=_u8(np.stack([m[1] for m in ms])))
            rec["working_size"] = list(ms[0][2])
        label = _label(rec)
        meta["drawn_from"].update({FIGURE_FILES["fig1"]: {"kit model": label}, FIGURE_FILES["fig6"]: {"kit model": label}})
        if N:
            meta["drawn_from"][FIGURE_FILES["fig3"]] = {"kit model": label}
        if "model_S1" in arrays:
            meta["drawn_from"][FIGURE_FILES["fig4"]] = {"kit model": label}
        del G

    # the ablation rows: O of each (Fig. 6, 7) and its Table 1
    if ablate_dir and Path(ablate_dir).is_dir():
        ab = Path(ablate_dir)
        row_O = []
        for row in ABLATION_ROWS:
            path = _row_generator(ab, row)
            if not path.is_file():
                continue
            G = load_generator(path, device=dev)
            rec = _weights_record(path, G)
            outs, _ = _run_model(G, rec, pairs, dev, progress, f"row {row}")
            scores[row] = [score_pair(o, p.clean) for o, p in zip(outs, pairs)]  # on the raw outputs
            row_O.append(_u8(np.stack(outs[:n_images])))
            meta["rows"].append(row)
            meta["row_weights"][row] = rec
            for fig, wanted in (("fig6", _FIG6_ROWS), ("fig7", _FIG7_ROWS)):
                if row in wanted:
                    meta["drawn_from"].setdefault(FIGURE_FILES[fig], {})[row] = _label(rec)
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
    return f"mean PSNR/SSIM over {n} held-out frames ({meta['n_images']} shown)"


def _frames(results: dict) -> str:
    meta = results["meta"]
    H, W = meta["size"]
    return f"synthetic held-out {W}x{H} frames (agan.synth.renderer.make_pair, seed {meta['seed']}, frame_px {W})"


def _panel(results: dict) -> tuple[float, float]:
    """Inches per panel: about one image pixel per PNG pixel up to 360 px wide, at the frames' aspect."""
    H, W = results["rain"].shape[1:3]
    w = max(1.6, min(W, 360) / DPI)
    return w, w * H / W + 0.3  # + room for a title line: the images, not the gaps, fill the width


def _runs_at(rec: dict) -> str:
    s = rec.get("run_size") or 0
    return f"run at {s} px on the longer side (only the change enlarged back)" if s else "run at full resolution"


def _kit_vs_paper(rec: dict) -> str:
    return (f"Kit vs paper: the kit's model ({rec.get('preset')} preset, variant {rec.get('variant')}, "
            f"{_runs_at(rec)}) was trained on synthetic drops only (agan.synth.renderer) and is shown on synthetic frames; "
            "the paper trains on and shows real photos of its Raindrop dataset.")


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
                           f"input {_mean_scores(results, 'input')}, kit model {_mean_scores(results, 'model')}")
    add_caption(fig, "Look for: the bright, blurred drops of the top row gone in the middle row, the scene around "
                     f"them unchanged (compare with the ground truth below). {_kit_vs_paper(rec)}\n"
                     f"Weights: {_label(rec)}.")
    return _save(fig, out_dir, FIGURE_FILES["fig1"])


def _attention_line(att: dict) -> str:
    fmt = lambda v, nd: ", ".join(f"{x:.{nd}f}" for x in v)  # noqa: E731
    return (f"IoU(A_t >= {att['threshold']:g}, M) for t = 1..{att['steps']}: {fmt(att['iou'], 2)}; "
            f"MSE(A_t, M): {fmt(att['mse'], 3)}")


def figure3(results: dict, out_dir: str | os.PathLike) -> Path | None:
    """Fig. 3 / 8: the attention maps A_1..A_N across the recurrent steps, over the image, with the drop mask M;
    per step the IoU of A_t >= threshold and the MSE of A_t against M (mean over the images shown)."""
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
                     title=f"Fig. 3: attention over the {N} recurrent steps, overlaid on I (one scale 0..1), "
                           f"mean over the {n} shown\n{_attention_line(att)}")
    right = max(ax.get_position().x1 for ax in fig.axes)  # beside the grid, outside it: the panels keep their size
    bottom, top = min(ax.get_position().y0 for ax in fig.axes), max(ax.get_position().y1 for ax in fig.axes)
    cax = fig.add_axes((right + 0.006, bottom, 0.008, top - bottom))
    fig.colorbar(ScalarMappable(Normalize(0.0, 1.0), cmap="jet"), cax=cax,
                 label="A_t (opacity grows with A_t; >= 1 clipped)")
    held = {**att, "iou": att["iou_held_out"], "mse": att["mse_held_out"]}
    add_caption(fig, f"Look for: colour concentrating on the drops as t grows and matching M (last column, "
                     f"{att['mask']}); over all {meta['n_score']} held-out frames {_attention_line(held)}. "
                     f"Kit vs paper: the paper's A_t are learnt against M = |I - T| >= 30 of real pairs and shown "
                     f"on real photos; the kit's model was trained with mask_source={rec.get('mask_source')!r} on "
                     f"synthetic drops, {_runs_at(rec)}.\nWeights: {_label(rec)}.")
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
    fig = image_grid(rows, col_titles=["input I", f"S_1 (1/4: {s1[1]}x{s1[0]})", f"S_2 (1/2: {s2[1]}x{s2[0]})",
                                       f"O ({W}x{H})", "ground truth T"], ax_size=_panel(results),
                     title=f"Fig. 4: multi-scale outputs of the contextual autoencoder (G runs at {w}x{h})")
    add_caption(fig, f"Look for: the drops fading from S_1 to O. S_1 and S_2 are the autoencoder's 1/4 and 1/2 "
                     f"scale outputs of G on the frame reduced to {w}x{h} (coarse by design: they are trained against "
                     f"the downscaled T); O at full size, O = I + up(G(down I) - down I), keeps the input's detail "
                     f"(compare with T). Kit vs paper: the paper's G runs at full "
                     f"resolution on 720x480 photos; the kit's model {_runs_at(rec)}, trained on synthetic drops "
                     f"only.\nWeights: {_label(rec)}.")
    return _save(fig, out_dir, FIGURE_FILES["fig4"])


_FIG6_ROWS = ("Eigen13", "Pix2Pix", "AA+AD")
_FIG7_ROWS = ("A", "A+D", "A+AD", "AA+AD")


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
    titles = ([f"input\n{_mean_scores(results, 'input')}"] + [f"{r}{suffix}\n{_mean_scores(results, r)}" for r in cols]
              + ([f"kit model\n{_mean_scores(results, 'model')}"] if kit else []) + ["ground truth"])
    fig = image_grid(grid, col_titles=titles, ax_size=_panel(results), title=f"{title}\n{_scored_on(results)}")
    used = meta.get("drawn_from", {}).get(name, {})
    weights = "; ".join(f"{k}: {v}" for k, v in used.items() if k in cols or (kit and k == "kit model"))
    add_caption(fig, f"{caption}\nWeights: {weights}.")
    return _save(fig, out_dir, name)


def _ablation_budget(meta: dict) -> str:
    info = meta.get("table_info") or {}
    recs = list(meta.get("row_weights", {}).values())
    size = recs[0].get("run_size") if recs else None
    return (f"preset {info.get('preset', recs[0].get('preset') if recs else '?')}, "
            f"{info.get('iterations', recs[0].get('iterations') if recs else '?')} iterations, same data, steps and "
            f"seed for every row" + (f", each run at {size} px (its trained scale)" if size else ""))


def figure6(results: dict, out_dir: str | os.PathLike) -> Path | None:
    """Fig. 6: input, Eigen13, Pix2Pix, AA+AD (the ablation's rows, one budget), the kit's model, ground truth."""
    meta = results["meta"]
    rec = meta.get("model")
    kit = (f"kit model: the release weights, trained on their own recipe ({rec.get('preset')} preset, "
           f"{rec.get('iterations')} iterations), {_runs_at(rec)}" if rec else "")
    caption = (f"Look for: drops left behind or blurred scenes in each column against the ground truth. Eigen13, "
               f"Pix2Pix, AA+AD: the ablation ({_ablation_budget(meta)}); {kit or 'no kit model (weights missing)'}"
               f": not the same budget, so compare the ablation's columns with each other. Kit vs paper: the paper "
               f"trains every method on its Raindrop training set and shows real test photos; here all are synthetic.")
    return _rows_figure(results, out_dir, _FIG6_ROWS, FIGURE_FILES["fig6"],
                        "Fig. 6: qualitative comparison with Eigen13 and Pix2Pix", caption, kit=True)


def figure7(results: dict, out_dir: str | os.PathLike) -> Path | None:
    """Fig. 7: the ablation variants A, A+D, A+AD, AA+AD side by side."""
    meta = results["meta"]
    caption = (f"Look for: drops removed more completely from A to AA+AD (the paper's PSNR order: AA+AD > A+D > "
               f"A+AD > A). The ablation: {_ablation_budget(meta)}. Kit vs paper: a CPU budget of minutes on "
               f"synthetic drops, against the paper's full training on real Raindrop pairs.")
    return _rows_figure(results, out_dir, _FIG7_ROWS, FIGURE_FILES["fig7"],
                        "Fig. 7: ablation variants (A: autoencoder, D: discriminator, AD: attentive D, AA: attention)",
                        caption)


def table1(results: dict, out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Table 1: figures/table1.csv and table1.md, the paper's numbers beside the ablation's (when run)."""
    from agan.viz.plots import write_table1

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
    ap = argparse.ArgumentParser(prog="python -m agan.experiments.figures", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="figures", help="output folder (default figures/)")
    ap.add_argument("--weights", default="", help="model of Fig. 1/3/4/6: a release .safetensors, a checkpoint or a "
                                                  "run folder (default: the kit's shipped release)")
    ap.add_argument("--ablate", default="runs/ablate-cpu", help="ablation folder for Fig. 6/7 and Table 1")
    ap.add_argument("--n-images", type=int, default=4)
    ap.add_argument("--size", default="x".join(map(str, FIGURE_SIZE)), help="HxW of the frames (default 240x360)")
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
