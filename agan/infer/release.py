"""The kit's own model in the box: released generator weights (fp16 safetensors + a JSON sidecar).

A release is two files side by side (plus a model card, ``MODEL_CARD.md``, written by
``scripts/export_release.py``):

    agan-synthetic.safetensors   the generator's tensors, stored as float16 (half the size of fp32);
                                 metadata: {"format": "agan-release", "config": <Config JSON>}
    agan-synthetic.json          {"format", "weights", "sha256" (of the .safetensors file), "bytes",
                                 "parameters", "dtype", "config", ...card fields: step, seed, wall time,
                                 machine, metrics, ...}

:func:`load_release` checks the sha256 *before* it reads a tensor, builds the generator from the
config stored in the (checksummed) weights file and loads the weights, cast back to float32, strictly.
The kit ships one release in the package (``agan/weights/``): :func:`default_weights` finds it, and
``agan derain`` / ``agan.infer.pipeline.derain`` use it when no weights are given.

    from agan.infer.release import export_release, load_release
    path = export_release("runs/x/checkpoints/generator.pt", "agan/weights", {"seed": 0})
    G = load_release(path)
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shlex
import sys
import textwrap
from pathlib import Path
from typing import Any

import torch

from agan.checkpoint import CheckpointError, atomic_write_text, safe_load

__all__ = ["DEFAULT_NAME", "DEFAULT_WEIGHTS", "RELEASE_FORMAT", "announce_default", "default_weights",
           "export_release", "load_release", "machine_description", "render_model_card",
           "reproduce_command", "resolve_weights", "run_card_fields", "sha256_file", "sidecar_path"]

RELEASE_FORMAT = "agan-release"
RELEASE_VERSION = 1
DEFAULT_NAME = "agan-synthetic"
# the packaged default model (tests monkeypatch this; default_weights() reads it at call time)
DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / f"{DEFAULT_NAME}.safetensors"
MAX_BYTES = 15 * 1024 * 1024  # what the repository accepts for the shipped weights file
_RESERVED = ("format", "version", "weights", "sha256", "bytes", "parameters", "dtype", "config")
_CHECKPOINT_FORMATS = ("agan-checkpoint", "agan-generator")
_announced = False


def sidecar_path(weights: str | os.PathLike) -> Path:
    """The JSON beside a release's .safetensors file (same stem)."""
    return Path(weights).with_suffix(".json")


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _shown(path: Path) -> str:
    """``agan/weights/<name>`` for the packaged files, else the path as given."""
    pkg = Path(__file__).resolve().parents[1]
    try:
        return str(Path("agan") / Path(path).resolve().relative_to(pkg))
    except ValueError:
        return str(path)


# ----------------------------------------------------------------------------------------------
# The packaged default
# ----------------------------------------------------------------------------------------------


def default_weights() -> Path:
    """The kit's packaged model (``agan/weights/agan-synthetic.safetensors``); FileNotFoundError (one line)
    when it is not installed."""
    p = Path(DEFAULT_WEIGHTS)
    if not p.is_file():
        raise FileNotFoundError(f"the kit's default model is not installed ({_shown(p)}): pass --weights "
                                f"(weights=... in Python)")
    return p


def announce_default(path: str | os.PathLike | None = None) -> None:
    """Say once per process, on stderr, that the kit's default model is in use."""
    global _announced
    if _announced:
        return
    _announced = True
    print(f"using the kit's default model ({_shown(Path(path or DEFAULT_WEIGHTS))}, trained on synthetic "
          f"drops only)", file=sys.stderr, flush=True)


def resolve_weights(weights: str | os.PathLike | None = None, run_dir: str | os.PathLike | None = None
                    ) -> tuple[Path | None, str]:
    """Which generator the notebooks (and the explorer) show -> ``(path or None, one line saying which)``.

    In this order: ``weights`` when given (a kit checkpoint, the authors' gen.pkl or a release
    ``.safetensors``; a name that is not a file raises FileNotFoundError, never silently replaced); else the
    kit's default model (:func:`default_weights`); only when that is not installed, the run's
    ``run_dir/checkpoints/generator.pt`` when it exists; else ``None``: the caller falls back to an
    untrained generator (or skips), and the line says so. ``""`` counts as not given.
    """
    if weights not in (None, ""):
        p = Path(weights)
        if not p.is_file():
            raise FileNotFoundError(f"WEIGHTS {str(weights)!r}: no such file (a kit checkpoint, gen.pkl or "
                                    f".safetensors; \"\" for the kit's default model)")
        return p, f"{p} (WEIGHTS)"
    try:
        p = default_weights()
        return p, f"the kit's default model ({_shown(p)}, trained on synthetic drops only)"
    except FileNotFoundError:
        missing = f"the kit's default model, {_shown(Path(DEFAULT_WEIGHTS))}, is not installed"
    if run_dir not in (None, ""):
        ckpt = Path(run_dir) / "checkpoints" / "generator.pt"
        if ckpt.is_file():
            return ckpt, f"{ckpt} (the run in RUN_DIR: {missing})"
        return None, (f"{missing} and there is no run at {ckpt} (set WEIGHTS, or run 05_training / "
                      f"`make reproduce`)")
    return None, f"{missing} (set WEIGHTS)"


# ----------------------------------------------------------------------------------------------
# Export and load
# ----------------------------------------------------------------------------------------------


def _checkpoint_parts(path: Path) -> tuple[dict, dict, dict]:
    """A kit checkpoint -> (config dict, generator state dict, the checkpoint itself)."""
    ckpt = safe_load(path, map_location="cpu")
    fmt = ckpt.get("format") if isinstance(ckpt, dict) else None
    if fmt not in _CHECKPOINT_FORMATS:
        raise CheckpointError(f"{path}: not a kit checkpoint (format {fmt!r}; expected one of "
                              f"{_CHECKPOINT_FORMATS}); export_release takes a run's checkpoints/generator.pt")
    if "G" not in ckpt or "config" not in ckpt:
        raise CheckpointError(f"{path}: {fmt} checkpoint without 'G' weights or 'config'")
    sd = ckpt["G"]
    if sd and all(k.startswith("module.") for k in sd):  # DDP / DataParallel
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return ckpt["config"], sd, ckpt


def export_release(checkpoint_path: str | os.PathLike, out_dir: str | os.PathLike, card_fields: dict | None = None,
                   name: str = DEFAULT_NAME, overwrite: bool = False) -> Path:
    """Write ``out_dir/<name>.safetensors`` (the generator of a kit checkpoint, float tensors as fp16) and
    ``out_dir/<name>.json`` (config, sha256, size, parameter count + ``card_fields``) -> the .safetensors path.

    ``checkpoint_path``: a run's ``checkpoints/generator.pt`` (format agan-generator: the G validation
    scored, its moving average when ema > 0) or ``last.pt`` (agan-checkpoint: its "G", as ``load_generator``
    reads it). Existing files are never replaced unless ``overwrite=True``.
    """
    from safetensors.torch import save

    from agan.atomic import atomic_path
    from agan.config import Config
    from agan.models import build_generator

    checkpoint_path, out_dir = Path(checkpoint_path), Path(out_dir)
    card_fields = dict(card_fields or {})
    clash = sorted(set(card_fields) & set(_RESERVED))
    if clash:
        raise ValueError(f"card_fields may not set {clash}: export_release writes them")
    weights, sidecar = out_dir / f"{name}.safetensors", out_dir / f"{name}.json"
    for p in (weights, sidecar):
        if p.exists() and not overwrite:
            raise FileExistsError(f"{p}: exists (pass overwrite=True / --overwrite to replace it)")
    cfg_dict, sd, ckpt = _checkpoint_parts(checkpoint_path)
    try:
        cfg = Config.from_dict(cfg_dict)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{checkpoint_path}: its config is invalid: {e}") from None
    model = build_generator(cfg)  # the weights must fit the config they will be rebuilt from
    try:
        model.load_state_dict(sd)
    except RuntimeError as e:
        raise CheckpointError(f"{checkpoint_path}: weights do not match the config's generator (width "
                              f"{cfg.width}, steps {cfg.steps}, variant {cfg.variant})") from e
    tensors = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu()
        if v.is_floating_point():
            v = v.to(torch.float16)
            if not torch.isfinite(v).all():
                raise ValueError(f"{checkpoint_path}: {k} does not fit in float16 (|value| > 65504 or not finite)")
        tensors[k] = v.contiguous().clone()  # safetensors refuses shared or strided storage
    config_json = json.dumps(cfg.to_dict(), sort_keys=True)
    blob = save(tensors, metadata={"format": RELEASE_FORMAT, "version": str(RELEASE_VERSION), "config": config_json})
    with atomic_path(weights) as tmp:
        tmp.write_bytes(blob)
    info = {"format": RELEASE_FORMAT, "version": RELEASE_VERSION, "weights": weights.name,
            "sha256": sha256_file(weights), "bytes": weights.stat().st_size,
            "parameters": sum(p.numel() for p in model.parameters()), "dtype": "float16",
            "config": cfg.to_dict()}
    if "step" in ckpt and "step" not in card_fields:
        card_fields["step"] = ckpt["step"]
    info.update(card_fields)
    atomic_write_text(sidecar, json.dumps(info, indent=2, sort_keys=False, default=str) + "\n")
    return weights


def read_release_info(path: str | os.PathLike) -> dict:
    """The sidecar JSON of the release at ``path`` (the .safetensors file)."""
    side = sidecar_path(path)
    if not side.is_file():
        raise CheckpointError(f"{path}: its sidecar {side.name} (config and sha256) is missing")
    try:
        info = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{side}: not a readable release sidecar: {str(e).splitlines()[0]}") from None
    if not isinstance(info, dict) or info.get("format") != RELEASE_FORMAT or "sha256" not in info:
        raise CheckpointError(f"{side}: not an {RELEASE_FORMAT} sidecar (format and sha256 missing)")
    return info


def load_release(path: str | os.PathLike, device: str | torch.device = "cpu") -> torch.nn.Module:
    """The generator of a release file (``.safetensors`` + its ``.json``), in eval mode on ``device``.

    The sha256 of the weights file is checked against the sidecar before anything is read from it
    (mismatch: :class:`~agan.checkpoint.CheckpointError`); the generator is built from the config stored
    in the weights file, the fp16 tensors are loaded as float32, strictly; how it derains
    (``derain_size``, ``derain_smooth``, ``derain_blend``) is set from that config.
    """
    from safetensors import SafetensorError, safe_open

    from agan import pick_device
    from agan.config import Config
    from agan.infer.pipeline import set_derain_config
    from agan.models import build_generator

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such weights file")
    info = read_release_info(path)
    digest = sha256_file(path)
    if digest != info["sha256"]:
        raise CheckpointError(f"{path}: the checksum does not match its {sidecar_path(path).name} (sha256 "
                              f"{digest[:12]}..., expected {str(info['sha256'])[:12]}...): corrupt or replaced file")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            sd = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file: {str(e).splitlines()[0]}") from None
    if meta.get("format") != RELEASE_FORMAT or "config" not in meta:
        raise CheckpointError(f"{path}: not an {RELEASE_FORMAT} weights file (no config in its metadata)")
    try:
        cfg = Config.from_dict(json.loads(meta["config"]))
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: its config is invalid: {e}") from None
    model = build_generator(cfg)
    sd = {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not match the config's generator (width {cfg.width}, "
                              f"steps {cfg.steps}, variant {cfg.variant})") from e
    set_derain_config(model, cfg)
    return model.to(pick_device(device) if isinstance(device, str) else device).eval()


# ----------------------------------------------------------------------------------------------
# Run directory -> card fields -> MODEL_CARD.md (scripts/export_release.py)
# ----------------------------------------------------------------------------------------------


def machine_description() -> dict[str, Any]:
    """This machine: platform, CPU model (/proc/cpuinfo), CPU count, Python and torch versions."""
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"platform": platform.platform(), "cpu": cpu or "unknown", "cpu_count": os.cpu_count(),
            "python": platform.python_version(), "torch": torch.__version__}


_DONE = re.compile(r"^(done|stopped): step (\d+) in ([0-9.]+) s")
_RUN = re.compile(r"^run .*?: .*?device (?P<device>[^,]+), precision (?P<precision>[^,]+),")
_REAL_PAIRS = re.compile(r"; (\d+) real pairs, ")


def run_card_fields(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Card fields of a finished training run: iterations, seed, wall time (train.log's 'done: step N in S s',
    summed over resumed segments), device, the last 'val' and 'real' rows of metrics.jsonl, this machine."""
    from agan.config import Config

    run_dir = Path(run_dir)
    for need in ("config.json", "metrics.jsonl", "train.log"):
        if not (run_dir / need).is_file():
            raise FileNotFoundError(f"{run_dir / need}: missing (is {run_dir} a training run folder?)")
    cfg = Config.load(run_dir / "config.json")
    segments, done, trained_on, real_pairs = [], None, None, None
    for line in (run_dir / "train.log").read_text(encoding="utf-8", errors="replace").splitlines():
        if m := _DONE.match(line):
            segments.append(float(m.group(3)))
            if m.group(1) == "done":
                done = int(m.group(2))
        elif m := _RUN.match(line):
            trained_on = {"device": m.group("device").strip(), "precision": m.group("precision").strip()}
        elif m := _REAL_PAIRS.search(line):
            real_pairs = int(m.group(1))
    if done is None:
        raise ValueError(f"{run_dir / 'train.log'}: no 'done: step N in S s' line (an unfinished or interrupted "
                         f"run? finish it with agan train --out {run_dir} --resume)")
    last: dict[str, dict] = {}
    with open(run_dir / "metrics.jsonl", encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            row = json.loads(line)
            if row.get("split") in ("val", "real"):
                last[row["split"]] = {k: v for k, v in row.items() if k != "split"}
    metrics = {}
    if "val" in last:
        metrics["synthetic_val"] = {**last["val"], "images": cfg.val_size}
    if "real" in last:
        metrics["real"] = {**last["real"], "data": cfg.real_val, **({"pairs": real_pairs} if real_pairs else {})}
    return {"run": run_dir.name, "preset": cfg.name, "iterations": done, "seed": cfg.seed,
            "wall_time_s": round(sum(segments), 1), "wall_time_segments": len(segments),
            "trained_on": trained_on or {}, "machine": machine_description(), "metrics": metrics,
            "reproduce": reproduce_command(cfg)}


def reproduce_command(cfg, out: str = f"runs/{DEFAULT_NAME}") -> str:
    """The ``agan train`` command that rebuilds ``cfg``: its preset plus ``--set`` for every field that differs."""
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


MEASURE_SEED = 20180001  # the card's synthetic frames: make_pair(MEASURE_SEED, i, (480, 720)), never trained on


def measure_release(weights: str | os.PathLike, real_dir: str | os.PathLike | None = None,
                    n_synthetic: int = 12, progress: bool = True) -> dict[str, Any]:
    """The card's numbers, measured on the exported file through ``agan.infer.pipeline.derain`` (fp32, the model's own
    derain settings): ``n_synthetic`` whole 480x720 synthetic frames (seed ``MEASURE_SEED``, drops at a photo's
    scale) and, when ``real_dir`` holds pairs, the real pairs at full resolution. Per-image scores are kept so
    that a test can reproduce a subset."""
    import numpy as np
    from tqdm.auto import tqdm

    from agan.evaluation.protocol import read_pairs, score_pair
    from agan.infer.pipeline import derain, load_generator
    from agan.synth.renderer import make_pair

    G = load_generator(weights, "cpu")

    def score(pairs, what):
        rows = []
        for rain, clean in tqdm(pairs, desc=f"measure {what}", disable=not progress):
            out, _ = derain(rain, model=G, precision="fp32")
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
        what = (f"{label} ({m['images']} {'frames' if measured else 'crops'})" if key.startswith("synthetic")
                and "images" in m else f"{label} ({m.get('pairs', m.get('images'))} pairs, {m.get('data', '')})"
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


def render_model_card(info: dict, failures: str = "") -> str:
    """MODEL_CARD.md for a release sidecar ``info`` (:func:`export_release`'s JSON with
    :func:`run_card_fields`); ``failures``: a markdown snippet for 'Known failure cases' (default: a
    pointer to the docs)."""
    cfg = info.get("config", {})
    machine = info.get("machine", {})
    trained_on = info.get("trained_on", {})
    stem = Path(info.get("weights", DEFAULT_NAME)).stem
    wall = info.get("wall_time_s")
    minutes = f" ({wall / 60:.1f} min)" if isinstance(wall, (int, float)) else ""
    segments = info.get("wall_time_segments", 1)
    size = cfg.get("derain_size", 0)
    scale = (f"by default it runs on a photo reduced to {size} px on its longer side (`Config.derain_size`, the "
             f"scale its drops were drawn at) and only its change is enlarged back, so finer detail stays the "
             f"photo's" if size else "by default it runs at the photo's full resolution")
    failures = failures.strip() or ("See the README (what the model does and does not remove); no failure cases "
                                    "were recorded for this release.")
    head = _wrap(f"""# {stem}: the kit's default generator

## What it is

The generator G of the Attentive GAN (Qian et al., CVPR 2018): an attentive-recurrent network that
produces the attention maps A_1..A_N, then a contextual autoencoder that produces the derained image O,
built by `agan.models.build_generator` from the config stored with the weights: variant
{cfg.get('variant', '?')}, width {cfg.get('width', '?')} (attentive-recurrent network
{cfg.get('arn_width') or cfg.get('width', '?')}), N = {cfg.get('steps', '?')} steps,
{info.get('parameters', 0):,} parameters. Stored as float16 safetensors ({info.get('bytes', 0) / 1e6:.1f}
MB, sha256 `{info.get('sha256', '?')}`, checked on every load), loaded as float32.

It is the model `agan derain IMG --out DIR`, `agan eval --data DIR` and `agan.infer.pipeline.derain(image)` use
when no weights are given; {scale}.

## Data

Synthetic only. Every training pair was rendered on the fly by the kit's physically based raindrop
synthesiser (`agan.synth.renderer`: drops on a pane in front of the lens, refraction and defocus) over the clean
backgrounds bundled with the package (`agan/assets/backgrounds`; each photo keeps its own licence, listed
in `agan/assets/backgrounds/README.md`). No real rainy photograph, and nothing of the Raindrop dataset
of Qian et al., was trained on; the real pairs under Measured were only scored.

## Recipe

Preset `{info.get('preset', cfg.get('name', '?'))}`, {info.get('iterations', '?')} iterations, seed
{info.get('seed', cfg.get('seed', '?'))}; the full config is in `{stem}.json` (key `config`). Trained on
{trained_on.get('device', '?')} ({trained_on.get('precision', '?')}) in {_fmt(wall, 1)} s{minutes}{
f' over {segments} resumed segments' if segments > 1 else ''}. Machine: {machine.get('cpu', '?')},
{machine.get('platform', '?')}, torch {machine.get('torch', '?')}. To reproduce (then export):""")
    measured = info.get("measured")
    first = (f"""Measured on this file (`agan.infer.release.measure_release`: `agan.infer.pipeline.derain` in fp32 with the model's own
settings; PSNR / SSIM on Y, the authors' protocol), beside the rainy input's own scores. The synthetic frames are
whole 480x720 renders never trained on; the real pairs are scored at full resolution.

{_measured(measured, measured=True)}

At the training run's last validation point (64-px synthetic crops; real pairs as the run scored them):

""" if measured else """PSNR / SSIM (Y channel, the authors' protocol) at the run's last validation point, beside the rainy
input's own scores. The real pairs are scored at full resolution as `agan derain` derains them.

""")
    tail = _wrap(f"""## Measured

{first}{_measured(info.get('metrics', {}))}

## Known failure cases

{failures}

## Licence

MIT, like the kit. The training backgrounds are not part of this file; they keep their own licences
(`agan/assets/backgrounds/README.md`).""")
    return (f"{head}\n\n```\n{info.get('reproduce', '?')}\n"
            f"python scripts/export_release.py runs/{stem} --out agan/weights --overwrite\n```\n\n{tail}\n")
