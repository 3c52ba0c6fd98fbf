"""The shipped model's card: what a run folder says about its training (card fields, from config.json and
metrics.jsonl), what the exported weights measure on synthetic frames and real pairs, and MODEL_CARD.md
rendered from both (scripts/export_release.py).

    fields = run_card_fields("runs/release")                   # steps, wall time, machine, last metrics
    fields["measured"] = measure_release(weights, real_dir)    # PSNR / SSIM, input vs output
    Path("MODEL_CARD.md").write_text(render_model_card(read_release_info(weights)))  # agan.infer.shipped
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import textwrap
from pathlib import Path
from typing import Any

import torch

from agan.infer.shipped import DEFAULT_NAME, load_release

__all__ = ["MEASURE_SEED", "machine_description", "measure_release", "render_model_card", "reproduce_command",
           "run_card_fields"]

# the card's synthetic frames: make_pair(MEASURE_SEED, i, (480, 720)), never trained on
MEASURE_SEED = 20180001
# what config.json's explicit precision trains at, as the "run" rows of metrics.jsonl name it
_PRECISION = {"fp32": "fp32", "bf16": "bf16 autocast", "fp16": "fp16 autocast"}


def machine_description() -> dict[str, Any]:
    """This machine: platform, CPU model (/proc/cpuinfo), CPU count, Python and torch versions."""
    from agan.cpu import cpu_model_name

    return {"platform": platform.platform(), "cpu": cpu_model_name(), "cpu_count": os.cpu_count(),
            "python": platform.python_version(), "torch": torch.__version__}


def _training(rows: list[dict], cfg, where: Path) -> dict[str, Any]:
    """Iterations, wall time and device of a finished run, from its "run" / "done" rows
    (``agan.train.records``); device and precision from config.json when it names both."""
    from agan.train.records import DONE, RUN

    starts = [r for r in rows if r.get("split") == RUN]
    ends = [r for r in rows if r.get("split") == DONE]
    finished = [r for r in ends if not r.get("stopped")]
    if not finished:
        why = (f"an unfinished or interrupted run? finish it with agan train --out {where.parent} --resume"
               if starts or ends else "a run from before metrics.jsonl recorded its 'run' and 'done' rows; "
               "train.log is not read")
        raise ValueError(f"{where}: no 'done' row of a finished segment (iterations, wall time): {why}")
    if starts:
        last = starts[-1]
        n = int(last.get("processes", 1))
        trained_on = {"device": f"{last['device']}{f' x{n} processes' if n > 1 else ''}",
                      "precision": last["precision"]}
    elif cfg.device != "auto" and cfg.precision in _PRECISION:
        trained_on = {"device": cfg.device, "precision": _PRECISION[cfg.precision]}
    else:
        raise ValueError(f"{where}: no 'run' row (device, precision) and config.json says device "
                         f"{cfg.device!r}, precision {cfg.precision!r} (a run from before metrics.jsonl "
                         "recorded them)")
    real_pairs = dict(starts[-1].get("real_pairs") or {}) if starts else {}
    return {"iterations": int(finished[-1]["step"]),
            "wall_time_s": round(sum(float(r.get("seconds", 0.0)) for r in ends), 1),
            # a segment killed without a "done" row (kill -9) has a "run" row only: its time is not counted
            "wall_time_segments": len(ends), "segments_without_time": max(0, len(starts) - len(ends)),
            "trained_on": trained_on, "real_pairs": real_pairs}


def _last_scores(rows: list[dict], cfg, real_pairs: dict) -> dict[str, Any]:
    """The last "val" row and the last "real" row of the card's set of real pairs (the first of
    ``cfg.real_val_dirs``)."""
    first = Path(cfg.real_val_dirs[0]).name if cfg.real_val_dirs else None
    last: dict[str, dict] = {}
    for row in rows:
        if row.get("split") == "val" or (row.get("split") == "real" and row.get("set", first) == first):
            last[row["split"]] = {k: v for k, v in row.items() if k not in ("split", "set")}
    metrics = {}
    if "val" in last:
        metrics["synthetic_val"] = {**last["val"], "images": cfg.val_size}
    if "real" in last:
        pairs = real_pairs.get(first)
        metrics["real"] = {**last["real"], "data": cfg.real_val_dirs[0],
                           **({"pairs": pairs} if pairs else {})}
    return metrics


def run_card_fields(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Card fields of a finished training run, from its config.json and metrics.jsonl: iterations, seed, wall
    time (the "done" rows' seconds, summed over resumed segments), device and precision (its "run" rows),
    the last 'val' and 'real' rows, this machine. ValueError (one line) for a run without the rows needed."""
    from agan.checkpoint import load_saved_config
    from agan.train.records import read_rows

    run_dir = Path(run_dir)
    for need in ("config.json", "metrics.jsonl"):
        if not (run_dir / need).is_file():
            raise FileNotFoundError(f"{run_dir / need}: missing (is {run_dir} a training run folder?)")
    cfg = load_saved_config(run_dir / "config.json")
    rows = read_rows(run_dir / "metrics.jsonl")
    run = _training(rows, cfg, run_dir / "metrics.jsonl")
    return {"run": run_dir.name, "preset": cfg.name, "iterations": run["iterations"], "seed": cfg.seed,
            "wall_time_s": run["wall_time_s"], "wall_time_segments": run["wall_time_segments"],
            "segments_without_time": run["segments_without_time"],
            "trained_on": run["trained_on"], "machine": machine_description(),
            "metrics": _last_scores(rows, cfg, run["real_pairs"]), "reproduce": reproduce_command(cfg)}


def reproduce_command(cfg, out: str = f"runs/{DEFAULT_NAME}") -> str:
    """The ``agan train`` command that rebuilds ``cfg``: its preset plus ``--set`` for every field that
    differs."""
    from dataclasses import fields

    from agan.config import PRESETS, Config

    base = Config.preset(cfg.name) if cfg.name in PRESETS else Config()
    parts = ["agan", "train", "--preset", cfg.name if cfg.name in PRESETS else "paper", "--out", out]
    for f in fields(cfg):
        if f.name == "name":
            continue
        v, b = getattr(cfg, f.name), getattr(base, f.name)
        if v == b:
            continue
        if isinstance(v, str):
            try:  # a string that would parse as JSON (e.g. "1e-3") must be given as a JSON string
                json.loads(v)
                text = json.dumps(v)
            except json.JSONDecodeError:
                text = v
        else:
            text = json.dumps(list(v) if isinstance(v, tuple) else v, separators=(",", ":"))
        parts += ["--set", f"{f.name}={text}"]
    return " ".join(shlex.quote(p) for p in parts)


def measure_release(weights: str | os.PathLike, real_dir: str | os.PathLike | None = None,
                    n_synthetic: int = 12, progress: bool = True) -> dict[str, Any]:
    """The card's numbers, measured on the exported file through the plain ``agan.infer.pipeline.derain``
    (fp32, with the derain settings saved in the file: ``load_release``): ``n_synthetic`` whole 480x720
    synthetic frames (seed ``MEASURE_SEED``, drops at a photo's scale) and, when ``real_dir`` holds pairs, the
    real pairs at full resolution. Per-image scores are kept so that a test can reproduce a subset."""
    import numpy as np
    from tqdm.auto import tqdm

    from agan.data.layout import read_pairs
    from agan.evaluation.protocol import score_pair
    from agan.infer.pipeline import derain
    from agan.synth.renderer import make_pair

    G, settings = load_release(weights, "cpu")

    def score(pairs, what):
        rows = []
        for rain, clean in tqdm(pairs, desc=f"measure {what}", disable=not progress):
            out, _ = derain(rain, model=G, settings=settings, precision="fp32")
            rows.append([*score_pair(out, clean), *score_pair(rain, clean)])
        m = np.mean(rows, 0).tolist()
        return {"psnr": m[0], "ssim": m[1], "psnr_input": m[2], "ssim_input": m[3], "images": len(rows),
                "per_image": [[round(v, 4) for v in r] for r in rows]}

    syn = [(r.rain, r.clean) for r in (make_pair(MEASURE_SEED, i, (480, 720)) for i in range(n_synthetic))]
    out = {"synthetic": {**score(syn, "synthetic"), "data": f"make_pair({MEASURE_SEED}, i, (480, 720)), "
                                                             f"i < {n_synthetic}"}}
    if real_dir and Path(real_dir).is_dir():
        out["real"] = {**score(read_pairs(real_dir), "real pairs"), "data": str(real_dir)}
    return out


def _fmt(x, nd=2) -> str:
    return f"{x:.{nd}f}" if isinstance(x, (int, float)) else "n/a"


def _measured(metrics: dict, measured: bool = False) -> str:
    rows = ["| Data | Input PSNR (dB) | Output PSNR (dB) | Gain (dB) | Input SSIM | Output SSIM |",
            "| --- | --- | --- | --- | --- | --- |"]
    names = ({"synthetic": "synthetic 480x720 frames", "real": "real pairs"} if measured else
             {"synthetic_val": "synthetic held-out", "real": "real pairs"})
    for key, label in names.items():
        m = metrics.get(key)
        if not m:
            rows.append(f"| {label} | n/a | n/a | n/a | n/a | n/a |")
            continue
        gain = m["psnr"] - m["psnr_input"] if "psnr" in m and "psnr_input" in m else None
        what = (f"{label} ({m['images']} {'frames' if measured else 'crops'})"
                if key.startswith("synthetic") and "images" in m
                else f"{label} ({m.get('pairs', m.get('images'))} pairs, {m.get('data', '')})"
                if key == "real" and ("pairs" in m or "images" in m) else label)
        rows.append(f"| {what} | {_fmt(m.get('psnr_input'))} | {_fmt(m.get('psnr'))} | "
                    f"{'+' if gain is not None and gain >= 0 else ''}{_fmt(gain)} | "
                    f"{_fmt(m.get('ssim_input'), 4)} | {_fmt(m.get('ssim'), 4)} |")
    return "\n".join(rows)


def _wrap(text: str, width: int = 105) -> str:
    """Re-flow the prose paragraphs of a markdown text (headings, tables, lists and code blocks kept)."""
    out, fence = [], False
    for block in text.split("\n\n"):
        if block.startswith("```") or fence:
            fence = block.count("```") % 2 == 1 if not fence else block.count("```") % 2 == 0
            out.append(block)
        elif block.startswith(("#", "|", "- ", "* ")):
            out.append(block)
        else:
            out.append(textwrap.fill(" ".join(block.split()), width, break_on_hyphens=False,
                                     break_long_words=False))
    return "\n\n".join(out)


def _card_head(info: dict, stem: str) -> str:
    """What it is, Data, Recipe (up to the reproduce command)."""
    cfg = info.get("config", {})
    machine = info.get("machine", {})
    trained_on = info.get("trained_on", {})
    wall = info.get("wall_time_s")
    minutes = f" ({wall / 60:.1f} min)" if isinstance(wall, (int, float)) else ""
    segments = info.get("wall_time_segments", 1)
    untimed = info.get("segments_without_time", 0)
    size = cfg.get("derain_size", 0)
    scale = (f"by default it runs on a photo reduced to {size} px on its longer side (`Config.derain_size`, "
             f"the scale its drops were drawn at) and only its change is enlarged back, so finer detail "
             f"stays the photo's" if size else "by default it runs at the photo's full resolution")
    return _wrap(f"""# {stem}: the kit's default generator

## What it is

The generator G of the Attentive GAN (Qian et al., CVPR 2018): an attentive-recurrent network that
produces the attention maps A_1..A_N, then a contextual autoencoder that produces the derained image O,
built by `agan.models.build_generator` from the config stored with the weights: variant
{cfg.get('variant', '?')}, width {cfg.get('width', '?')} (attentive-recurrent network
{cfg.get('arn_width') or cfg.get('width', '?')}), N = {cfg.get('steps', '?')} steps,
{info.get('parameters', 0):,} parameters. Stored as float16 safetensors ({info.get('bytes', 0) / 1e6:.1f}
MB, sha256 `{info.get('sha256', '?')}`, checked on every load), loaded as float32.

It is the model `agan derain IMG --out DIR`, `agan eval --data DIR` and `agan.infer.pipeline.derain(image)`
use when no weights are given; {scale}.

## Data

Synthetic only. Every training pair was rendered on the fly by the kit's physically based raindrop
synthesiser (`agan.synth.renderer`: drops on a pane in front of the lens, refraction and defocus) over the
clean backgrounds bundled with the package (`agan/assets/backgrounds`; each photo keeps its own licence,
listed in `agan/assets/backgrounds/README.md`). No real rainy photograph, and nothing of the Raindrop
dataset of Qian et al., was trained on; the real pairs under Measured were only scored.

## Recipe

Preset `{info.get('preset', cfg.get('name', '?'))}`, {info.get('iterations', '?')} iterations, seed
{info.get('seed', cfg.get('seed', '?'))}; the full config is in `{stem}.json` (key `config`). Trained on
{trained_on.get('device', '?')} ({trained_on.get('precision', '?')}) in {_fmt(wall, 1)} s{minutes}{
f' over {segments} resumed segments' if segments > 1 else ''}{
f', not counting {untimed} segment(s) killed before they logged their time' if untimed
 else ''}. Machine: {machine.get('cpu', '?')},
{machine.get('platform', '?')}, torch {machine.get('torch', '?')}. To reproduce (then export):""")


def _card_tail(info: dict, failures: str) -> str:
    """Measured, Known failure cases, Licence."""
    failures = failures.strip() or ("See the README (what the model does and does not remove); no failure "
                                    "cases were recorded for this release.")
    measured = info.get("measured")
    first = (f"""Measured on this file (`agan.release.card.measure_release`: `agan.infer.pipeline.derain`
in fp32 with the model's own settings; PSNR / SSIM on Y, the authors' protocol), beside the rainy input's own
scores. The synthetic frames are whole 480x720 renders never trained on; the real pairs are scored at full
resolution.

{_measured(measured, measured=True)}

At the training run's last validation point (64-px synthetic crops; real pairs as the run scored them):

""" if measured else """PSNR / SSIM (Y channel, the authors' protocol) at the run's last validation point,
beside the rainy input's own scores. The real pairs are scored at full resolution as `agan derain` derains
them.

""")
    return _wrap(f"""## Measured

{first}{_measured(info.get('metrics', {}))}

## Known failure cases

{failures}

## Licence

MIT, like the kit. The training backgrounds are not part of this file; they keep their own licences
(`agan/assets/backgrounds/README.md`).""")


def render_model_card(info: dict, failures: str = "") -> str:
    """MODEL_CARD.md for a release sidecar ``info`` (``export_release``'s JSON with :func:`run_card_fields`);
    ``failures``: a markdown snippet for 'Known failure cases' (default: a pointer to the docs)."""
    stem = Path(info.get("weights", DEFAULT_NAME)).stem
    head, tail = _card_head(info, stem), _card_tail(info, failures)
    return (f"{head}\n\n```\n{info.get('reproduce', '?')}\n"
            f"python scripts/export_release.py runs/{stem} --out agan/weights --overwrite\n```\n\n{tail}\n")
