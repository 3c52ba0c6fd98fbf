"""The decisive experiment of notebook 06: A vs AA vs AA+AD, scored inside and outside the drop mask M.

Reference: Qian et al., CVPR 2018, Sec. 6, Table 1 (docs/paper.md#table-1). In Table 1 the full model AA+AD
(attentive-recurrent network + autoencoder + attentive discriminator) scores above A (the autoencoder alone),
A+D and A+AD, in PSNR / SSIM of whole images on Raindrop test_a. Whole-image scores mix the pixels under the
drops (the drop mask M, docs/paper.md#raindrop-mask) with the many pixels no drop touched. This experiment
asks two questions where the drops are: does the attentive-recurrent network improve O inside M (A -> AA),
and does the attentive discriminator (AA -> AA+AD)? AA, the attentive-recurrent network + autoencoder without
a discriminator, is not a row of Table 1 (the kit's row: AA+AD whose GAN never starts). Rows ``MASK_ROWS``,
several seeds each, every row trained as ``agan.experiments.ablate`` trains Table 1's rows (same preset, data,
steps, seeds) and scored on G's raw output O (``SCORED_ON``) inside and outside M of held-out synthetic
pairs (``agan.experiments.heldout``):

    from agan.experiments.decide import run_mask_ablation
    res = run_mask_ablation("cpu", seeds=3, out_dir="runs/decide-cpu", iterations=600)
    res.measured["AA"]["gain_in"]      # {"mean", "std", "min", "max", "values"}: dB over the input, in M
    res.compare("A", "AA", "gain_in")  # {"diff", "separated", ...}: is the gap wider than the seed spread?

Layout of ``out_dir``: ``<row>/s<seed>/`` as in ``agan.experiments.ablate`` (resumable row by row and seed by
seed), and ``mask_ablation.{md,json}``.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agan.atomic import atomic_path
from agan.config import Config
from agan.experiments.ablate import SCORED_ON, _print, _seeds, _train_row, checked_rows, row_config, run_rows
from agan.experiments.heldout import HELDOUT, heldout_pairs

__all__ = ["MASK_OVERRIDES", "MASK_ROWS", "MaskAblation", "compare_seeds", "mask_row_config", "masked_scores",
           "run_mask_ablation"]

# the rows of run_mask_ablation: does the attentive-recurrent network (A -> AA), then the attentive
# discriminator (AA -> AA+AD), improve O where the drops are?
MASK_ROWS: dict[str, str] = {
    "A": "autoencoder alone (Table 1's A)",
    "AA": ("attentive-recurrent network + autoencoder, no discriminator: AA+AD whose GAN never starts "
           "(generator-only pre-training for the whole run), so G minimises L_ATT + L_M (+ L_P) alone"),
    "AA+AD": "attentive-recurrent network + autoencoder + attentive discriminator (Table 1's AA+AD)",
}

_NO_GAN = 2 ** 31 - 1  # AA's pretrain_steps: generator-only steps for longer than any run

# the config of each preset's decisive experiment, on top of the preset and row_config's changes. cpu: the
# autoencoder at 1/4 width (16/32/64 channels; the preset's is 3/4) on 32-px crops (the preset's: 64), so that
# 3 rows x 3 seeds of ~1000 steps fit in minutes on one core; no validation or samples during training
MASK_OVERRIDES: dict[str, dict[str, Any]] = {
    "cpu": {"width": 0.25, "crop_size": 32, "val_every": 0, "sample_every": 0, "ckpt_every": 250,
            "log_every": 100},
    "paper": {"val_every": 0, "sample_every": 0},
}


def mask_row_config(preset: str, row: str, seed: int, *, iterations: int | None = None,
                    overrides: list[str] | dict[str, Any] | None = None, device: str | None = None) -> Config:
    """The config of one row of the decisive experiment: ``MASK_OVERRIDES[preset]``, then ``overrides``, then
    the row (``agan.experiments.ablate.row_config``; AA is AA+AD with ``pretrain_steps = _NO_GAN``, longer
    than any run: D is never trained and no GAN term reaches G; a constant, so that a longer run continues a
    shorter one)."""
    if row not in MASK_ROWS:
        raise ValueError(f"unknown row {row!r}; rows: {', '.join(MASK_ROWS)}")
    given = Config.parse_overrides(overrides) if overrides else {}
    cfg = row_config(preset, "AA+AD" if row == "AA" else row, seed, iterations=iterations,
                     overrides={**MASK_OVERRIDES.get(preset, {}), **given}, device=device)
    return cfg.replace(pretrain_steps=_NO_GAN) if row == "AA" else cfg


def _pooled_psnr(sq_err: float, n: int) -> float:
    """PSNR (range 255) of ``n`` pixels whose squared errors sum to ``sq_err``; nan without pixels."""
    if n == 0:
        return math.nan
    return math.inf if sq_err == 0 else 10.0 * math.log10(255.0 ** 2 * n / sq_err)


def masked_scores(G, pairs: dict[str, Any], batch: int = 16) -> dict[str, float]:
    """G's raw output O (``agan.infer.settings.PAPER``) on held-out pairs (:func:`heldout_pairs`) -> PSNR on
    Y inside and outside the drop mask M, and the whole-image PSNR / SSIM of the authors' protocol.

    O and the ground truth are clip-rounded to uint8 and converted to the protocol's Y
    (``agan.evaluation.protocol.rgb_to_y``, quantised); inside / outside M, the squared Y errors of all pairs
    are pooled into one MSE each (``psnr_in``, ``psnr_out``), so that pairs with few drop pixels weigh
    little; ``psnr`` / ``ssim`` are the protocol's means over pairs. ``input_*``: the same for the rainy
    input itself; ``mask_fraction``: the share of pixels in M."""
    import numpy as np
    import torch

    from agan.evaluation.protocol import rgb_to_y, score_pair
    from agan.infer.pipeline import derain_tensor
    from agan.infer.settings import PAPER

    rain, clean, mask = pairs["rain"], pairs["clean"], pairs["mask"]  # (n, 3, H, W) x 2, (n, 1, H, W)
    was_training = G.training
    G.eval()
    try:
        O = torch.cat([derain_tensor(G, rain[i:i + batch], settings=PAPER)[0].cpu()
                       for i in range(0, len(rain), batch)])  # (n, 3, H, W), raw
    finally:
        G.train(was_training)

    def u8(t):  # (n, 3, H, W) float -> (n, H, W, 3) uint8, clip-and-round
        return np.rint(np.clip(t.permute(0, 2, 3, 1).float().numpy(), 0.0, 1.0) * 255.0).astype(np.uint8)

    truth, m = u8(clean), mask[:, 0].numpy() > 0.5  # (n, H, W, 3), (n, H, W)
    y_truth = np.stack([rgb_to_y(t, quantize=True) for t in truth])  # (n, H, W)
    out: dict[str, float] = {"n_images": len(rain), "mask_fraction": float(m.mean())}
    for name, img in (("", u8(O)), ("input_", u8(rain))):
        sq = (np.stack([rgb_to_y(x, quantize=True) for x in img]) - y_truth) ** 2  # (n, H, W)
        out[f"{name}psnr_in"] = _pooled_psnr(float(sq[m].sum()), int(m.sum()))
        out[f"{name}psnr_out"] = _pooled_psnr(float(sq[~m].sum()), int((~m).sum()))
        scores = [score_pair(x, t) for x, t in zip(img, truth)]
        out[f"{name}psnr"] = statistics.fmean(p for p, _ in scores)
        out[f"{name}ssim"] = statistics.fmean(q for _, q in scores)
    return out


def _d_idle(train_dir: Path) -> float | None:
    """The share of a run's logged windows in which D was idle (``D_range`` <= ``D_IDLE_RANGE``: the same
    output for every image, so its GAN term gave G nothing; ``agan.train.monitor``), from its metrics.jsonl;
    None for a run without a working discriminator (no D_range logged)."""
    from agan.train.monitor import D_IDLE_RANGE

    path = train_dir / "metrics.jsonl"
    if not path.is_file():
        return None
    ranges = [row["D_range"] for row in map(json.loads, path.read_text().splitlines())
              if row.get("split") == "train" and "D_range" in row]
    return sum(r <= D_IDLE_RANGE for r in ranges) / len(ranges) if ranges else None


def _spread(values: list[float]) -> dict[str, Any]:
    """mean, sample std (None for one value), min, max of a row's per-seed values."""
    vals = [float(v) for v in values]
    return {"mean": statistics.fmean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else None,
            "min": min(vals), "max": max(vals), "values": vals}


def compare_seeds(a: list[float], b: list[float]) -> dict[str, Any]:
    """Two rows' per-seed values -> ``diff`` (mean of b - mean of a), ``separated`` (their seed ranges do
    not overlap: every seed of one row above every seed of the other, so the gap is wider than the spread
    over seeds), ``spread`` (the wider of the two ranges, max - min) and the ranges themselves."""
    a, b = [float(v) for v in a], [float(v) for v in b]
    return {"diff": statistics.fmean(b) - statistics.fmean(a),
            "separated": min(b) > max(a) or min(a) > max(b),
            "spread": max(max(a) - min(a), max(b) - min(b)), "range_a": (min(a), max(a)),
            "range_b": (min(b), max(b))}


_MASK_KEYS = ("psnr_in", "psnr_out", "psnr", "ssim", "gain_in", "gain_out", "gain")


@dataclass
class MaskAblation:
    """The outcome of :func:`run_mask_ablation`. ``measured``: {row: {key: {mean, std, min, max, values}}} for
    ``psnr_in`` / ``psnr_out`` / ``gain_in`` / ``gain_out`` (dB on Y inside / outside M; gains over the rainy
    input), ``psnr`` / ``ssim`` / ``gain`` (whole images), plus ``n_seeds``, ``train_time_s`` and ``d_idle``
    (per seed: the share of logged windows in which D was idle; None without D); and
    ``measured["input"]`` with the input's own ``psnr_in`` / ``psnr_out`` / ``psnr`` / ``ssim`` (floats)."""

    measured: dict[str, dict[str, Any]]
    runs: dict[str, list[dict]]
    markdown: str
    json_path: Path
    info: dict[str, Any] = field(default_factory=dict)

    def compare(self, a: str, b: str, key: str = "gain_in") -> dict[str, Any]:
        """:func:`compare_seeds` of rows ``a`` and ``b`` on ``key`` (``diff`` = b - a)."""
        return compare_seeds(self.measured[a][key]["values"], self.measured[b][key]["values"])

    def __str__(self) -> str:
        return self.markdown

    def _repr_markdown_(self) -> str:
        return self.markdown


def _mask_markdown(measured: dict[str, dict[str, Any]], info: dict[str, Any]) -> str:
    def cell(s: dict[str, Any]) -> str:
        sd = f" ± {s['std']:.2f}" if s["std"] is not None else ""
        return f"{s['mean']:+.2f}{sd} [{s['min']:+.2f}, {s['max']:+.2f}]"

    inp = measured["input"]
    lines = [(f"Preset `{info['preset']}` with {info['overrides']}, {info['iterations']} iterations per run, "
              f"seeds {info['seeds']}; scored on G's raw output O on {info['heldout']}; M = {info['mask']} "
              f"({info['mask_fraction']:.1%} of the pixels). Gains are dB over the rainy input (PSNR on Y: "
              f"{inp['psnr_in']:.2f} dB inside M, {inp['psnr_out']:.2f} outside, {inp['psnr']:.2f} whole); "
              "mean ± sample std [min, max] over seeds."),
             "",
             "| row | gain inside M (dB) | gain outside M (dB) | gain, whole image (dB) | SSIM | "
             "D idle (share of logged windows, per seed) | training time per seed (s) |",
             "|---|---|---|---|---|---|---|"]
    for row, m in measured.items():
        if row == "input":
            continue
        idle = ", ".join("–" if v is None else f"{v:.0%}" for v in m["d_idle"])
        lines.append(f"| {row} | {cell(m['gain_in'])} | {cell(m['gain_out'])} | {cell(m['gain'])} | "
                     f"{m['ssim']['mean']:.4f} | {idle} | {m['train_time_s'] / max(1, m['n_seeds']):.0f} |")
    lines.append(f"| input | {inp['psnr_in']:.2f} dB | {inp['psnr_out']:.2f} dB | {inp['psnr']:.2f} dB | "
                 f"{inp['ssim']:.4f} | – | – |")
    return "\n".join(lines) + "\n"


def run_mask_ablation(preset: str = "cpu", seeds: int | list[int] = 3, out_dir: str | Path = "runs/decide", *,
                      rows: list[str] | None = None, iterations: int | None = None,
                      overrides: list[str] | dict[str, Any] | None = None, device: str | None = None,
                      heldout_count: int | None = None, heldout_size: tuple[int, int] | None = None,
                      overwrite: bool = False, progress: bool = True,
                      log: Callable[[str], None] | None = None) -> MaskAblation:
    """Train ``rows`` (default ``MASK_ROWS``: A, AA, AA+AD) for each seed with :func:`mask_row_config` and
    score each on G's raw output O inside and outside M of the synthetic held-out split (``heldout_count``
    pairs of ``heldout_size``, defaults ``HELDOUT[preset]``; :func:`masked_scores`). Resumable as
    ``agan.experiments.ablate.run_ablation`` (``out_dir/<row>/s<seed>/``); writes
    ``out_dir/mask_ablation.{md,json}``."""
    log = log or _print
    rows = checked_rows(rows, MASK_ROWS)
    seed_list = _seeds(seeds)
    out = Path(out_dir)
    cfgs = {(r, s): mask_row_config(preset, r, s, iterations=iterations, overrides=overrides, device=device)
            for r in rows for s in seed_list}  # validates every config before any training starts
    first = next(iter(cfgs.values()))
    n, hw = HELDOUT.get(preset, HELDOUT["cpu"])
    n, hw = int(heldout_count or n), tuple(int(v) for v in (heldout_size or hw))
    from agan.experiments.heldout import HELDOUT_SEED

    spec = {"seed": HELDOUT_SEED, "count": n, "size": list(hw), "synth": first.synth,
            "backgrounds": first.backgrounds, "mask_source": first.mask_source}
    pairs = heldout_pairs(first, n, hw)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    results = run_rows(rows, seed_list, out, log, lambda r, s, d: _mask_one(
        cfgs[(r, s)], r, d, pairs, spec, overwrite, progress, log))
    mask = ("the drawn drop layer, alpha >= 0.3" if first.mask_source == "drops"
            else f"|rain - clean| >= {first.mask_threshold}/255 in any channel")
    applied = {**MASK_OVERRIDES.get(preset, {}), **(Config.parse_overrides(overrides) if overrides else {})}
    info = {"preset": preset, "rows": rows, "seeds": seed_list, "iterations": first.iterations,
            "overrides": ", ".join(f"{k}={v}" for k, v in applied.items()) or "no overrides",
            "heldout": f"{n} synthetic held-out pairs of {hw[0]}x{hw[1]} (seed {HELDOUT_SEED})",
            "heldout_spec": spec, "mask": mask, "mask_fraction": results[rows[0]][0]["mask_fraction"],
            "wall_time_s": time.perf_counter() - t0,
            "train_time_s": sum(x.get("train_time_s", 0.0) for v in results.values() for x in v)}
    measured: dict[str, dict[str, Any]] = {}
    for r, runs in results.items():
        measured[r] = {key: _spread([x[key] for x in runs]) for key in _MASK_KEYS}
        measured[r].update(n_seeds=len(runs), train_time_s=sum(x.get("train_time_s", 0.0) for x in runs),
                           d_idle=[x.get("d_idle") for x in runs])
    x0 = results[rows[0]][0]
    measured["input"] = {key: x0[f"input_{key}"] for key in ("psnr_in", "psnr_out", "psnr", "ssim")}
    markdown = _mask_markdown(measured, info)
    (out / "mask_ablation.md").write_text(markdown)
    json_path = out / "mask_ablation.json"
    json_path.write_text(json.dumps({"info": info, "measured": measured, "runs": results}, indent=2,
                                    default=str) + "\n")
    return MaskAblation(measured, results, markdown, json_path, info)


def _mask_one(cfg: Config, row: str, run_dir: Path, pairs: dict[str, Any], spec: dict[str, Any],
              overwrite: bool, progress: bool, log: Callable[[str], None]) -> dict:
    """Train (or resume) one row/seed of the decisive experiment and score it inside / outside M; returns
    (and writes) its results.json. A finished run scored on another held-out split is re-scored."""
    done, result, train_time = _train_row(cfg, row, run_dir, overwrite, progress, log)
    if done is not None and done.get("heldout") == spec:
        return {**done, "d_idle": _d_idle(run_dir / "train")}  # from its log, also for runs scored earlier
    if result is not None:
        G = result.G
    else:  # finished, but scored on another split: its saved generator is scored again
        from agan.infer.load import load_generator

        G = load_generator(run_dir / "train" / "checkpoints" / "generator.pt", device=cfg.device).model
        train_time = float(done.get("train_time_s", 0.0))
    t1 = time.perf_counter()
    scores = masked_scores(G, pairs)
    res = {"row": row, "seed": cfg.seed, "steps": cfg.iterations, **scores,
           "gain_in": scores["psnr_in"] - scores["input_psnr_in"],
           "gain_out": scores["psnr_out"] - scores["input_psnr_out"],
           "gain": scores["psnr"] - scores["input_psnr"], "d_idle": _d_idle(run_dir / "train"),
           "heldout": spec, "scored_on": SCORED_ON,
           "train_time_s": train_time, "eval_time_s": time.perf_counter() - t1, "config": cfg.to_dict()}
    with atomic_path(run_dir / "results.json") as tmp:
        tmp.write_text(json.dumps(res, indent=2) + "\n")
    log(f"{row} seed {cfg.seed}: inside M {res['gain_in']:+.2f} dB, outside {res['gain_out']:+.2f} dB, "
        f"whole {res['gain']:+.2f} dB over the input; trained in {train_time:.0f} s")
    return res
