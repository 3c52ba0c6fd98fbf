"""The Raindrop folder layout: which sub-folders hold inputs and targets, and which files pair up.

The one reader of paired folders, for training (``agan.data.datasets.RaindropPairs``), ``agan eval``
(``agan.evaluation``), ``--real-val`` and the model card (:func:`read_pairs`).

Layout (Qian et al., CVPR 2018, Sec. 5; docs/paper.md#dataset)
    <root>/data/N_rain.png + <root>/gt/N_clean.png       the authors' release (861 train pairs, test_a,
                                                         test_b), or ``agan synth`` output
    rain/+clean/, input/+target/, input/+gt/              the same pairs under other common names
    <root>/<split>/...                                    split folders (train, test_a, test_b, ...)

One rule for ids (:func:`image_id`): a file's id is the leading number N of ``N_rain.png``,
``N_clean.jpg``, ``N.png`` or ``N-x.png``, else its whole stem (``foo.png`` pairs with ``foo.jpg``).
Image files only (``agan.images.IMAGE_EXTENSIONS``), hidden files (``.DS_Store``, macOS ``._N_rain.png``)
skipped. Ids are sorted numbers first (numerically: 1, 2, 10), then stems.

Why the stem as well as the number: a numbered folder pairs the same as with numbers alone (same ids,
same order), ready outputs named after their inputs (``foo.png``) can still be scored, and a file with
neither a number nor a partner among numbered files is reported as an unexpected file name. Hidden
files are never images (macOS writes ``._N_rain.png`` beside each file on some drives).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from agan.images import list_images, read_image

__all__ = [
    "EXPECTED_LAYOUT",
    "PAIR_LAYOUTS",
    "find_split",
    "find_splits",
    "first_split",
    "image_id",
    "index_images",
    "layouts_text",
    "pair_by_id",
    "pair_dirs",
    "read_pairs",
]

# (inputs, targets) sub-folders of a paired folder, in the order they are looked for: the Raindrop
# dataset's data/ + gt/ (the authors' release), then layouts common in other paired sets
PAIR_LAYOUTS = (("data", "gt"), ("rain", "clean"), ("input", "target"), ("input", "gt"))

EXPECTED_LAYOUT = ("expected <root>/data/N_rain.png + <root>/gt/N_clean.png (or the same numbered pairs in "
                   + ", ".join(f"{a}/+{b}/" for a, b in PAIR_LAYOUTS[1:])
                   + "), or <root>/<split>/... with split train|test_a|test_b (.png or .jpg)")


def layouts_text() -> str:
    """``data/+gt/, rain/+clean/, input/+target/ or input/+gt/`` (for messages)."""
    names = [f"{a}/+{b}/" for a, b in PAIR_LAYOUTS]
    return ", ".join(names[:-1]) + " or " + names[-1]


# ----------------------------------------------------------------------------------------------
# Folders: the pair of sub-folders, the splits
# ----------------------------------------------------------------------------------------------


def pair_dirs(folder) -> tuple[Path, Path] | None:
    """(inputs, targets) of the first :data:`PAIR_LAYOUTS` entry whose two sub-folders exist, else None."""
    folder = Path(folder)
    for a, b in PAIR_LAYOUTS:
        if (folder / a).is_dir() and (folder / b).is_dir():
            return folder / a, folder / b
    return None


def find_split(root: str | os.PathLike, split: str | None) -> Path:
    """The one folder holding a :data:`PAIR_LAYOUTS` pair of sub-folders: ``root/split`` when given,
    else ``root`` (training and validation data)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset folder does not exist ({EXPECTED_LAYOUT})")
    base = root / split if split else root
    if not base.is_dir():
        present = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise FileNotFoundError(f"{base}: split folder {split!r} not found in {root} "
                                f"(sub-folders: {present or 'none'}; {EXPECTED_LAYOUT})")
    if pair_dirs(base) is None:
        splits = sorted(p.name for p in base.iterdir() if p.is_dir() and pair_dirs(p))
        hint = f"; it has splits {splits}: pass split=..." if splits else ""
        raise FileNotFoundError(f"{base}: no paired folders ({EXPECTED_LAYOUT}){hint}")
    return base


def first_split(root: str | os.PathLike, preferred: tuple[str, ...]) -> str | None:
    """The first of ``preferred`` that is a paired split folder of ``root``, else None (``root`` itself)."""
    for s in preferred:
        if pair_dirs(Path(root) / s):
            return s
    return None


def find_splits(data_root, splits: list[str] | None = None) -> list[tuple[str, Path, Path]]:
    """``root/{data,gt}`` (or another :data:`PAIR_LAYOUTS` pair) -> one split named after root; else every
    ``root/<split>/{data,gt}`` (``train`` left out unless asked for by name, or when it is the only split).
    Returns [(split, inputs folder, targets folder)] (evaluation: every test split)."""
    root = Path(data_root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    if here := pair_dirs(root):
        found = [(root.resolve().name, *here)]
    else:
        found = [(d.name, *p) for d in sorted(root.iterdir()) if d.is_dir() and (p := pair_dirs(d))]
    if not found:
        raise FileNotFoundError(f"{root}: no paired folders: looked for {layouts_text()} in it and in its "
                                f"split folders (test_a/, test_b/, ...)")
    if splits:
        names = [s for s, _, _ in found]
        unknown = [s for s in splits if s not in names]
        if unknown:
            raise ValueError(f"{root}: no split {', '.join(unknown)}; available: {', '.join(names)}")
        return [f for f in found if f[0] in splits]
    if len(found) > 1:
        found = [f for f in found if f[0] != "train"] or found
    return found


# ----------------------------------------------------------------------------------------------
# Files: ids and pairs
# ----------------------------------------------------------------------------------------------

_ID = re.compile(r"^(\d+)(?=$|[_\-. ])")


def image_id(path: str | os.PathLike) -> int | str:
    """The pairing key of a file: the leading number of ``N_rain.png`` / ``N_clean.jpg`` / ``N.png``,
    else the whole stem (so ``foo.png`` pairs with ``foo.jpg``)."""
    stem = Path(path).stem
    m = _ID.match(stem)
    return int(m.group(1)) if m else stem


def _sort_key(k: int | str):
    return (0, k, "") if isinstance(k, int) else (1, 0, k)


def index_images(folder: str | os.PathLike) -> dict[int | str, Path]:
    """id -> image file of ``folder`` (hidden files skipped), in id order; two files with one id are an
    error."""
    folder = Path(folder)
    out: dict[int | str, Path] = {}
    for f in list_images(folder):
        if f.name.startswith("."):
            continue
        k = image_id(f)
        if k in out:
            raise ValueError(f"{folder}: duplicated id {k!r} ({out[k].name} and {f.name} share the id {k!r})")
        out[k] = f
    return {k: out[k] for k in sorted(out, key=_sort_key)}


def _partner(k: int | str, like: dict, folder: Path) -> Path:
    """The file id ``k`` would have in ``folder``, named like the files there (``7_clean.png``)."""
    example = next(iter(like.values()), None)
    if example is None:
        return folder / f"{k}.png"
    if isinstance(k, int) and isinstance(image_id(example), int):
        return folder / re.sub(r"^\d+", str(k), example.name)
    return folder / f"{k}{example.suffix}"


def _lonely(keys: list, index: dict, other: dict, other_dir: Path, label: str, limit: int = 5) -> str:
    """One clause naming the first of ``index``'s files that have no partner in ``other_dir``."""
    k, f = keys[0], index[keys[0]]
    partner = _partner(k, other, other_dir)
    if isinstance(k, str) and all(isinstance(o, int) for o in other):  # a stray name among numbered pairs
        text = (f"{f}: unexpected file name (expected a leading number N, e.g. N_rain.png, N_clean.png or "
                f"N.png) and no partner {partner}")
    else:
        text = f"{f}: no partner {partner} (or other extension)"
    if len(keys) > 1:
        names = ", ".join(index[x].name for x in keys[:limit]) + (" ..." if len(keys) > limit else "")
        text += f" ({len(keys)} {label} files in {f.parent.name}/ lack a partner: {names})"
    return text


def pair_by_id(a_dir, b_dir, a_label: str = "output", b_label: str = "ground truth",
               hint: str = "") -> list[tuple[Any, Path, Path]]:
    """Match the images of two folders by :func:`image_id`; [(id, a_file, b_file)] sorted by id.

    One-line errors, the labels naming the two sides: FileNotFoundError for a missing folder or two empty
    ones (``hint`` appended, e.g. the expected layout), ValueError naming the first file of each side that
    has no partner."""
    a_dir, b_dir = Path(a_dir), Path(b_dir)
    for d in (a_dir, b_dir):
        if not d.is_dir():
            raise FileNotFoundError(f"{d}: no such folder")
    a, b = index_images(a_dir), index_images(b_dir)
    if not a and not b:
        where = (f"{a_dir.parent}: {a_dir.name}/ and {b_dir.name}/" if a_dir.parent == b_dir.parent
                 else f"{a_dir} and {b_dir}")
        raise FileNotFoundError(f"{where} hold no images{hint}")
    if not a:
        raise ValueError(f"{a_dir}: no images found (but {len(b)} {b_label} files in {b_dir})")
    only_a = [k for k in a if k not in b]
    only_b = [k for k in b if k not in a]
    problems = []
    if only_a:
        problems.append(_lonely(only_a, a, b, b_dir, a_label))
    if only_b:
        problems.append(_lonely(only_b, b, a, a_dir, b_label))
    if problems:
        raise ValueError("; ".join(problems))
    return [(k, a[k], b[k]) for k in a]


def read_pairs(folder) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (rain, clean) uint8 images of every split in ``folder`` (any layout :func:`find_splits` reads),
    paired by id; one clear error when there are none. Used by ``--real-val`` and the model card."""
    pairs = [(read_image(a), read_image(b)) for _, rain_dir, clean_dir in find_splits(folder)
             for _, a, b in pair_by_id(rain_dir, clean_dir, "rainy image", "clean image")]
    if not pairs:
        raise ValueError(f"{folder}: no rain/clean pairs found")
    return pairs
