"""The rows of metrics.jsonl that say how a run was trained, beside the loss ("train") and score ("val",
"real") rows: what ``agan.release.card`` reads for the model card (no log text is parsed).

    {"step": 0, "split": "run", "device": "cuda:0", "processes": 1, "precision": "bf16 autocast",
     "real_pairs": {"val_pairs": 19}}                           # each (resumed) segment's start
    {"step": 40000, "split": "done", "seconds": 1234.5, "stopped": false}   # its end (stopped: a signal)

A run resumed k times holds k + 1 of each; resuming drops the rows past its checkpoint, as for every row.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["DONE", "RUN", "done_row", "read_rows", "run_row"]

RUN = "run"  # "split" of a segment's first row
DONE = "done"  # "split" of a segment's last row
# the training step's autocast dtype (GanStep.amp: None or a torch dtype) -> how the rows name it
_AMP = {"None": "fp32", "torch.bfloat16": "bf16 autocast", "torch.float16": "fp16 autocast"}


def run_row(step: int, device, precision, real_sets: Mapping[str, object] | None = None,
            processes: int = 1) -> dict:
    """The row a training segment starts with: the step it starts at, its device (str), how many processes
    train (DDP), its precision (a name such as "bf16 autocast", or the step's autocast dtype: None = "fp32",
    torch.bfloat16, torch.float16) and, per set of real pairs scored (folder -> its pairs), how many pairs, by
    the set's folder name as the "real" rows name it."""
    return {"step": int(step), "split": RUN, "device": str(device), "processes": int(processes),
            "precision": precision if isinstance(precision, str) else _AMP[str(precision)],
            "real_pairs": {Path(folder).name: len(pairs) for folder, pairs in (real_sets or {}).items()}}


def done_row(step: int, seconds: float, stopped: bool) -> dict:
    """The row a training segment ends with: its last step, its wall time (s) and whether a signal stopped it
    before ``cfg.iterations`` (a later ``--resume`` continues it)."""
    return {"step": int(step), "split": DONE, "seconds": round(float(seconds), 3), "stopped": bool(stopped)}


def read_rows(path: str | os.PathLike) -> list[dict]:
    """The JSON objects of a metrics.jsonl, in order (blank lines skipped; a malformed line or one that is not
    an object: ValueError naming the file and line)."""
    rows = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{n}: not a JSON object ({e.msg})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{path}:{n}: expected a JSON object, got {type(row).__name__}")  # noqa: TRY004
        rows.append(row)
    return rows
