"""Evaluating ready outputs (a folder against its ground truth) and models (a generator run on folders of
pairs), with the authors' protocol (``agan.evaluation.protocol``; Qian et al., CVPR 2018, Sec. 6;
docs/paper.md#evaluation-protocol).

Folders and ids are the Raindrop layout's (``agan.data.layout``). ``evaluate_model`` knows images and a
callable, not training: it takes a Generator, a weights file (loaded by ``agan.infer.pipeline``) or any
``f(uint8 HxWx3) -> image`` callable.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from agan.data.layout import PAIR_LAYOUTS, find_splits, pair_by_id
from agan.evaluation.protocol import CASTS, COLORS, score_pair, to_uint8_output
from agan.evaluation.results import EvalResult
from agan.images import crop_to_multiple, read_image, write_image

__all__ = ["evaluate_folders", "evaluate_model"]


def _progress(items, progress: bool, desc: str):
    if not progress:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit="img", leave=False)


def evaluate_folders(pred_dir, gt_dir, input_dir="auto", color: str = "y", split: str | None = None,
                     progress: bool = True) -> EvalResult:
    """Score ready outputs (images in ``pred_dir``) against ``gt_dir``, pairing files by id.

    ``input_dir``: the rainy inputs for the identity baseline; ``"auto"`` uses the inputs folder beside
    ``gt_dir`` in an ``agan.data.layout.PAIR_LAYOUTS`` layout (``gt/`` -> ``../data/``,
    ``clean/`` -> ``../rain/``, ``target/`` -> ``../input/``) when it exists, None skips the baseline.
    """
    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    pairs = pair_by_id(pred_dir, gt_dir, "output", "ground truth")
    if input_dir == "auto":
        cands = [gt_dir.parent / a for a, b in PAIR_LAYOUTS if b == gt_dir.name]
        input_dir = next((c for c in cands if c.is_dir() and c.resolve() != pred_dir.resolve()), None)
    inputs = {k: f for k, f, _ in pair_by_id(input_dir, gt_dir, "input", "ground truth")} if input_dir else {}
    split = split or gt_dir.resolve().parent.name or "data"
    result = EvalResult(protocol={"cast": "n/a (uint8 files)", "color": color, "crop": 4,
                                  "pred": str(pred_dir), "gt": str(gt_dir),
                                  "input": str(input_dir) if input_dir else None})
    for k, pf, gf in _progress(pairs, progress, f"eval {split}"):
        gt = read_image(gf)
        try:
            p, s = score_pair(read_image(pf), gt, "clip", color)
        except ValueError as e:
            raise ValueError(f"{pf.name} vs {gf.name}: {e}") from None
        row = {"split": split, "id": k, "output": pf.name, "gt": gf.name, "input": None, "psnr": p, "ssim": s,
               "input_psnr": None, "input_ssim": None}
        if k in inputs:
            try:
                row["input_psnr"], row["input_ssim"] = score_pair(read_image(inputs[k]), gt, "clip", color)
            except ValueError as e:
                raise ValueError(f"{inputs[k].name} vs {gf.name}: {e}") from None
            row["input"] = inputs[k].name
        result.rows.append(row)
    return result


def _as_callable(model, device="auto", tile=None, precision="fp32", settings=None) -> tuple[Callable, str]:
    """A weights path (run with ``settings``, else the derain settings saved in it), an nn.Module generator
    (``settings``, else the paper's raw O) or a callable -> f(uint8 HxWx3) -> float/uint8 HxWx3."""
    if isinstance(model, (str, os.PathLike)):
        from agan.infer.load import load_generator

        name = str(model)
        model, saved = load_generator(model, device=device)
        settings = settings if settings is not None else saved
    else:
        name = type(model).__name__
    try:
        import torch
        is_module = isinstance(model, torch.nn.Module)
    except ImportError:  # pragma: no cover
        is_module = False
    if is_module:
        from agan.infer.pipeline import derain

        gen = model

        def run(img: np.ndarray) -> np.ndarray:
            # float input -> raw (unclipped) float output, so that cast="wrap" sees what G produced
            out, _ = derain(img.astype(np.float32) / np.float32(255), model=gen, device=device, tile=tile,
                            precision=precision, clip=False, settings=settings)
            return out

        return run, name
    if not callable(model):
        raise TypeError(f"model must be a weights file, a generator (nn.Module) or a callable, "
                        f"got {type(model)}")
    return model, getattr(model, "__name__", type(model).__name__)


def evaluate_model(model, data_root, splits: list[str] | None = None, cast: str = "clip", color: str = "y",
                   device: str = "auto", tile: int | None = None, precision: str = "fp32",
                   out_dir=None, progress: bool = True, settings=None) -> EvalResult:
    """Run a generator on ``data_root/{data,gt}`` (or ``data_root/<split>/{data,gt}``; any
    ``agan.data.layout.PAIR_LAYOUTS`` pair, see ``agan.data.layout.find_splits``) and score it.

    ``model``: a weights file (kit checkpoint or the authors' gen.pkl, via
    ``agan.infer.load.load_generator``), a Generator, or any callable
    ``f(uint8 HxWx3) -> float HxWx3 in [0, 1] (raw) | uint8 HxWx3``.
    Each input is cropped top-left to a multiple of 4 before the model sees it (the authors' protocol).
    ``out_dir``: also write the uint8 outputs (after ``cast``) as PNG under ``out_dir/<split>/``.
    ``settings`` (``agan.infer.settings.DerainSettings``): how G's change is applied; None = the settings
    saved with a weights file (the kit's inference: ``derain_size`` / ``_smooth`` / ``_blend``), and for a
    Generator the paper's O = G(I); ``agan.infer.settings.PAPER`` scores G's raw O for any model.
    """
    if cast not in CASTS:
        raise ValueError(f"cast must be one of {CASTS}, got {cast!r}")
    if color not in COLORS:
        raise ValueError(f"color must be one of {COLORS}, got {color!r}")
    found = find_splits(data_root, splits)
    fn, name = _as_callable(model, device, tile, precision, settings)
    result = EvalResult(protocol={"cast": cast, "color": color, "crop": 4, "model": name,
                                  "data": str(data_root)})
    if settings is not None:  # {size, smooth, blend}; absent: the weights' own
        result.protocol["settings"] = dict(size=settings.size, smooth=settings.smooth, blend=settings.blend)
    for split, data_dir, gt_dir in found:
        pairs = pair_by_id(data_dir, gt_dir, "input", "ground truth")
        for k, rf, gf in _progress(pairs, progress, f"eval {split}"):
            rain = crop_to_multiple(read_image(rf))
            gt = crop_to_multiple(read_image(gf))
            if rain.shape != gt.shape:
                raise ValueError(f"{rf.name} and {gf.name} differ in size after cropping to a multiple of 4: "
                                 f"{rain.shape[1]}x{rain.shape[0]} vs {gt.shape[1]}x{gt.shape[0]}")
            out = to_uint8_output(fn(rain), cast)
            if out.shape != rain.shape:
                raise ValueError(f"{rf.name}: the model returned {out.shape}, expected {rain.shape}")
            p, s = score_pair(out, gt, cast, color)
            ip, iss = score_pair(rain, gt, cast, color)
            out_name = None
            if out_dir is not None:
                out_name = f"{rf.stem}.png"
                write_image(Path(out_dir) / split / out_name, out)
            result.rows.append({"split": split, "id": k, "output": out_name, "gt": gf.name, "input": rf.name,
                                "psnr": p, "ssim": s, "input_psnr": ip, "input_ssim": iss})
    return result
