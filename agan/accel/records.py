"""What ``agan tune`` measured on this machine, per generator: a JSON record, and the keys that tie a record
(or a compiled int8 package, ``agan.accel.aoti``) to the CPU, the software and G's weights.

The record is ``$AGAN_CACHE_DIR/precision.json`` (default ``~/.cache/agan``), one entry per key: the CPU
(model name and instruction sets), torch's thread count, the torch and torchao versions and a fingerprint of
G's weights (speed depends on the machine and the widths, quality on the weights).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import weakref
from pathlib import Path

import torch

from agan.atomic import atomic_path
from agan.cpu import cpu_caps

__all__ = ["DEFAULT_KEEP_FLOAT", "cache_path", "lookup", "params_key", "record_key", "recorded_keep_float",
           "write_record"]

DEFAULT_KEEP_FLOAT = ("arn",)  # the int8 split: the ARN stays float, the autoencoder is int8 (docs/int8.md)

_FINGERPRINTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def cache_path() -> Path:
    return Path(os.environ.get("AGAN_CACHE_DIR") or Path.home() / ".cache" / "agan") / "precision.json"


def _cpu() -> str:
    """Model name and instruction sets (after any AGAN_CPU_CAP): int8's speed and its activation range
    (full on VNNI CPUs, 7-bit without) depend on them."""
    return cpu_caps().key()


def params_key(G: torch.nn.Module) -> tuple:
    """Changes whenever any parameter of G is updated in place or replaced (storage and version counters):
    the key of every per-G cache here."""
    return tuple((p.data_ptr(), p._version) for p in G.parameters())


def _fingerprint(G: torch.nn.Module) -> str:
    """sha256 (16 hex) of G's parameters, cached per G while they are unchanged."""
    key = params_key(G)
    cached = _FINGERPRINTS.get(G)
    if cached is None or cached[0] != key:
        h = hashlib.sha256()
        for name, t in G.state_dict().items():
            h.update(name.encode())
            h.update(t.detach().cpu().float().contiguous().numpy().tobytes())
        cached = (key, h.hexdigest()[:16])
        _FINGERPRINTS[G] = cached
    return cached[1]


def record_key(G: torch.nn.Module) -> str:
    try:
        ao = importlib.metadata.version("torchao")  # not an import: that costs seconds of a cold start
    except importlib.metadata.PackageNotFoundError:
        ao = "none"
    return (f"{_cpu()} | {torch.get_num_threads()} threads | torch {torch.__version__} | torchao {ao} | "
            f"G {_fingerprint(G)}")


def _read() -> dict:
    """The records file as a dict; {} when it is missing, unreadable or not a JSON object."""
    try:
        data = json.loads(cache_path().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def lookup(G: torch.nn.Module) -> dict | None:
    """The recorded measurement for G on this machine, or None."""
    records = _read()  # no file: no fingerprint to compute
    entry = records.get(record_key(G)) if records else None
    return entry if isinstance(entry, dict) else None


def recorded_keep_float(G: torch.nn.Module) -> tuple[str, ...]:
    """The int8 split (``keep_float``) that ``agan tune`` chose for G on this machine, else the default."""
    entry = lookup(G)
    if entry and entry.get("eligible") and isinstance(entry.get("keep_float"), list):
        return tuple(entry["keep_float"])
    return DEFAULT_KEEP_FLOAT


def write_record(G: torch.nn.Module, entry: dict) -> None:
    """Store ``entry`` as G's record on this machine (atomically; one line naming the folder if it cannot)."""
    records = _read()
    records[record_key(G)] = entry
    try:
        with atomic_path(cache_path()) as tmp:
            tmp.write_text(json.dumps(records, indent=2) + "\n")
    except OSError as e:
        raise ValueError(f"cannot write the record {cache_path()}: {e.strerror or e} (set AGAN_CACHE_DIR "
                         "to a writable folder)") from e
