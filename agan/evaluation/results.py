"""The scores of an evaluation: per-image rows, means per split, CSV / JSON files and a printable table.

Rows follow the authors' protocol (``agan.evaluation.protocol``; docs/paper.md#evaluation-protocol); the
identity baseline (the rainy input scored against its ground truth) sits beside the model's numbers.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agan.checkpoint import atomic_write_text

__all__ = ["EvalResult", "refuse_existing_outputs"]

_ROW_FIELDS = ("split", "id", "output", "gt", "input", "psnr", "ssim", "input_psnr", "input_ssim")


def _mean(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


@dataclass
class EvalResult:
    """Per-image rows (``split, id, output, gt, input, psnr, ssim, input_psnr, input_ssim``) and their
    means. ``input_*`` is the identity baseline (rainy input vs gt); None where no input was given."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    protocol: dict[str, Any] = field(default_factory=dict)

    @property
    def splits(self) -> list[str]:
        return list(dict.fromkeys(r["split"] for r in self.rows))

    def means(self, split: str | None = None) -> dict[str, Any]:
        rows = [r for r in self.rows if split is None or r["split"] == split]
        return {"n": len(rows), **{k: _mean([r[k] for r in rows])
                                    for k in ("psnr", "ssim", "input_psnr", "input_ssim")}}

    @property
    def psnr(self) -> float | None:
        return self.means()["psnr"]

    @property
    def ssim(self) -> float | None:
        return self.means()["ssim"]

    def summary(self) -> dict[str, Any]:
        return {"protocol": self.protocol, "splits": {s: self.means(s) for s in self.splits},
                "all": self.means()}

    def to_csv(self, path: str | os.PathLike) -> Path:
        """The per-image rows as CSV (empty cells for missing values)."""
        buf = io.StringIO(newline="")
        w = csv.DictWriter(buf, fieldnames=_ROW_FIELDS)
        w.writeheader()
        for r in self.rows:
            w.writerow({k: ("" if r.get(k) is None else r[k]) for k in _ROW_FIELDS})
        return atomic_write_text(path, buf.getvalue())  # temp + fsync + rename

    def to_json(self, path: str | os.PathLike) -> Path:
        """The summary (protocol + means per split) as JSON (inf PSNR written as the string "inf")."""
        def clean(v):
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            return "inf" if isinstance(v, float) and math.isinf(v) else v

        return atomic_write_text(path, json.dumps(clean(self.summary()), indent=2) + "\n")

    def table(self) -> str:
        """A printable per-split table: the model's PSNR / SSIM beside the identity baseline."""
        def f(v, d):
            return "   -   " if v is None else f"{v:.{d}f}"

        lines = [f"{'split':<12} {'n':>5}  {'PSNR':>7} {'SSIM':>7}   {'input PSNR':>10} {'input SSIM':>10}"]
        for name in self.splits + (["all"] if len(self.splits) > 1 else []):
            m = self.means(None if name == "all" else name)
            lines.append(f"{name:<12} {m['n']:>5}  {f(m['psnr'], 2):>7} {f(m['ssim'], 4):>7}   "
                         f"{f(m['input_psnr'], 2):>10} {f(m['input_ssim'], 4):>10}")
        p = self.protocol
        lines.append(f"protocol: crop to multiple of 4, cast {p.get('cast')}, color {p.get('color')}, "
                     f"PSNR data range 255, SSIM 7x7 uniform window")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def refuse_existing_outputs(csv_path=None, json_path=None, out_dir=None, overwrite: bool = False) -> None:
    """Refuse, before any work is done, to replace an existing CSV / JSON file or to write outputs into a
    non-empty folder unless ``overwrite`` (the flags ``agan eval`` names them by)."""
    if overwrite:
        return
    for flag, value in (("--csv", csv_path), ("--json", json_path)):
        if value and Path(value).exists():
            raise FileExistsError(f"{flag} {value}: exists (use --overwrite to replace it)")
    if out_dir and Path(out_dir).is_dir() and any(Path(out_dir).iterdir()):
        raise FileExistsError(f"--save-outputs {out_dir}: folder is not empty (use --overwrite)")
