"""Small pieces of a training run's state: its directory, seeding, RNG snapshots, signals, freezing,
sample grids.

RNG snapshots hold only tensors and Python ints/floats/lists, so checkpoints load with
``torch.load(weights_only=True)`` (``agan.checkpoint.safe_load``): numpy's MT19937 key and
Python's ``random`` state are stored as int64 tensors.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agan.checkpoint import CHECKPOINT_FORMAT, config_from_saved, safe_load
from agan.config import Config

__all__ = ["RESUMABLE_KEYS", "RUN_FILES", "VERSION", "StopFlag", "prepare_run_dir", "restore_rng",
           "rng_state", "seed_all"]


VERSION = 1  # of the run checkpoint layout
RUN_FILES = ("config.json", "metrics.jsonl", "train.log", "checkpoints", "samples")
# keys a resumed run may change (real_val: turning it on changes only what is scored); any other difference
# means "a different run"
RESUMABLE_KEYS = {"iterations", "device", "precision", "num_workers", "deterministic", "log_every",
                  "val_every", "ckpt_every", "sample_every", "real_val", "derain_size", "derain_smooth",
                  "derain_blend"}



def prepare_run_dir(out: Path, cfg: Config, resume: bool, overwrite: bool, is_main: bool) -> dict | None:
    """Check the run directory; return the checkpoint to resume from (or None)."""
    last = out / "checkpoints" / "last.pt"
    if resume and last.is_file():
        ckpt = safe_load(last)
        if is_main:  # temp files of a save cut short by kill -9 (the finished files are intact)
            for stale in last.parent.glob(".*.tmp"):
                stale.unlink(missing_ok=True)
        if ckpt.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{last}: not an agan training checkpoint (format {ckpt.get('format')!r})")
        try:
            old = config_from_saved(ckpt["config"]).to_dict()
        except (TypeError, ValueError) as e:
            raise ValueError(f"{last}: its config: {e}") from None
        diff = sorted(k for k, v in cfg.to_dict().items()
                      if k not in RESUMABLE_KEYS and jsonable(old.get(k)) != jsonable(v))
        if diff:
            raise ValueError(f"{out} holds a different run (config differs in {', '.join(diff)}); "
                             "resume it with its own settings, or use --overwrite / another --out")
        return ckpt
    existing = [p for p in out.iterdir()] if out.is_dir() else []
    if existing and not overwrite:
        what = "a run without a checkpoint" if (out / "config.json").exists() else "other files"
        raise FileExistsError(f"{out} is not empty (holds {what}); use --resume to continue it, "
                              "--overwrite to replace it, or choose another --out")
    if existing and overwrite and is_main:
        for name in RUN_FILES:
            p = out / name
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    return None


def jsonable(v: Any) -> Any:
    return json.loads(json.dumps(v))



def seed_all(seed: int) -> None:
    """Seed Python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, state, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
        "numpy": {"name": str(name), "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": int(version), "state": torch.tensor(state, dtype=torch.int64),
                   "gauss_next": gauss_next},
    }


def restore_rng(state: dict) -> None:
    torch.set_rng_state(state["torch"].cpu())
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["state"].tolist()), p["gauss_next"]))


class StopFlag:
    """SIGINT/SIGTERM set ``signum`` instead of killing the run, so the loop can save and return.
    A second signal restores the previous handlers and raises KeyboardInterrupt (an atomic save
    in progress leaves the previous checkpoint intact)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signum: int | None = None
        self._old: dict = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread
        for s in self.SIGNALS:
            self._old[s] = signal.signal(s, self._handle)

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:
            self.restore()
            raise KeyboardInterrupt
        self.signum = signum

    def restore(self) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
        self._old = {}
