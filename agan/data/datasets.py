"""Datasets: the Raindrop dataset folders (and ``agan synth`` output) and on-the-fly synthetic drops.

Reference: Qian et al., CVPR 2018, Sec. 5 (the Raindrop dataset: 861 train pairs, test_a, test_b;
docs/paper.md#dataset), the raindrop mask M (docs/paper.md#raindrop-mask) and the crop to a multiple
of 4 (docs/paper.md#evaluation-protocol).

Every item is a dict
    rain   (3, H, W) float32 in [0, 1]   the image I with raindrops
    clean  (3, H, W) float32 in [0, 1]   the background B (the target T)
    mask   (1, H, W) float32 0/1         M: |rain - clean| >= mask_threshold/255 in any channel
                                         (optionally 3x3-dilated), computed after cropping
    id     str
synthetic items add ``alpha`` (1, H, W): the renderer's soft drop coverage.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from agan.atomic import atomic_path
from agan.data.layout import EXPECTED_LAYOUT, find_split, first_split, pair_by_id, pair_dirs
from agan.images import crop_to_multiple, difference_mask, read_image, to_tensor, write_image
from agan.synth import SynthParams, make_pair
from agan.synth.backgrounds import BackgroundSource

__all__ = [
    "DROP_MASK_ALPHA",
    "RaindropPairs",
    "SyntheticRaindrops",
    "build_dataset",
    "write_synthetic",
]

# mask_source="drops": M = blur(alpha) >= this (the drop layer's weight in the rainy image)
DROP_MASK_ALPHA = 0.3


def _size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as im:
            return im.size  # (W, H), header only
    except Exception as e:  # noqa: BLE001  (any decoder failure is 'unreadable')
        raise ValueError(f"{path}: unreadable image ({type(e).__name__})") from None


class RaindropPairs(Dataset):
    """Pairs ``data/N_rain.*`` with ``gt/N_clean.*`` by the numeric id N (not by sorted position);
    ``rain/`` + ``clean/``, ``input/`` + ``target/`` and ``input/`` + ``gt/`` are read the same way
    (``agan.data.layout``: the layouts and the id rule that ``agan eval`` uses too).

    ``crop_size=None``: the full image, top-left cropped to a multiple of 4 (the authors' protocol).
    ``crop_size=S``: a random S x S crop (a function of seed, epoch and index; see ``set_epoch``),
    flipped horizontally with probability 1/2 when ``flip``.  ``limit`` keeps the first ids.
    Everything is checked here, before training starts (file names, partners, readable headers,
    equal sizes, large enough for the crop)."""

    def __init__(self, root: str | os.PathLike, split: str | None = None, crop_size: int | None = None,
                 flip: bool = False, mask_threshold: int = 30, mask_dilate: bool = False, seed: int = 0,
                 limit: int | None = None):
        self.base = find_split(root, split)
        self.rain_dir, self.clean_dir = pair_dirs(self.base)
        pairs = pair_by_id(self.rain_dir, self.clean_dir, "rainy image", "clean image",
                           hint=f" ({EXPECTED_LAYOUT})")
        self.pairs = pairs[:limit] if limit else pairs  # [(id, rain file, clean file)] in id order
        for i, rp, cp in self.pairs:
            sr, sc = _size(rp), _size(cp)
            if sr != sc:
                raise ValueError(f"{rp} ({sr[0]}x{sr[1]}) and {cp} ({sc[0]}x{sc[1]}): sizes differ")
            if crop_size and (sr[0] < crop_size or sr[1] < crop_size):
                raise ValueError(f"{rp}: {sr[0]}x{sr[1]} is smaller than crop_size {crop_size}")
        if crop_size is not None and (crop_size < 4 or crop_size % 4):
            raise ValueError(f"crop_size must be a positive multiple of 4, got {crop_size}")
        self.crop_size, self.flip, self.seed, self.epoch = crop_size, flip, seed, 0
        self.mask_threshold, self.mask_dilate = mask_threshold, mask_dilate

    def __len__(self) -> int:
        return len(self.pairs)

    def set_epoch(self, epoch: int) -> None:
        """New random crops/flips per epoch (still a function of seed, epoch and index)."""
        self.epoch = int(epoch)

    @property
    def ids(self) -> list[str]:
        return [str(i) for i, _, _ in self.pairs]

    def __getitem__(self, index: int) -> dict[str, Any]:
        i, rp, cp = self.pairs[index]
        rain, clean = read_image(rp), read_image(cp)
        if rain.shape != clean.shape:  # the files changed since the constructor looked
            raise ValueError(f"{rp} {rain.shape[1]}x{rain.shape[0]} and {cp} "
                             f"{clean.shape[1]}x{clean.shape[0]}: sizes differ")
        if self.crop_size is None:
            rain, clean = crop_to_multiple(rain, 4), crop_to_multiple(clean, 4)
        else:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            s = self.crop_size
            y = int(rng.integers(0, rain.shape[0] - s + 1))
            x = int(rng.integers(0, rain.shape[1] - s + 1))
            rain, clean = rain[y:y + s, x:x + s], clean[y:y + s, x:x + s]
            if self.flip and rng.random() < 0.5:
                rain, clean = rain[:, ::-1], clean[:, ::-1]
        return _item(rain, clean, str(i), self.mask_threshold, self.mask_dilate)


def _item(rain: np.ndarray, clean: np.ndarray, id_: str, threshold: int, dilate: bool) -> dict[str, Any]:
    rain, clean = np.ascontiguousarray(rain), np.ascontiguousarray(clean)
    return {"rain": to_tensor(rain), "clean": to_tensor(clean),
            "mask": difference_mask(rain, clean, threshold, dilate),  # (1, H, W)
            "id": id_}


class SyntheticRaindrops(Dataset):
    """On-the-fly rendered pairs (``agan.synth.renderer``): item i is a deterministic function of (seed, i),
    the same pair that ``agan synth --seed seed`` writes as file i, so training needs no files and
    resuming is exact.  ``size``: int or (H, W).  ``backgrounds``: None (scikit-image photos +
    procedural scenes), a folder of clean photos, or a ``BackgroundSource``.  ``clean_fraction``: the share
    of items without any drop (rain = clean, mask and alpha 0), picked per item from (seed, i)."""

    def __init__(self, length: int, size: int | tuple[int, int] = 224, seed: int = 0,
                 params: SynthParams | dict | None = None, backgrounds: Any = None,
                 mask_threshold: int = 30, mask_dilate: bool = False, mask_source: str = "difference",
                 clean_fraction: float = 0.0):
        if length < 1:
            raise ValueError(f"length must be >= 1, got {length}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.length, self.size, self.seed = int(length), size, int(seed)
        self.params = (SynthParams.from_dict(params) if isinstance(params, dict)
                       else (params or SynthParams()))
        self.params.validate()
        if backgrounds is None or isinstance(backgrounds, BackgroundSource):
            self.source = backgrounds
        else:
            self.source = BackgroundSource(backgrounds)
        if mask_source not in ("difference", "drops"):
            raise ValueError(f"mask_source must be 'difference' or 'drops', got {mask_source!r}")
        self.mask_threshold, self.mask_dilate, self.mask_source = mask_threshold, mask_dilate, mask_source
        if not 0.0 <= clean_fraction < 1.0:
            raise ValueError(f"clean_fraction must be in [0, 1), got {clean_fraction!r}")
        self.clean_fraction = float(clean_fraction)

    def drop_free(self, index: int) -> bool:
        """Item ``index`` has no drop: a uniform draw of its own stream (seed, index) below clean_fraction."""
        return bool(self.clean_fraction) and np.random.default_rng([self.seed, index, 1]).random() < \
            self.clean_fraction

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} synthetic pairs")
        res = make_pair(self.seed, index, self.size, self.params, self.source)
        free = self.drop_free(index)  # the same background, no drop: the target is the input itself
        rain = res.clean if free else res.rain
        item = _item(rain, res.clean, f"syn{self.seed}_{index}", self.mask_threshold, self.mask_dilate)
        alpha = torch.from_numpy(res.alpha)[None]  # (1, H, W)
        item["alpha"] = torch.zeros_like(alpha) if free else alpha
        if self.mask_source == "drops":  # M = where the drop layer is drawn, not where haze shifts colours
            item["mask"] = (item["alpha"] >= DROP_MASK_ALPHA).float()  # (1, H, W)
        return item


def build_dataset(cfg, split: str) -> Dataset:
    """The dataset a training run uses, from an ``agan.config.Config``.

    train  cfg.data == "synthetic": SyntheticRaindrops(max(iterations * batch_size, 1000), crop_size,
           seed); else RaindropPairs(cfg.data, split "train" when that sub-folder exists) with random
           crop_size crops and flips.
    val    cfg.val_data == "": SyntheticRaindrops(val_size, crop_size, seed + 1_000_003) (disjoint
           from training); else RaindropPairs(cfg.val_data, split "test_a" (then "test_b") when present)
           with full images top-left cropped to a multiple of 4 (the authors' protocol), first
           val_size ids.
    Synthesiser overrides may be given as ``cfg.synth`` (a dict of SynthParams fields)."""
    params = SynthParams.from_dict(cfg.synth) if cfg.synth else None
    common = {"mask_threshold": cfg.mask_threshold, "mask_dilate": cfg.mask_dilate}
    if split == "train":
        if cfg.data == "synthetic":
            return SyntheticRaindrops(max(cfg.iterations * cfg.batch_size, 1000), cfg.crop_size, cfg.seed,
                                      params, (cfg.backgrounds or None), mask_source=cfg.mask_source,
                                      clean_fraction=cfg.clean_fraction, **common)
        return RaindropPairs(cfg.data, first_split(cfg.data, ("train",)), crop_size=cfg.crop_size,
                             flip=cfg.flip, seed=cfg.seed, **common)
    if split == "val":
        if not cfg.val_data:
            return SyntheticRaindrops(cfg.val_size, cfg.crop_size, cfg.seed + 1_000_003, params,
                                      (cfg.backgrounds or None), mask_source=cfg.mask_source, **common)
        return RaindropPairs(cfg.val_data, first_split(cfg.val_data, ("test_a", "test_b")), crop_size=None,
                             limit=cfg.val_size or None, **common)
    raise ValueError(f"split must be 'train' or 'val', got {split!r}")


_OUR_FILES = re.compile(r"^\d+_(rain|clean|mask)\.(png|jpe?g)$", re.IGNORECASE)


def write_synthetic(out: str | os.PathLike, n: int, size: int | tuple[int, int] = 224, seed: int = 0,
                    params: SynthParams | None = None, backgrounds: str | os.PathLike | None = None,
                    overwrite: bool = False, progress: bool = True) -> dict[str, Any]:
    """Write pairs 0..n-1 of the synthetic set ``seed`` as ``out/data/i_rain.png``, ``out/gt/i_clean.png``,
    ``out/mask/i_mask.png`` (drop footprint, 0/255) and ``out/params.json``.  Refuses a non-empty
    ``out`` unless ``overwrite`` (which first removes old ``N_rain/N_clean/N_mask`` files there)."""
    from tqdm import tqdm

    out = Path(out)
    if n < 1:
        raise ValueError(f"--n must be >= 1, got {n}")
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out}: folder is not empty (use --overwrite to write into it)")
        for sub in ("data", "gt", "mask"):
            if (out / sub).is_dir():
                for f in (out / sub).iterdir():
                    if f.is_file() and _OUR_FILES.match(f.name):
                        f.unlink()
    params = (params or SynthParams()).validate()
    source = BackgroundSource(backgrounds) if backgrounds else None
    hw = (size, size) if isinstance(size, int) else tuple(size)
    for sub in ("data", "gt", "mask"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    per_image, cov, dcov = {}, [], []
    for i in tqdm(range(n), desc="agan synth", unit="pair", disable=not progress):
        res = make_pair(seed, i, hw, params, source)
        write_image(out / "data" / f"{i}_rain.png", res.rain)
        write_image(out / "gt" / f"{i}_clean.png", res.clean)
        write_image(out / "mask" / f"{i}_mask.png", (res.mask * np.uint8(255)).astype(np.uint8))
        cov.append(float(res.mask.mean()))
        dcov.append(float(res.diff_mask.mean()))
        per_image[str(i)] = {**res.params, "mask_coverage": round(cov[-1], 6),
                             "diff_coverage": round(dcov[-1], 6)}
    summary = {"out": str(out), "n": n, "size": list(hw), "seed": seed,
               "backgrounds": str(backgrounds) if backgrounds else "builtin",
               "mean_coverage": float(np.mean(cov)), "mean_diff_coverage": float(np.mean(dcov))}
    doc = {**summary, "params": params.to_dict(), "images": per_image}
    with atomic_path(out / "params.json") as tmp:
        tmp.write_text(json.dumps(doc, indent=1) + "\n")
    return summary
