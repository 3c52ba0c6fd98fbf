"""The split Table 1's rows are scored on: a synthetic held-out set rendered once, or a given test folder.

Reference: Qian et al., CVPR 2018, Sec. 6 (Raindrop test_a, 58 pairs of 480x720; docs/paper.md#table-1).
The synthetic split is drawn with a seed of its own (``HELDOUT_SEED``) that no training or validation uses,
by the same renderer, synthesiser overrides and backgrounds as training. No torch at import (the CLI reads
``HELDOUT`` for its help text).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["HELDOUT", "HELDOUT_SEED", "find_test_split", "heldout_pairs", "make_heldout", "scoring_split"]

HELDOUT_SEED = 20_180_618  # synthetic held-out split: a seed of its own (CVPR 2018 opened June 18)
# held-out split per preset: (number of pairs, HxW); the paper preset mirrors test_a (58 pairs, 480x720); the
# cpu preset's models see only 64-px crops and lose their gain on larger images, so its rows are scored at
# 64x64 (the figures' size), on enough pairs to keep the noise of the mean gain small (per-image spread /
# sqrt(pairs): docs/design.md#size-of-the-held-out-split)
HELDOUT = {"cpu": (64, (64, 64)), "paper": (58, (480, 720))}


def make_heldout(folder: str | Path, count: int, size: tuple[int, int], seed: int = HELDOUT_SEED,
                 synth: dict[str, Any] | None = None, backgrounds: str | None = None,
                 progress: bool = True) -> Path:
    """Render ``count`` synthetic pairs of ``size`` (H, W) into ``folder/{data,gt}`` with
    ``agan.data.datasets.write_synthetic`` (same renderer, synthesiser overrides and backgrounds as training),
    once: a folder whose heldout.json holds the same spec is reused; another spec is an error."""
    from agan.data.datasets import write_synthetic
    from agan.synth import SynthParams

    folder = Path(folder)
    spec = {"seed": seed, "count": count, "size": list(size), "kind": "synthetic", "synth": synth or {},
            "backgrounds": backgrounds}
    meta = folder / "heldout.json"
    if meta.is_file():
        old = json.loads(meta.read_text())
        if old != spec:
            raise FileExistsError(f"{folder} holds another held-out split ({old}); wanted {spec}: "
                                  "use --overwrite or another --out")
        return folder
    if folder.exists() and any(folder.iterdir()):
        raise FileExistsError(f"{folder} is not empty and has no heldout.json; remove it or choose "
                              "another --out")
    params = SynthParams.from_dict(synth) if synth else None
    write_synthetic(folder, count, tuple(size), seed, params=params, backgrounds=backgrounds,
                    progress=progress)
    meta.write_text(json.dumps(spec) + "\n")
    return folder


def find_test_split(test: str | Path) -> tuple[Path, list[str] | None]:
    """A given test folder -> (root, splits): a ``{data,gt}`` folder as is; a dataset root holding test_a
    uses test_a only."""
    root = Path(test)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: test folder not found (expected data/ and gt/, or a root with "
                                "test_a/)")
    if (root / "data").is_dir() and (root / "gt").is_dir():
        return root, None
    if (root / "test_a" / "data").is_dir():
        return root, ["test_a"]
    raise FileNotFoundError(f"{root}: expected data/ and gt/ folders, or a Raindrop root holding test_a/")


def scoring_split(out: Path, preset: str, test: str | None, synth: dict[str, Any] | None,
                  backgrounds: str | None, count: int | None = None, size: tuple[int, int] | None = None,
                  overwrite: bool = False, progress: bool = True) -> tuple[Path, list[str] | None, str]:
    """The split every row is scored on -> (root, splits, a description): ``test`` when given, else the
    synthetic held-out split ``out/heldout`` (``count`` pairs of ``size``, defaults in ``HELDOUT``; with
    ``overwrite``, one of another spec is rendered afresh)."""
    if test is not None:
        root, splits = find_test_split(test)
        return root, splits, "folder"
    n, hw = HELDOUT.get(preset, HELDOUT["cpu"])
    n, hw = count or n, tuple(size or hw)
    heldout = out / "heldout"
    if overwrite and (heldout / "heldout.json").is_file():
        spec = json.loads((heldout / "heldout.json").read_text())
        if (spec.get("count"), spec.get("size"), spec.get("synth") or None) != (n, list(hw), synth):
            import shutil

            shutil.rmtree(heldout)  # another spec: re-rendered below
    root = make_heldout(heldout, n, hw, synth=synth, backgrounds=backgrounds, progress=progress)
    return root, None, f"synthetic, {n} pairs of {hw[0]}x{hw[1]}, seed {HELDOUT_SEED}"


def heldout_pairs(cfg, count: int, size: tuple[int, int], seed: int = HELDOUT_SEED) -> dict[str, Any]:
    """The synthetic held-out split in memory, with the drop mask M of training:
    ``{"rain", "clean": (count, 3, H, W) float in [0, 1], "mask": (count, 1, H, W) 0/1}``.

    Pair i is ``make_pair(seed, i, size, ...)`` with ``cfg``'s synthesiser overrides and backgrounds: the
    pair :func:`make_heldout` writes as file i. M follows ``cfg.mask_source`` as ``agan.data.datasets`` builds
    it for training ("drops": the drawn drop layer, alpha >= ``DROP_MASK_ALPHA``; "difference": the paper's
    |rain - clean| >= ``cfg.mask_threshold``). Every pair has drops (no ``clean_fraction``)."""
    import torch

    from agan.data.datasets import SyntheticRaindrops

    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    ds = SyntheticRaindrops(count, tuple(size), seed, cfg.synth or None, cfg.backgrounds or None,
                            mask_threshold=cfg.mask_threshold, mask_dilate=cfg.mask_dilate,
                            mask_source=cfg.mask_source)
    items = [ds[i] for i in range(count)]
    return {k: torch.stack([it[k] for it in items]) for k in ("rain", "clean", "mask")}
