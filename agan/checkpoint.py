"""Safe, atomic checkpoint files.

* Loading never executes code: ``torch.load(..., weights_only=True)`` only (pickled classes or
  functions are refused with a clear message). Legacy (non-zip) files, such as the authors'
  ``gen.pkl`` written by PyTorch 0.3.1 under Python 2.7, load through the same safe unpickler.
* Saving is atomic: write to a temporary file in the same folder, fsync, then rename, so a crash
  never leaves a half-written file under the final name.
* A saved config (a checkpoint's "config", a run's config.json, a release's metadata) is read by
  :func:`config_from_saved`, which migrates the keys of older kit versions first.
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from agan.atomic import atomic_path
from agan.config import Config

__all__ = ["CHECKPOINT_FORMAT", "GENERATOR_FORMAT", "KIT_FORMATS", "CheckpointError", "atomic_save",
           "atomic_write_text", "config_from_saved", "load_saved_config", "safe_load", "strip_module_prefix"]

# the "format" of the kit's own checkpoint files: a run's checkpoints/last.pt (everything to resume) and its
# checkpoints/generator.pt (G and its config, for inference)
CHECKPOINT_FORMAT, GENERATOR_FORMAT = "agan-checkpoint", "agan-generator"
KIT_FORMATS = (CHECKPOINT_FORMAT, GENERATOR_FORMAT)


class CheckpointError(RuntimeError):
    """A checkpoint file could not be loaded safely; the message names the file and the reason."""


def safe_load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """Load a checkpoint with ``weights_only=True``; raise :class:`CheckpointError` with one clear line."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: checkpoint file is empty")
    errors = []
    # Python 2 pickles (the authors' gen.pkl) may hold byte strings that need latin1.
    for extra in ({}, {"encoding": "latin1"}):
        try:
            return torch.load(path, map_location=map_location, weights_only=True, **extra)
        except pickle.UnpicklingError as e:
            msg = str(e)
            if "weights_only" in msg or "Unsupported global" in msg or "Weights only load failed" in msg:
                first = next((ln for ln in msg.splitlines() if "Unsupported" in ln or "GLOBAL" in ln), "")
                raise CheckpointError(
                    f"{path}: refused: the file contains pickled code or objects, not only tensors "
                    f"(nothing was executed). {first.strip()}"
                ) from None
            errors.append(msg)
        except UnicodeDecodeError as e:
            errors.append(str(e))
            continue
        except (EOFError, RuntimeError, zipfile.BadZipFile, ValueError, OSError) as e:
            errors.append(str(e).splitlines()[0] if str(e) else type(e).__name__)
            break
    raise CheckpointError(f"{path}: not a readable PyTorch checkpoint (truncated or corrupt?): {errors[-1]}")


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to ``path`` atomically (temp file + fsync + rename + fsync of the folder)."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write a text file (CSV, JSON, ...) atomically: temp file in the same folder + fsync + rename."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    return Path(path)


def config_from_saved(d: dict[str, Any]) -> Config:
    """The Config of a saved run, in any layout the kit has written, migrated to the current fields, then
    :meth:`Config.from_dict` (a key no version knew is one clear error line). Migrations:
    * runs saved before the synthesiser's and the baselines' settings were fields (synth, backgrounds,
      l1_weight, unet_depth, pix2pix_norm) kept them in one ``extra`` dict: its keys become those fields."""
    if not isinstance(d, dict):
        raise ValueError(f"a saved config is a JSON object, got {type(d).__name__}")
    if "extra" in d:
        if not isinstance(d["extra"] or {}, dict):
            raise ValueError(f"a saved config's 'extra' is a JSON object, got {type(d['extra']).__name__}")
        d = {**{k: v for k, v in d.items() if k != "extra"}, **(d["extra"] or {})}
    return Config.from_dict(d)


def load_saved_config(path: str | os.PathLike) -> Config:
    """A run folder's ``config.json``, through :func:`config_from_saved`; a bad file is one line naming it."""
    try:
        with open(path) as f:
            return config_from_saved(json.load(f))
    except (TypeError, ValueError) as e:  # json.JSONDecodeError is a ValueError
        raise ValueError(f"{path}: {e}") from None


def strip_module_prefix(state_dict: dict) -> dict:
    """A state dict saved from DDP / DataParallel ("module.conv1.weight") -> the bare module's keys."""
    if state_dict and all(isinstance(k, str) and k.startswith("module.") for k in state_dict):
        return {k[len("module."):]: v for k, v in state_dict.items()}
    return state_dict
