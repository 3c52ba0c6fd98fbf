"""Table 1 from one call: train the six rows under one budget, evaluate them, tabulate mean ± std.

Reference: Qian et al., CVPR 2018, Sec. 6, Table 1 (docs/paper.md#table-1): Eigen13, Pix2Pix, A, A+D, A+AD,
AA+AD on Raindrop test_a, PSNR / SSIM with the authors' protocol (docs/paper.md#evaluation-protocol,
``agan.evaluation.protocol``).

    from agan.experiments.ablate import run_ablation
    table = run_ablation("cpu", seeds=3, out_dir="runs/ablation-cpu")   # -> AblationTable
    print(table.markdown)                                               # paper | kit mean ± std

The rows (model and variant each trains, the paper's numbers) are ``agan.experiments.table1.ROWS``.
Every row is the same ``agan.train.loop.train`` call on the same preset, data, iteration count and
seeds; only ``cfg.model`` / ``cfg.variant`` differ. Each row is scored on G's raw output O (the paper's
protocol: ``agan.infer.settings.PAPER``; the kit's inference settings ``derain_smooth`` / ``derain_blend``
saved with a row's weights are not applied) on one held-out split:
a synthetic set rendered once into ``out_dir/heldout`` (``agan.experiments.heldout``: a seed never
used for training or validation) unless ``test`` names a folder (Raindrop ``test_a``: ``{data,gt}``, or
a dataset root holding ``test_a/``). The identity baseline (the rainy input scored as is) is
the extra row "input".

Layout of ``out_dir`` (resumable row by row and seed by seed):
    heldout/{data,gt}/ + heldout.json         the synthetic held-out split (when no ``test``)
    <row>/s<seed>/train/                      the trainer's run folder (checkpoints, metrics, samples);
                                              <row> is ``table1.row_slug(row)``, e.g. A+AD -> A_AD
    <row>/s<seed>/results.json                PSNR / SSIM of that run; present = finished, not redone
    <row>/s<seed>/per_image.csv               per-image scores
    table1.csv, table1.md, ablation.json      the table (paper beside kit), and everything in one file
An interrupted run resumes from its last checkpoint; a finished row/seed is skipped when its
results.json holds the same config and was scored the same way (``SCORED_ON``; a run scored otherwise is
re-scored, not retrained); a larger ``iterations`` continues training from the checkpoint.

The decisive experiment of notebook 06 (A vs AA vs AA+AD, inside and outside the drop mask M) trains its rows
with the same steps: ``agan.experiments.decide``.
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
from agan.experiments.heldout import scoring_split
from agan.experiments.table1 import ROWS, order_agreement, row_dir, table1_markdown, table1_rows, write_table1

__all__ = ["SCORED_ON", "AblationTable", "row_config", "run_ablation", "summarise"]

# how every row is scored: G's raw output O, as the paper scores it (agan.infer.settings.PAPER: no smoothing,
# no attention blend, full resolution); a results.json scored otherwise is re-scored
SCORED_ON = "raw O"

# config keys whose change a finished row survives by training on (its checkpoint continues)
_CONTINUABLE = {"iterations", "device", "precision", "num_workers", "deterministic", "log_every", "val_every",
                "ckpt_every", "sample_every"}


def _seeds(seeds: int | list[int]) -> list[int]:
    if isinstance(seeds, int):
        if seeds < 1:
            raise ValueError(f"seeds must be >= 1, got {seeds}")
        return list(range(seeds))
    out = [int(s) for s in seeds]
    if not out or len(set(out)) != len(out):
        raise ValueError(f"seeds must be a count or a list of distinct integers, got {seeds!r}")
    return out


def checked_rows(rows, allowed, what: str = "row") -> list[str]:
    """``rows`` as a list (all of ``allowed`` when empty); an unknown one: one line naming the known ones."""
    rows = list(rows) if rows else list(allowed)
    if unknown := [r for r in rows if r not in allowed]:
        raise ValueError(f"unknown {what}(s) {', '.join(unknown)}; rows: {', '.join(allowed)}")
    return rows


def run_rows(rows: list[str], seeds: list[int], out: Path, log, one: Callable) -> dict[str, list[dict]]:
    """``one(row, seed, run_dir)`` for each row and seed, logging "[k/n] row seed s"; row -> its results."""
    results: dict[str, list[dict]] = {r: [] for r in rows}
    for k, (r, s) in enumerate(jobs := [(r, s) for r in rows for s in seeds], 1):
        log(f"[{k}/{len(jobs)}] {r} seed {s}")
        results[r].append(one(r, s, row_dir(out, r, s)))
    return results


def row_config(preset: str, row: str, seed: int, *, iterations: int | None = None, data: str | None = None,
               overrides: list[str] | dict[str, Any] | None = None, device: str | None = None) -> Config:
    """The config of one Table 1 row: the preset, the shared overrides, then the row's model/variant."""
    if row not in ROWS:
        raise ValueError(f"unknown Table 1 row {row!r}; rows: {', '.join(ROWS)}")
    cfg = Config.preset(preset)
    if overrides:
        cfg = Config.preset(preset, **Config.parse_overrides(overrides))  # with what they imply (implied_by)
    # every row minimises its paper's losses: L_keep (a preset's "do no harm" term, not in the paper) is off
    changes: dict[str, Any] = {"model": ROWS[row].model, "seed": seed, "keep_weight": 0.0}
    if ROWS[row].variant is not None:
        changes["variant"] = ROWS[row].variant
    if iterations is not None:
        if iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {iterations}")
        changes["iterations"] = iterations
    if data is not None:
        changes["data"] = str(data)
    if device is not None:
        changes["device"] = device
    return cfg.replace(**changes)


# ----------------------------------------------------------------------------------------------
# the table
# ----------------------------------------------------------------------------------------------


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return None, None
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else None)


def summarise(results: dict[str, list[dict]]) -> dict[str, dict[str, Any]]:
    """{row: [results.json of each seed]} -> {row: {psnr, psnr_std, ssim, ssim_std, n_seeds, ...}}
    (sample std over seeds; None with one seed), plus the "input" row (identity baseline)."""
    measured: dict[str, dict[str, Any]] = {}
    for row, runs in results.items():
        if not runs:
            continue
        p, p_sd = _mean_std([r["psnr"] for r in runs])
        s, s_sd = _mean_std([r["ssim"] for r in runs])
        measured[row] = {"psnr": p, "psnr_std": p_sd, "ssim": s, "ssim_std": s_sd, "n_seeds": len(runs),
                         "seeds": [r["seed"] for r in runs],
                         "train_time_s": sum(r.get("train_time_s", 0.0) for r in runs)}
    inputs = [r for runs in results.values() for r in runs if r.get("input_psnr") is not None]
    if inputs:
        measured["input"] = {"psnr": inputs[0]["input_psnr"], "ssim": inputs[0]["input_ssim"], "n_seeds": 0}
    return measured


@dataclass
class AblationTable:
    """The outcome of :func:`run_ablation`. ``measured``: {row: {psnr, psnr_std, ssim, ssim_std, ...}};
    ``runs``: every row/seed's results.json; ``markdown`` is printable (and rendered by notebooks)."""

    measured: dict[str, dict[str, Any]]
    runs: dict[str, list[dict]]
    markdown: str
    csv_path: Path
    md_path: Path
    json_path: Path
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def rows(self) -> list[dict]:
        return table1_rows(self.measured)

    def __str__(self) -> str:
        return self.markdown

    def _repr_markdown_(self) -> str:
        return self.markdown


def _note(info: dict[str, Any], measured: dict[str, dict[str, Any]]) -> str:
    a_p, t_p = order_agreement(measured, "psnr")
    a_s, t_s = order_agreement(measured, "ssim")
    seeds = info["seeds"]
    lines = [(f"Table 1 (Qian et al., CVPR 2018) beside the kit: preset `{info['preset']}`, "
              f"{info['iterations']} iterations per run, seeds {seeds} (kit: mean ± sample std over seeds), "
              f"held-out split `{info['test']}` ({info['test_kind']}); protocol: {info['protocol']}."),
             (f"Paper numbers are on Raindrop test_a at full budget; kit numbers on the split above at this "
              f"budget. Pairs of rows ordered as in the paper: PSNR {a_p}/{t_p}, SSIM {a_s}/{t_s}.")]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# the driver
# ----------------------------------------------------------------------------------------------


# settings that only a discriminator uses: a row without D (Eigen13, A) is not redone when they change
_D_ONLY = {"disc_width", "disc_pool", "lr_d", "gamma", "adv_weight", "map_target", "pretrain_steps"}


def _config_diff(a: dict, b: dict, row: str | None = None) -> list[str]:
    """Config keys that differ between two runs, leaving out the D-only keys for rows without D."""

    def norm(v):  # tuples vs lists
        return json.loads(json.dumps(v))

    ignore = _D_ONLY if row in ("Eigen13", "A", "AA") else set()
    return sorted(k for k in set(a) | set(b) if k not in ignore and norm(a.get(k)) != norm(b.get(k)))


def _reuse_or_reset(cfg: Config, row: str, run_dir: Path, overwrite: bool, log: Callable[[str], None]
                    ) -> tuple[dict | None, float]:
    """Step 1 of a row/seed -> (its finished results.json or None, training seconds already spent on it).
    The results are returned when the config matches (up to keys the row does not use) and they were
    scored on ``SCORED_ON``; a finished run scored otherwise is kept and re-scored. Else the folder is made
    fit for training: a run that differs only in ``_CONTINUABLE`` keys is kept (to continue from its
    checkpoint); any other difference is refused unless ``overwrite``, which deletes that run."""
    import shutil

    res_path, train_dir = run_dir / "results.json", run_dir / "train"
    saved, spent = None, 0.0
    if res_path.is_file():
        old = json.loads(res_path.read_text())
        saved = old.get("config", {})
        if not _config_diff(saved, cfg.to_dict(), row):
            if old.get("scored_on") == SCORED_ON:
                log(f"{row} seed {cfg.seed}: done already ({res_path}), PSNR {old['psnr']:.2f} "
                    f"SSIM {old['ssim']:.4f}")
                return old, 0.0
            log(f"{row} seed {cfg.seed}: trained already, but scored with the inference settings saved with "
                f"it: re-scored on G's raw output O")
            spent = float(old.get("train_time_s", 0.0))
    elif (train_dir / "config.json").is_file():  # an interrupted run
        saved = json.loads((train_dir / "config.json").read_text())
    if saved is not None:
        diff = _config_diff(saved, cfg.to_dict(), row)
        if not set(diff) <= _CONTINUABLE:
            if not overwrite:
                raise FileExistsError(f"{run_dir} holds a run of another config (differs in "
                                      f"{', '.join(diff)}); use --overwrite to retrain it, or another --out")
            log(f"{row} seed {cfg.seed}: config differs in {', '.join(diff)}: training afresh (--overwrite)")
            shutil.rmtree(train_dir, ignore_errors=True)
            spent = 0.0
        res_path.unlink(missing_ok=True)  # re-scored below
    return None, spent


def _train_row(cfg: Config, row: str, run_dir: Path, overwrite: bool, progress: bool,
               log: Callable[[str], None]):
    """Steps 1-2 of a row/seed -> (its finished results.json, None, 0) or (None, TrainResult, training
    seconds): train (or resume) the run in ``run_dir/train`` to ``cfg.iterations``."""
    from agan.train.loop import train

    # 1. a finished run is returned as is
    done, spent = _reuse_or_reset(cfg, row, run_dir, overwrite, log)
    if done is not None:
        return done, None, 0.0
    # 2. train: resume=True continues an interrupted run; a folder without a checkpoint holds nothing to keep
    train_dir = run_dir / "train"
    has_ckpt = (train_dir / "checkpoints" / "last.pt").is_file()
    t0 = time.perf_counter()
    result = train(cfg, train_dir, resume=True, overwrite=not has_ckpt, progress=progress)
    train_time = spent + time.perf_counter() - t0
    if result.interrupted:
        raise KeyboardInterrupt
    if result.step != cfg.iterations:
        raise ValueError(f"{train_dir} holds a run of {result.step} steps, not the {cfg.iterations} asked "
                         "for; use --overwrite to retrain it, or another --out")
    return None, result, train_time


def _run_one(cfg: Config, row: str, run_dir: Path, test_root: Path, splits, overwrite: bool, progress: bool,
             log: Callable[[str], None]) -> dict:
    """Train (or resume) one row/seed and score it; returns (and writes) its results.json."""
    from agan.evaluation import evaluate_model
    from agan.infer.settings import PAPER

    done, result, train_time = _train_row(cfg, row, run_dir, overwrite, progress, log)
    if done is not None:
        return done
    # 3. score G's raw output O (PAPER: not the kit's derain_smooth / derain_blend saved with the weights) on
    # the held-out split with the authors' protocol
    t1 = time.perf_counter()
    ev = evaluate_model(result.generator, test_root, splits=splits, device=cfg.device, progress=progress,
                        settings=PAPER)
    m = ev.means()
    ev.to_csv(run_dir / "per_image.csv")
    out = {"row": row, "model": cfg.model, "variant": cfg.variant if cfg.model == "agan" else None,
           "seed": cfg.seed, "steps": result.step, "psnr": m["psnr"], "ssim": m["ssim"], "n_images": m["n"],
           "input_psnr": m["input_psnr"], "input_ssim": m["input_ssim"], "test": str(test_root),
           "scored_on": SCORED_ON, "protocol": ev.protocol, "train_time_s": train_time,
           "eval_time_s": time.perf_counter() - t1, "val": result.val, "config": cfg.to_dict()}
    with atomic_path(run_dir / "results.json") as tmp:
        tmp.write_text(json.dumps(out, indent=2) + "\n")
    log(f"{row} seed {cfg.seed}: PSNR {out['psnr']:.2f} dB, SSIM {out['ssim']:.4f} "
        f"(input {out['input_psnr']:.2f} / {out['input_ssim']:.4f}); trained in {train_time:.0f} s")
    return out


_PROTOCOL = ("G's raw output O, crop to a multiple of 4, clip-and-round to uint8, Y = 0.299 R + 0.587 G + "
             "0.114 B, PSNR (range 255) and SSIM (7x7 uniform window) on Y")


def run_ablation(preset: str = "cpu", seeds: int | list[int] = 3, out_dir: str | Path = "runs/ablation", *,
                 rows: list[str] | None = None, data: str | None = None, test: str | None = None,
                 iterations: int | None = None, overrides: list[str] | dict[str, Any] | None = None,
                 device: str | None = None, heldout_count: int | None = None,
                 heldout_size: tuple[int, int] | None = None, overwrite: bool = False, progress: bool = True,
                 log: Callable[[str], None] | None = None) -> AblationTable:
    """Train and evaluate the Table 1 rows (default all six) for each seed, write the table, return it.

    preset: "cpu" | "paper"; seeds: a count (0..n-1) or a list; data: training folder (default the
    preset's, synthetic); test: held-out folder (Raindrop test_a) or None for the synthetic held-out
    split (``heldout_count`` pairs of ``heldout_size``; defaults in ``agan.experiments.heldout.HELDOUT``);
    iterations and ``overrides`` ("key=value" strings or a dict) apply to every row alike. Re-running the
    same call skips what is done; ``overwrite`` retrains the rows whose saved config differs (instead of
    refusing) and re-renders a held-out split of another spec.
    """
    log = log or _print
    rows = checked_rows(rows, ROWS, "Table 1 row")
    seed_list = _seeds(seeds)
    out = Path(out_dir)
    cfgs = {(r, s): row_config(preset, r, s, iterations=iterations, data=data, overrides=overrides,
                               device=device)
            for r in rows for s in seed_list}  # validates every config before any training starts
    first = next(iter(cfgs.values()))
    test_root, splits, test_kind = scoring_split(out, preset, test, first.synth or None,
                                                 first.backgrounds or None, heldout_count, heldout_size,
                                                 overwrite, progress)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    results = run_rows(rows, seed_list, out, log, lambda r, s, d: _run_one(
        cfgs[(r, s)], r, d, test_root, splits, overwrite, progress, log))
    info = {"preset": preset, "rows": rows, "seeds": seed_list, "iterations": first.iterations,
            "test": str(test_root), "test_kind": test_kind, "protocol": _PROTOCOL,
            "wall_time_s": time.perf_counter() - t0,
            "train_time_s": sum(x.get("train_time_s", 0.0) for v in results.values() for x in v)}
    return _write_table(results, info, out)


def _write_table(results: dict[str, list[dict]], info: dict[str, Any], out: Path) -> AblationTable:
    measured = summarise(results)
    note = _note(info, measured)
    csv_path, md_path = write_table1(measured, out, kit_label="kit", note=note)
    cost = ["| row | seeds | training time per seed (s) |", "|---|---|---|"]
    for row, m in measured.items():
        if row != "input":
            cost.append(f"| {row} | {m['n_seeds']} | {m['train_time_s'] / max(1, m['n_seeds']):.0f} |")
    markdown = (note + "\n\n" + table1_markdown(measured, kit_label="kit") + "\n" + "\n".join(cost) + "\n"
                + f"\nTotal wall time of this call: {info['wall_time_s']:.0f} s (finished rows are not "
                "retrained).\n")
    md_path.write_text(markdown)
    json_path = out / "ablation.json"
    json_path.write_text(json.dumps({"info": info, "measured": measured, "runs": results}, indent=2,
                                    default=str) + "\n")
    return AblationTable(measured, results, markdown, csv_path, md_path, json_path, info)


def _print(msg: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(msg)
