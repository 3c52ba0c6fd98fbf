"""The kit's own model in the box: find, check and load a released generator (fp16 safetensors + a JSON
sidecar). Writing a release and its model card is ``agan.release`` (``scripts/export_release.py``).

A release is two files side by side (plus ``MODEL_CARD.md``):

    agan-synthetic.safetensors   the generator's tensors, stored as float16 (half the size of fp32);
                                 metadata: {"format": "agan-release", "config": <Config JSON>}
    agan-synthetic.json          {"format", "weights", "sha256" (of the .safetensors file), "bytes",
                                 "parameters", "dtype", "config", ...card fields: step, seed, wall time,
                                 machine, metrics, ...}

:func:`load_release` checks the sha256 *before* it reads a tensor, builds the generator from the config stored
in the (checksummed) weights file and loads the weights, cast back to float32, strictly; it returns the
generator with the derain settings of that config (:class:`Loaded`). The kit ships one release in the package
(``agan/weights/``): :func:`default_weights` finds it, and ``agan derain`` / ``agan.infer.pipeline.derain``
use it when no weights are given.

    from agan.infer.shipped import default_weights, load_release
    G, settings = load_release(default_weights())
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from agan.checkpoint import CheckpointError
from agan.infer.settings import DerainSettings

__all__ = ["DEFAULT_NAME", "DEFAULT_WEIGHTS", "RELEASE_FORMAT", "RELEASE_VERSION", "Loaded",
           "announce_default", "default_weights", "load_release", "read_release_info", "resolve_weights",
           "sha256_file", "sidecar_path"]

RELEASE_FORMAT = "agan-release"
RELEASE_VERSION = 1
DEFAULT_NAME = "agan-synthetic"
# the packaged default model (tests monkeypatch this; default_weights() reads it at call time)
DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / f"{DEFAULT_NAME}.safetensors"
_announced = False


class Loaded(NamedTuple):
    """A generator and how it derains by default: ``G, settings = load_generator(path)``."""

    model: nn.Module
    settings: DerainSettings


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
# Reading a release
# ----------------------------------------------------------------------------------------------


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


def _read_checked(path: Path) -> tuple[str, dict]:
    """(config JSON, tensors) of the release at ``path``, its sha256 checked against the sidecar first."""
    from safetensors import SafetensorError, safe_open

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
    return meta["config"], sd


def load_release(path: str | os.PathLike, device: str | torch.device = "cpu") -> Loaded:
    """The generator of a release file (``.safetensors`` + its ``.json``), in eval mode on ``device``, with
    the derain settings of its config -> ``Loaded(model, settings)``.

    The sha256 of the weights file is checked against the sidecar before anything is read from it
    (mismatch: :class:`~agan.checkpoint.CheckpointError`); the generator is built from the config stored
    in the weights file, the fp16 tensors are loaded as float32, strictly; the settings are
    ``DerainSettings.of(config)`` (``derain_size``, ``derain_smooth``, ``derain_blend``).
    """
    from agan import pick_device
    from agan.models import generator_from_saved

    path = Path(path)
    config_json, sd = _read_checked(path)
    try:
        cfg_dict = json.loads(config_json)
    except ValueError as e:
        raise CheckpointError(f"{path}: its config is invalid: {e}") from None
    sd = {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}  # fp16 -> float32
    cfg, model = generator_from_saved(cfg_dict, sd, path)
    device = pick_device(device) if isinstance(device, str) else device
    return Loaded(model.to(device).eval(), DerainSettings.of(cfg))
