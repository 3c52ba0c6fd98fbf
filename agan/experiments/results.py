"""The results the paper's figures are drawn from, computed once: ``results.npz`` + ``results.json``.

Reference: Qian et al., CVPR 2018 -- Fig. 1, 3, 4 (the kit's model: O, A_1..A_N, S_1, S_2), Fig. 6, 7 and
Table 1 (the ablation's rows); the figures themselves are drawn by ``agan.experiments.figures``.

    compute_results("figures", weights="", ablate_dir="runs/ablate-cpu")  # slow part, once
    results = load_results("figures")                                      # cheap: arrays + results["meta"]

Which model computes what:
    * Fig. 1, 3, 4 and the "kit model" column of Fig. 6: ``weights``, chosen by
      ``agan.infer.shipped.resolve_weights``: "" (default) is the kit's shipped release
      (agan/weights/agan-synthetic.safetensors); a release ``.safetensors``, a kit checkpoint
      (``generator.pt``) or a run folder (its checkpoints/generator.pt) overrides it. Every model runs at
      its trained scale (``agan.infer.pipeline.derain``: ``DerainSettings.size``, or the ``frame_px`` of
      its drops; only the change is enlarged back).
    * Fig. 6's Eigen13 / Pix2Pix / AA+AD columns, Fig. 7 and Table 1: the ablation in ``ablate_dir``
      (``agan.experiments.table1.row_generator``: seed 0 of each row), each row's G giving its raw output O
      as the paper scores it (``agan.infer.settings.PAPER`` at the row's trained scale: the kit's
      ``derain_smooth`` / ``derain_blend`` saved with a row's weights are not applied).
  The weights of every figure (path, sha256) are recorded in results.json (``drawn_from``).

The frames: a fixed set of held-out synthetic frames (``agan.synth.renderer.make_pair`` with a seed no
training run uses, whole 3:2 frames of ``size`` = (H, W) with the synthesiser's defaults and
``frame_px = W``: drops at the scale of a real photo); images are stored as uint8, maps as float16, and
scores are computed on the raw outputs first: per-image PSNR / SSIM (the authors' protocol,
``agan.evaluation.protocol``) and per-step attention scores (``attention.attention_scores`` against the drop
mask ``SynthResult.alpha >= agan.data.datasets.DROP_MASK_ALPHA``). The images never come from
../shared/real (no licence to redistribute).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from agan.atomic import atomic_path
from agan.experiments.attention import ATTENTION_THRESHOLD, attention_meta
from agan.experiments.table1 import ROWS, row_generator

__all__ = ["FIG6_ROWS", "FIG7_ROWS", "FIGURE_FILES", "FIGURE_SEED", "FIGURE_SIZE", "compute_results",
           "load_results", "parse_size", "weights_label"]

FIGURE_SEED = 2_018_0001  # held-out synthetic pairs for the figures: a seed of their own
FIGURE_SIZE = (240, 360)  # (H, W): a whole 3:2 frame, drops recognisable; the paper's photos are 480 x 720
RESULTS_NPZ, RESULTS_JSON = "results.npz", "results.json"
FIGURE_FILES = {"fig1": "fig1_results.png", "fig3": "fig3_attention.png", "fig4": "fig4_multiscale.png",
                "fig6": "fig6_comparison.png", "fig7": "fig7_ablation.png"}
FIG6_ROWS = ("Eigen13", "Pix2Pix", "AA+AD")  # the Table 1 rows of Fig. 6 (qualitative comparison)
FIG7_ROWS = ("A", "A+D", "A+AD", "AA+AD")  # ... and of Fig. 7 (the ablation variants)


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


def _u8(x: np.ndarray) -> np.ndarray:
    """Images in [0, 1] -> uint8, clipped and rounded (what the protocol scores and the figures show)."""
    return np.rint(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


# ----------------------------------------------------------------------------------------------
# which weights, and running them on the frames
# ----------------------------------------------------------------------------------------------
def _shown_path(path: Path) -> str:
    """``agan/...`` for files inside the package (the shipped release), else the path as given."""
    pkg = Path(__file__).resolve().parents[1]
    try:
        return str(Path("agan") / path.resolve().relative_to(pkg))
    except ValueError:
        return str(path)


def _weights_record(path: Path, settings) -> dict[str, Any]:
    """What a figure says about the weights that drew it: path, sha256, kind, recipe, the scale G ran at."""
    from agan.checkpoint import config_from_saved, safe_load
    from agan.infer.shipped import read_release_info, sha256_file

    if path.suffix.lower() == ".safetensors":
        info = read_release_info(path)
        cfg = info.get("config", {})
        rec = {"kind": "release", "path": _shown_path(path), "sha256": info["sha256"],
               "preset": info.get("preset", cfg.get("name")),
               "iterations": info.get("iterations", info.get("step")),
               "seed": info.get("seed", cfg.get("seed"))}
    else:
        ckpt = safe_load(path, map_location="cpu")
        cfg = ckpt.get("config", {}) if isinstance(ckpt, dict) else {}
        rec = {"kind": "checkpoint", "path": _shown_path(path), "sha256": sha256_file(path),
               "preset": cfg.get("name"), "iterations": ckpt.get("step") if isinstance(ckpt, dict) else None,
               "seed": cfg.get("seed")}
    frame = config_from_saved(cfg).synth.get("frame_px") if cfg else None  # (old runs: in cfg["extra"])
    # the trained scale: derain_size, else the frame its drops were drawn in
    size = settings.size or int(frame or 0)
    rec.update(variant=cfg.get("variant"), model=cfg.get("model", "agan"), mask_source=cfg.get("mask_source"),
               derain_size=settings.size, frame_px=frame, run_size=size)
    return rec


def weights_label(rec: dict | None) -> str:
    """One line naming the weights of a record: path, sha256 (12 hex digits), iterations."""
    if not rec:
        return "none"
    it = f", {rec['iterations']} iterations" if rec.get("iterations") is not None else ""
    return f"{rec['path']} ({rec['kind']}, sha256 {str(rec.get('sha256'))[:12]}{it})"


def _multiscale(G, rain: np.ndarray, size: int, dev) -> tuple[np.ndarray, np.ndarray, tuple[int, int]] | None:
    """S_1, S_2 of G at the scale it runs at (the frame reduced to ``size`` px on its longer side, as
    ``agan.infer.pipeline.derain_tensor`` reduces it) and that working size; None for models without
    S_1/S_2."""
    import torch
    import torch.nn.functional as F

    from agan.images import to_tensor

    x = to_tensor(rain)[None]  # (1, 3, H, W)
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


def _run_model(G, settings, rec: dict, pairs, dev, progress: bool, desc: str):
    """derain (with ``settings``, at the model's trained scale ``rec["run_size"]``) on every pair -> outputs
    (unclipped floats), maps."""
    from tqdm.auto import tqdm

    from agan.infer.pipeline import derain

    outs, maps = [], []
    for p in tqdm(pairs, desc=desc, disable=not progress):
        o, a = derain(p.rain.astype(np.float32) / 255.0, model=G, device=dev, clip=False,
                      settings=settings, size=rec["run_size"])
        outs.append(o)
        maps.append(a)
    return outs, maps


# ----------------------------------------------------------------------------------------------
# the steps of compute_results
# ----------------------------------------------------------------------------------------------
def _frames(seed: int, H: int, W: int, n_score: int, n_images: int, progress: bool):
    """Step 1: the held-out frames -> (pairs, their drop masks, the arrays of the shown ones, synth)."""
    from tqdm.auto import tqdm

    from agan.data.datasets import DROP_MASK_ALPHA
    from agan.synth import SynthParams, make_pair
    from agan.synth.params import replace

    # whole frames: the synthesiser's defaults (tuned toward the real pairs) with the frame as wide as the
    # image, so that drops have the size they have in a photo of that width
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
    return pairs, drop_masks, arrays, synth


def _kit_model(weights, pairs, drop_masks, arrays: dict, meta: dict, dev, progress: bool,
               threshold: float) -> None:
    """Step 2: the kit's model -> A_t, S_1, S_2, O (Fig. 1, 3, 4, the kit column of Fig. 6) into
    ``arrays`` and ``meta``; a missing default model is recorded (its figures are skipped)."""
    from agan.evaluation.protocol import score_pair
    from agan.infer.load import load_generator
    from agan.infer.shipped import resolve_weights

    path, about = resolve_weights(weights)  # a path asked for but absent raises here
    if path is None:
        meta["model_missing"] = about
        return
    n_images, (H, W) = len(arrays["rain"]), arrays["rain"].shape[1:3]
    G, settings = load_generator(path, device=dev)
    rec = _weights_record(path, settings)
    meta["model"] = rec
    outs, maps = _run_model(G, settings, rec, pairs, dev, progress, f"model {rec['path']}")
    meta["scores"]["model"] = [score_pair(o, p.clean) for o, p in zip(outs, pairs)]  # on the raw outputs
    arrays["model_O"] = _u8(np.stack(outs[:n_images]))
    N = len(maps[0])
    arrays["model_A"] = (np.stack([np.stack(a) for a in maps[:n_images]]) if N
                         else np.zeros((n_images, 0, H, W))).astype(np.float16)  # (n, N, H, W)
    if N:
        meta["attention"] = attention_meta(maps, drop_masks, n_images, threshold)
    ms = [_multiscale(G, p.rain, rec["run_size"], dev) for p in pairs[:n_images]]
    if all(m is not None for m in ms):
        arrays.update(model_S1=_u8(np.stack([m[0] for m in ms])), model_S2=_u8(np.stack([m[1] for m in ms])))
        rec["working_size"] = list(ms[0][2])
    label = weights_label(rec)
    meta["drawn_from"].update({FIGURE_FILES["fig1"]: {"kit model": label},
                               FIGURE_FILES["fig6"]: {"kit model": label}})
    if N:
        meta["drawn_from"][FIGURE_FILES["fig3"]] = {"kit model": label}
    if "model_S1" in arrays:
        meta["drawn_from"][FIGURE_FILES["fig4"]] = {"kit model": label}


def _ablation_rows(ablate_dir: Path, pairs, arrays: dict, meta: dict, dev, progress: bool) -> None:
    """Step 3: each ablation row's raw O (Fig. 6, 7; seed 0 of each row that ran) and the ablation's
    Table 1."""
    from agan.evaluation.protocol import score_pair
    from agan.infer.load import load_generator
    from agan.infer.settings import PAPER

    n_images, row_O = len(arrays["rain"]), []
    for row in ROWS:
        path = row_generator(ablate_dir, row)
        if not path.is_file():
            continue
        G, settings = load_generator(path, device=dev)
        rec = _weights_record(path, settings)
        rec["scored_on"] = "raw O"  # PAPER: without the kit's smoothing and attention blend
        # G's own O (only where a frame is larger than the row's trained scale is G's change enlarged back)
        outs, _ = _run_model(G, PAPER, rec, pairs, dev, progress, f"row {row}")
        meta["scores"][row] = [score_pair(o, p.clean) for o, p in zip(outs, pairs)]  # on the raw outputs
        row_O.append(_u8(np.stack(outs[:n_images])))
        meta["rows"].append(row)
        meta["row_weights"][row] = rec
        for fig, wanted in (("fig6", FIG6_ROWS), ("fig7", FIG7_ROWS)):
            if row in wanted:
                meta["drawn_from"].setdefault(FIGURE_FILES[fig], {})[row] = weights_label(rec)
    if row_O:
        arrays["rows_O"] = np.stack(row_O)  # (rows, n, H, W, 3) uint8
    summary = ablate_dir / "ablation.json"
    if summary.is_file():
        data = json.loads(summary.read_text())
        meta["table"], meta["table_info"] = data.get("measured"), data.get("info")


def compute_results(out_dir: str | os.PathLike, weights: str | os.PathLike | None = "",
                    ablate_dir: str | os.PathLike | None = None, n_images: int = 4,
                    size: int | str | tuple | list = FIGURE_SIZE, seed: int = FIGURE_SEED,
                    device: str = "auto", progress: bool = True, n_score: int = 64,
                    threshold: float = ATTENTION_THRESHOLD) -> Path:
    """Run the models on ``max(n_score, n_images)`` held-out synthetic frames of ``size`` = (H, W), score them
    all (a few images are too few for a mean: per-image gains spread by dB), store the first ``n_images`` for
    the figures, and write ``out_dir/results.npz`` + ``results.json``. ``weights``: the model of Fig. 1/3/4/6
    ("" = the kit's shipped release; see the module docstring). Missing weights or runs are recorded as
    missing (their figures are skipped), so this works on a fresh clone too. Returns the npz path."""
    from agan import pick_device
    from agan.evaluation.protocol import score_pair

    H, W = parse_size(size)
    if n_images < 1:
        raise ValueError(f"n_images must be >= 1, got {n_images}")
    n_score = max(int(n_score), n_images)
    dev = pick_device(device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # 1. the held-out frames and the rainy input's scores (the identity baseline)
    pairs, drop_masks, arrays, synth = _frames(seed, H, W, n_score, n_images, progress)
    meta: dict[str, Any] = {"seed": seed, "size": [H, W], "n_images": n_images, "n_score": n_score,
                            "synth": synth, "model": None, "model_missing": None, "rows": [],
                            "row_weights": {}, "scores": {}, "attention": None, "drawn_from": {},
                            "table": None, "table_info": None, "ablate_dir": None}
    meta["scores"]["input"] = [score_pair(p.rain, p.clean) for p in pairs]
    # 2. the kit's model; 3. the ablation's rows
    _kit_model(weights, pairs, drop_masks, arrays, meta, dev, progress, threshold)
    if ablate_dir and Path(ablate_dir).is_dir():
        _ablation_rows(Path(ablate_dir), pairs, arrays, meta, dev, progress)
        meta["ablate_dir"] = str(ablate_dir)
    # 4. written atomically: a crash leaves the previous results or the new ones
    npz = out / RESULTS_NPZ
    with atomic_path(npz, suffix=".npz") as tmp:  # savez appends .npz to a name without it
        np.savez_compressed(tmp, **arrays)
    with atomic_path(out / RESULTS_JSON) as tmp:
        tmp.write_text(json.dumps(meta, indent=2) + "\n")
    return npz


def load_results(out_dir: str | os.PathLike) -> dict[str, Any]:
    """The arrays of results.npz and the metadata of results.json in one dict (metadata under "meta")."""
    out = Path(out_dir)
    if not (out / RESULTS_NPZ).is_file():
        raise FileNotFoundError(f"{out / RESULTS_NPZ}: no results yet (run compute_results or make_all "
                                "first)")
    with np.load(out / RESULTS_NPZ) as z:
        res = {k: z[k] for k in z.files}
    res["meta"] = json.loads((out / RESULTS_JSON).read_text())
    return res
