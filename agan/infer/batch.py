"""Derain many files into a folder, as ``agan derain`` does: nothing lost, nothing overwritten unasked.

    files, failed = collect_inputs(["photos/", "one.jpg"], recursive=False)
    report = derain_files(files, Path("derained"), model, overwrite=False, save_attention=True)
    report.done, report.skipped, report.failed        # counts / (name, reason) lists

Rules, per input file (in order):
    1. an output that would replace one of the inputs, or the output of an earlier input of the same name,
       fails that file;
    2. an existing output (or attention map) is skipped unless ``overwrite``;
    3. the image is read (its alpha channel kept for formats that store one), derained, written atomically
       (``agan.images.write_image``; JPEG / WebP at quality 95) with A_1..A_N as
       ``attention/<stem>_A<t>.png``;
    4. a file that cannot be read or derained (including out of memory) fails alone; the others go on.
"""

from __future__ import annotations

import glob
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from agan.images import IMAGE_EXTENSIONS, ImageReadError, list_images, read_image_alpha, write_image
from agan.infer.pipeline import derain

__all__ = ["ALPHA_SUFFIXES", "BatchReport", "collect_inputs", "derain_files"]

ALPHA_SUFFIXES = (".png", ".webp", ".tif", ".tiff")  # output formats that keep an alpha channel
LOSSY_SUFFIXES = (".jpg", ".jpeg", ".webp")


@dataclass
class BatchReport:
    total: int = 0
    done: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (input, reason)
    failed: list[tuple[str, str]] = field(default_factory=list)


def collect_inputs(inputs: list[str], recursive: bool) -> tuple[list[Path], list[tuple[str, str]]]:
    """Image files named or inside the folders named (recursively when asked), and what could not be used."""
    files, failed = [], []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = (sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
                     if recursive else list_images(p))
            if not found:
                failed.append((item, "folder holds no images"))
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            failed.append((item, "no such file or folder"))
    return files, failed


def _conflict(f: Path, target: Path, out_dir: Path, inputs: set[Path], claimed: dict[Path, Path],
              overwrite: bool, save_attention: bool) -> tuple[str, str] | None:
    """Rules 1-2: ("failed" | "skipped", reason) when ``f`` must not be written to ``target``, else None."""
    rt = target.resolve()
    if rt in inputs:
        return "failed", f"output {target} would write over an input"
    if rt in claimed:
        return "failed", f"output {target} is already the output of {claimed[rt]} (same file name)"
    if target.exists() and not overwrite:
        return "skipped", f"{target} exists (use --overwrite to replace it)"
    att = sorted((out_dir / "attention").glob(f"{glob.escape(f.stem)}_A*.png")) if save_attention else []
    if att and not overwrite:
        return "skipped", f"{att[0]} exists (use --overwrite to replace it)"
    return None


def _derain_one(f: Path, target: Path, out_dir: Path, model, save_attention: bool, derain_kw: dict) -> None:
    """Rule 3: read, derain, write the output (and the attention maps)."""
    image, alpha = read_image_alpha(f)  # (H, W, 3) uint8, alpha (H, W) or None
    out, maps = derain(image, model=model, **derain_kw)
    if alpha is not None and target.suffix.lower() in ALPHA_SUFFIXES:
        out = np.dstack([out, alpha])  # (H, W, 4): the input's alpha restored
    lossy = target.suffix.lower() in LOSSY_SUFFIXES
    write_image(target, out, overwrite=True, **({"quality": 95} if lossy else {}))
    if save_attention:
        for t, a in enumerate(maps, 1):
            grey = np.rint(np.clip(a, 0, 1) * 255).astype(np.uint8)  # (H, W)
            write_image(out_dir / "attention" / f"{f.stem}_A{t}.png", grey, overwrite=True)


def derain_files(files: list[Path], out_dir: Path, model, *, overwrite: bool = False,
                 save_attention: bool = False, progress: bool = True, **derain_kw) -> BatchReport:
    """Derain ``files`` into ``out_dir`` with ``model`` (``derain_kw``: tile, overlap, precision, settings,
    forward of ``agan.infer.derain``) by the rules above; a progress bar unless ``progress=False``."""
    from tqdm.auto import tqdm

    if derain_kw.get("forward") is None and derain_kw.get("precision") == "int8":  # once, not once per file
        raise ValueError("precision int8 is an accelerated forward: pass forward=agan.accel.pick_forward(G, "
                         "'int8', 'cpu')")
    report = BatchReport(total=len(files))
    inputs = {f.resolve() for f in files}
    claimed: dict[Path, Path] = {}
    bar = tqdm(files, desc="derain", unit="img", disable=not files or not progress)
    for f in bar:
        target = out_dir / f.name
        conflict = _conflict(f, target, out_dir, inputs, claimed, overwrite, save_attention)
        if conflict is not None:
            (report.failed if conflict[0] == "failed" else report.skipped).append((str(f), conflict[1]))
            continue
        claimed[target.resolve()] = f
        try:
            _derain_one(f, target, out_dir, model, save_attention, derain_kw)
            report.done += 1
        except (ImageReadError, OSError, ValueError, RuntimeError, MemoryError) as e:  # rule 4
            msg = str(e).strip() or type(e).__name__
            report.failed.append((str(f), msg[len(str(f)) + 2:] if msg.startswith(f"{f}: ") else msg))
            bar.write(f"agan derain: failed: {e}", file=sys.stderr)
    bar.close()
    return report
