"""The kit's own model in the box: released generator weights (fp16 safetensors + a JSON sidecar).

A release is two files side by side (plus a model card, ``MODEL_CARD.md``, written by
``scripts/export_release.py`` with ``agan.infer.model_card``):

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
import sys
from pathlib import Path

import torch

from agan.checkpoint import KIT_FORMATS, CheckpointError, atomic_write_text, safe_load

__all__ = ["DEFAULT_NAME", "DEFAULT_WEIGHTS", "RELEASE_FORMAT", "announce_default", "default_weights",
           "export_release", "load_release", "resolve_weights", "sha256_file", "sidecar_path"]

RELEASE_FORMAT = "agan-release"
RELEASE_VERSION = 1
DEFAULT_NAME = "agan-synthetic"
# the packaged default model (tests monkeypatch this; default_weights() reads it at call time)
DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / f"{DEFAULT_NAME}.safetensors"
MAX_BYTES = 15 * 1024 * 1024  # what the repository accepts for the shipped weights file
_RESERVED = ("format", "version", "weights", "sha256", "bytes", "parameters", "dtype", "config")
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

    In this order: ``weights`` when given (a kit checkpoint, the authors' gen.pkl, a release
    ``.safetensors`` or a run folder, whose ``checkpoints/generator.pt`` it means; a name that is none of
    these raises FileNotFoundError, never silently replaced); else the
    kit's default model (:func:`default_weights`); only when that is not installed, the run's
    ``run_dir/checkpoints/generator.pt`` when it exists; else ``None``: the caller falls back to an
    untrained generator (or skips), and the line says so. ``""`` counts as not given.
    """
    if weights not in (None, ""):
        p = Path(weights)
        if p.is_dir():  # a run folder: the generator its training kept
            ckpt = p / "checkpoints" / "generator.pt"
            if not ckpt.is_file():
                raise FileNotFoundError(f"WEIGHTS {str(weights)!r}: a folder without "
                                        "checkpoints/generator.pt (give a run folder, a kit checkpoint, "
                                        "gen.pkl or .safetensors)")
            return ckpt, f"{ckpt} (WEIGHTS)"
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
    if fmt not in KIT_FORMATS:
        raise CheckpointError(f"{path}: not a kit checkpoint (format {fmt!r}; expected one of "
                              f"{KIT_FORMATS}); export_release takes a run's checkpoints/generator.pt")
    if "G" not in ckpt or "config" not in ckpt:
        raise CheckpointError(f"{path}: {fmt} checkpoint without 'G' weights or 'config'")
    sd = ckpt["G"]
    if sd and all(k.startswith("module.") for k in sd):  # DDP / DataParallel
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return ckpt["config"], sd, ckpt


def export_release(checkpoint_path: str | os.PathLike, out_dir: str | os.PathLike,
                   card_fields: dict | None = None, name: str = DEFAULT_NAME,
                   overwrite: bool = False) -> Path:
    """Write ``out_dir/<name>.safetensors`` (the generator of a kit checkpoint, float tensors as fp16) and
    ``out_dir/<name>.json`` (config, sha256, size, parameter count + ``card_fields``) -> the .safetensors
    path.

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
                raise ValueError(f"{checkpoint_path}: {k} does not fit in float16 "
                                 "(|value| > 65504 or not finite)")
        tensors[k] = v.contiguous().clone()  # safetensors refuses shared or strided storage
    config_json = json.dumps(cfg.to_dict(), sort_keys=True)
    blob = save(tensors, metadata={"format": RELEASE_FORMAT, "version": str(RELEASE_VERSION),
                                   "config": config_json})
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
    from agan.models import build_generator
    from agan.models.generator import set_derain_config

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such weights file")
    info = read_release_info(path)
    digest = sha256_file(path)
    if digest != info["sha256"]:
        raise CheckpointError(f"{path}: the checksum does not match its {sidecar_path(path).name} (sha256 "
                              f"{digest[:12]}..., expected {str(info['sha256'])[:12]}...): "
                              "corrupt or replaced file")
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
