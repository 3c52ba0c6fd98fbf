"""Table 1 of the paper, defined once: its rows, what each trains, where its runs live, and how it is printed.

Reference: Qian et al., CVPR 2018, Sec. 6, Table 1 (docs/paper.md#table-1): Eigen13, Pix2Pix, A, A+D, A+AD,
AA+AD on Raindrop test_a, PSNR / SSIM with the authors' protocol (docs/paper.md#evaluation-protocol).

    from agan.experiments.table1 import ROWS, row_generator, table1_markdown
    ROWS["AA+AD"].paper_psnr                       # 31.57, the paper's number
    ROWS["A+D"].model, ROWS["A+D"].variant         # ("agan", "A+D"): what ``agan ablate`` trains for it
    row_generator("runs/ablate-cpu", "A+D", seed=0)  # runs/ablate-cpu/A_D/s0/train/checkpoints/generator.pt
    print(table1_markdown({"A": {"psnr": 20.1, "ssim": 0.61}}))  # the paper's numbers beside the kit's

The measured side of the table is a mapping {row: entry}; an entry is a mapping with ``psnr``, ``ssim``
(or ``psnr_mean``, ``ssim_mean``) and optionally ``psnr_std``, ``ssim_std``, or a (psnr, ssim) pair.
Rows the paper does not have (the identity baseline "input") follow the paper's six. No torch imports.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "INPUT_MEANING",
    "ROWS",
    "Table1Row",
    "order_agreement",
    "row_dir",
    "row_generator",
    "row_slug",
    "table1_csv",
    "table1_markdown",
    "table1_rows",
    "write_table1",
]


@dataclass(frozen=True)
class Table1Row:
    """One row of Table 1: the paper's label and numbers, and the model the kit trains for it."""

    name: str  # the paper's label, e.g. "A+AD"
    meaning: str  # what the row is, in words
    paper_psnr: float  # Table 1, Raindrop test_a
    paper_ssim: float
    model: str  # cfg.model of the row's training run
    variant: str | None  # cfg.variant (None: the preset's own; the baselines have none)

    def paper(self, metric: str) -> float:
        """The paper's number for ``metric`` ("psnr" | "ssim")."""
        return self.paper_psnr if metric == "psnr" else self.paper_ssim


# the paper's six rows, in its order (Sec. 6, Table 1; docs/paper.md#table-1)
ROWS: dict[str, Table1Row] = {r.name: r for r in (
    Table1Row("Eigen13", "3-layer CNN of Eigen et al., ICCV 2013", 28.59, 0.6726, "eigen13", None),
    Table1Row("Pix2Pix", "U-Net generator + PatchGAN, Isola et al. 2017", 30.14, 0.8299, "pix2pix", None),
    Table1Row("A", "autoencoder alone (no attention, no discriminator)", 29.25, 0.7853, "agan", "A"),
    Table1Row("A+D", "autoencoder + plain discriminator", 30.88, 0.8670, "agan", "A+D"),
    Table1Row("A+AD", "autoencoder + attentive discriminator", 30.60, 0.8710, "agan", "A+AD"),
    Table1Row("AA+AD", "attentive-recurrent network + autoencoder + attentive discriminator (full)", 31.57,
              0.9023, "agan", "AA+AD"),
)}
INPUT_MEANING = "the rainy input itself (identity baseline)"  # the extra row "input" of the kit's tables


# ----------------------------------------------------------------------------------------------
# where a row's runs live in an ablation folder (agan.experiments.ablate's layout)
# ----------------------------------------------------------------------------------------------
def row_slug(row: str) -> str:
    """The folder name of a row: "A+AD" -> "A_AD" ("+" is awkward in paths)."""
    return row.replace("+", "_")


def row_dir(ablate_dir: str | os.PathLike, row: str, seed: int = 0) -> Path:
    """``ablate_dir/<row>/s<seed>``: one row/seed's results.json, per_image.csv and its train/ run folder."""
    return Path(ablate_dir) / row_slug(row) / f"s{seed}"


def row_generator(ablate_dir: str | os.PathLike, row: str, seed: int = 0) -> Path:
    """The generator checkpoint that one row/seed's training run wrote."""
    return row_dir(ablate_dir, row, seed) / "train" / "checkpoints" / "generator.pt"


# ----------------------------------------------------------------------------------------------
# the paper's numbers beside the kit's
# ----------------------------------------------------------------------------------------------
def order_agreement(measured: Mapping[str, Mapping[str, Any]], metric: str = "psnr") -> tuple[int, int]:
    """Pairs of Table 1 rows ordered as in the paper by ``metric``: (agreeing pairs, compared pairs)."""
    rows = [r for r in ROWS if r in measured and measured[r].get(metric) is not None]
    agree = total = 0
    for i, a in enumerate(rows):
        for b in rows[i + 1:]:
            paper = ROWS[a].paper(metric) - ROWS[b].paper(metric)
            if paper == 0:
                continue
            total += 1
            agree += (measured[a][metric] - measured[b][metric]) * paper > 0
    return agree, total


def _stat(entry: Any, name: str) -> tuple[float | None, float | None]:
    """(mean, std) of ``name`` ("psnr"/"ssim") from an entry: a mapping with psnr, psnr_std (or
    psnr_mean), a (psnr, ssim) pair, or None."""
    if entry is None:
        return None, None
    if isinstance(entry, Mapping):
        mean = entry.get(name, entry.get(f"{name}_mean"))
        std = entry.get(f"{name}_std")
        return (None if mean is None else float(mean)), (None if std is None else float(std))
    pair = tuple(entry)
    if len(pair) != 2:
        raise ValueError(f"a Table 1 entry is a mapping or a (psnr, ssim) pair, got {entry!r}")
    return float(pair[0 if name == "psnr" else 1]), None


def table1_rows(measured: Mapping[str, Any] | None = None, order: Sequence[str] | None = None) -> list[dict]:
    """Rows of Table 1: variant, meaning, paper_psnr, paper_ssim, kit_psnr, kit_psnr_std, kit_ssim,
    kit_ssim_std (kit values None where not measured). Rows: the paper's six in order, then any extra
    measured rows (e.g. "input")."""
    measured = dict(measured or {})
    names = list(order) if order is not None else list(ROWS) + [k for k in measured if k not in ROWS]
    rows = []
    for name in names:
        row = ROWS.get(name)
        meaning = row.meaning if row else (INPUT_MEANING if name == "input" else "")
        p, p_sd = _stat(measured.get(name), "psnr")
        s, s_sd = _stat(measured.get(name), "ssim")
        rows.append({"variant": name, "meaning": meaning, "paper_psnr": row.paper_psnr if row else None,
                     "paper_ssim": row.paper_ssim if row else None, "kit_psnr": p, "kit_psnr_std": p_sd,
                     "kit_ssim": s, "kit_ssim_std": s_sd})
    return rows


def _fmt(mean: float | None, std: float | None, digits: int) -> str:
    if mean is None:
        return "–"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if std is not None else f"{mean:.{digits}f}"


def table1_markdown(measured: Mapping[str, Any] | None = None, *, kit_label: str = "kit",
                    order: Sequence[str] | None = None) -> str:
    """Table 1 as Markdown: | variant | meaning | paper PSNR | paper SSIM | kit PSNR | kit SSIM |."""
    lines = [f"| variant | meaning | paper PSNR | paper SSIM | {kit_label} PSNR | {kit_label} SSIM |",
             "|---|---|---|---|---|---|"]
    for r in table1_rows(measured, order):
        lines.append(f"| {r['variant']} | {r['meaning']} | {_fmt(r['paper_psnr'], None, 2)} | "
                     f"{_fmt(r['paper_ssim'], None, 4)} | {_fmt(r['kit_psnr'], r['kit_psnr_std'], 2)} | "
                     f"{_fmt(r['kit_ssim'], r['kit_ssim_std'], 4)} |")
    return "\n".join(lines) + "\n"


def table1_csv(measured: Mapping[str, Any] | None = None, order: Sequence[str] | None = None) -> str:
    """Table 1 as CSV text (empty cells where not measured)."""
    rows = table1_rows(measured, order)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in r.items()})
    return buf.getvalue()


def write_table1(measured: Mapping[str, Any] | None, out_dir: str | os.PathLike, *, kit_label: str = "kit",
                 note: str = "") -> tuple[Path, Path]:
    """Write ``table1.csv`` and ``table1.md`` into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out / "table1.csv", out / "table1.md"
    csv_path.write_text(table1_csv(measured))
    md = table1_markdown(measured, kit_label=kit_label)
    md_path.write_text((note.strip() + "\n\n" if note.strip() else "") + md)
    return csv_path, md_path
