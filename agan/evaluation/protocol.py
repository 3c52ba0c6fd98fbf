"""The authors' evaluation protocol and its switches: PSNR / SSIM on the Y channel.

References
    Qian et al., "Attentive Generative Adversarial Network for Raindrop Removal from A Single Image",
    CVPR 2018, Sec. 6 and Table 1 (PSNR / SSIM on Raindrop test_a); the released evaluation script
    (protocol only, summarised in docs/paper.md#evaluation-protocol; no code copied).
    Wang, Bovik, Sheikh, Simoncelli, "Image quality assessment: from error visibility to structural
    similarity", IEEE TIP 2004 (SSIM).

Protocol (defaults = the authors' protocol, with clip-and-round instead of their unclipped cast):
    1. top-left crop input and ground truth to a multiple of 4 (the generator needs it);
    2. run G on the cropped input; O (float, not squashed to [0, 1]) -> x255 -> uint8
       ``cast="clip"``  clip to [0, 1], x255, round half to even (the kit's default)
       ``cast="wrap"``  the released script: x255 and a C-style cast without clipping, so 1.01 -> 257 -> 1
    3. Y channel of both uint8 images, as the libraries return it on uint8 input (rounded to integers):
       ``color="y"``        full range Y = 0.299 R + 0.587 G + 0.114 B (OpenCV's YCrCb, 14-bit fixed point)
       ``color="y-matlab"`` MATLAB's rgb2ycbcr Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 (16..235)
       ``color="rgb"``      no conversion; PSNR over all channels, SSIM averaged over channels
    4. PSNR with data range 255; SSIM with scikit-image's defaults (7x7 uniform window, K1 0.01,
       K2 0.03, sample covariance) and data range 255; mean over images.

``evaluate`` knows images and a callable, not training: ``evaluate_model`` takes a Generator, a weights
file (loaded by ``agan.infer.pipeline``) or any ``f(uint8 HxWx3) -> image`` callable.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agan.images import crop_to_multiple, list_images, read_image

__all__ = [
    "CASTS",
    "COLORS",
    "PAIR_LAYOUTS",
    "read_pairs",
    "EvalResult",
    "evaluate_folders",
    "evaluate_model",
    "find_splits",
    "image_id",
    "layouts_text",
    "pair_by_id",
    "pair_dirs",
    "psnr",
    "rgb_to_y",
    "score_pair",
    "ssim",
    "to_uint8_output",
]

CASTS = ("clip", "wrap")
COLORS = ("y", "y-matlab", "rgb")


# ----------------------------------------------------------------------------------------------
# Pixels: output cast and Y channel
# ----------------------------------------------------------------------------------------------


def to_uint8_output(x, cast: str = "clip") -> np.ndarray:
    """Generator output O (float HxWx3, nominally [0, 1]) -> uint8 HxWx3.

    ``cast="clip"``: clip to [0, 1], x255, round (half to even, like ``np.rint``).
    ``cast="wrap"``: the authors' script, ``(x * 255).astype(np.uint8)`` without clipping. Converting an
    out-of-range float to uint8 is undefined behaviour in C (numpy's result depends on the platform), so
    the wrap-around that their x86 run produced is emulated explicitly and deterministically: truncate
    toward zero (a C cast), then modulo 256, e.g. 1.01 -> 257.55 -> 257 -> 1 and -0.01 -> -2.55 -> -2 -> 254.
    The product x * 255 is taken in the input's float precision (float32 for a network output), as theirs.
    NaN becomes 0 in both modes. A uint8 input is returned unchanged.
    """
    if cast not in CASTS:
        raise ValueError(f"cast must be one of {CASTS}, got {cast!r}")
    x = _as_hwc_numpy(x)
    if x.dtype == np.uint8:
        return x
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    x = np.nan_to_num(x, nan=0.0, posinf=np.finfo(x.dtype).max, neginf=-np.finfo(x.dtype).max)
    if cast == "clip":
        return np.rint(np.clip(x, 0.0, 1.0) * x.dtype.type(255)).astype(np.uint8)
    scaled = x * x.dtype.type(255)  # same precision as the network's output
    scaled = np.clip(scaled, -(2.0 ** 62), 2.0 ** 62)  # keep the int64 conversion defined
    return (np.trunc(scaled).astype(np.int64) % 256).astype(np.uint8)


def rgb_to_y(img: np.ndarray, mode: str = "full", quantize: bool = False) -> np.ndarray:
    """Luma of an RGB image HxWx3 with values on the 0..255 scale -> float64 HxW.

    ``mode="full"``:   Y = 0.299 R + 0.587 G + 0.114 B (OpenCV COLOR_RGB2YCrCb, range 0..255).
    ``mode="matlab"``: Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 (MATLAB rgb2ycbcr, range 16..235).
    ``quantize=True`` rounds as those libraries do on uint8 images (the authors' protocol): OpenCV's
    14-bit fixed point ``(4899 R + 9617 G + 1868 B + 8192) >> 14``; MATLAB's round-half-away.
    """
    a = np.asarray(img)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"expected an RGB image of shape HxWx3, got {a.shape}")
    if mode == "full":
        if quantize:
            q = np.rint(a).astype(np.int64) if not np.issubdtype(a.dtype, np.integer) else a.astype(np.int64)
            y = (4899 * q[..., 0] + 9617 * q[..., 1] + 1868 * q[..., 2] + (1 << 13)) >> 14
            return y.astype(np.float64)
        a = a.astype(np.float64)
        return 0.299 * a[..., 0] + 0.587 * a[..., 1] + 0.114 * a[..., 2]
    if mode == "matlab":
        a = a.astype(np.float64)
        y = 16.0 + (65.481 * a[..., 0] + 128.553 * a[..., 1] + 24.966 * a[..., 2]) / 255.0
        return np.floor(y + 0.5) if quantize else y
    raise ValueError(f"mode must be 'full' or 'matlab', got {mode!r}")


# ----------------------------------------------------------------------------------------------
# Metrics
# ----------------------------------------------------------------------------------------------


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """10 log10(data_range^2 / MSE) over all elements; inf for identical images."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(data_range ** 2 / mse)


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """SSIM with scikit-image's defaults (7x7 uniform window, K1 0.01, K2 0.03, sample covariance).
    HxW images, or HxWx3 (mean over channels)."""
    from skimage.metrics import structural_similarity

    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if min(a.shape[:2]) < 7:
        raise ValueError(f"SSIM needs images of at least 7x7 pixels, got {a.shape[0]}x{a.shape[1]}")
    return float(structural_similarity(a, b, win_size=7, data_range=data_range,
                                       channel_axis=2 if a.ndim == 3 else None))


def _as_hwc_numpy(x) -> np.ndarray:
    """numpy HxWx3 as is; torch (3, H, W) or (1, 3, H, W) -> HxWx3 numpy (same dtype family)."""
    if isinstance(x, np.ndarray):
        return x
    try:
        import torch
    except ImportError:  # pragma: no cover
        torch = None
    if torch is not None and isinstance(x, torch.Tensor):
        t = x.detach()
        if t.dim() == 4:
            if t.shape[0] != 1:
                raise ValueError(f"expected one image, got a batch of {t.shape[0]}")
            t = t[0]
        if t.dim() != 3 or t.shape[0] != 3:
            raise ValueError(f"expected an image tensor (3, H, W), got {tuple(x.shape)}")
        t = t.permute(1, 2, 0).cpu()
        return t.numpy() if t.dtype in (torch.uint8, torch.float32, torch.float64) else t.float().numpy()
    return np.asarray(x)


def score_pair(output, gt, cast: str = "clip", color: str = "y") -> tuple[float, float]:
    """(PSNR, SSIM) of one output against its ground truth, the authors' protocol (module docstring).

    ``output``: float HxWx3 in [0, 1] (raw generator output; cast to uint8 per ``cast``) or uint8 HxWx3;
    torch (3, H, W) tensors are accepted too. ``gt``: uint8 HxWx3 (a float one is clip-rounded).
    Both are top-left cropped to a multiple of 4 first and must then have the same size.
    """
    if color not in COLORS:
        raise ValueError(f"color must be one of {COLORS}, got {color!r}")
    out = crop_to_multiple(to_uint8_output(output, cast))
    ref = crop_to_multiple(to_uint8_output(gt, "clip"))
    if out.shape != ref.shape:
        raise ValueError(f"output and ground truth differ in size after cropping to a multiple of 4: "
                         f"{out.shape[1]}x{out.shape[0]} vs {ref.shape[1]}x{ref.shape[0]} (WxH)")
    if out.ndim != 3 or out.shape[2] != 3:
        raise ValueError(f"expected RGB images HxWx3, got {out.shape}")
    if color == "rgb":
        a, b = out.astype(np.float64), ref.astype(np.float64)
    else:
        mode = "full" if color == "y" else "matlab"
        a, b = rgb_to_y(out, mode, quantize=True), rgb_to_y(ref, mode, quantize=True)
    return psnr(a, b), ssim(a, b)


# ----------------------------------------------------------------------------------------------
# Pairing files
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


def _index(files: list[Path], folder) -> dict:
    out: dict = {}
    for f in files:
        k = image_id(f)
        if k in out:
            raise ValueError(f"{folder}: two files share the id {k!r}: {out[k].name} and {f.name}")
        out[k] = f
    return out


def _names(keys, index, limit=5) -> str:
    names = [index[k].name for k in sorted(keys, key=_sort_key)]
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def pair_by_id(a_dir, b_dir, a_label: str = "output", b_label: str = "ground truth") -> list[tuple[Any, Path, Path]]:
    """Match the images of two folders by :func:`image_id`; [(id, a_file, b_file)] sorted by id.
    Raises ValueError naming the files that have no partner."""
    a_dir, b_dir = Path(a_dir), Path(b_dir)
    for d in (a_dir, b_dir):
        if not d.is_dir():
            raise FileNotFoundError(f"{d}: no such folder")
    a, b = _index(list_images(a_dir), a_dir), _index(list_images(b_dir), b_dir)
    if not a:
        raise ValueError(f"{a_dir}: no images found")
    only_a, only_b = set(a) - set(b), set(b) - set(a)
    problems = []
    if only_a:
        problems.append(f"no {b_label} in {b_dir} for {len(only_a)} file(s) of {a_dir}: {_names(only_a, a)}")
    if only_b:
        problems.append(f"no {a_label} in {a_dir} for {len(only_b)} file(s) of {b_dir}: {_names(only_b, b)}")
    if problems:
        raise ValueError("; ".join(problems))
    return [(k, a[k], b[k]) for k in sorted(a, key=_sort_key)]


# (inputs, targets) sub-folders of a paired folder, in the order they are looked for: the Raindrop
# dataset's data/ + gt/ (the authors' release), then layouts common in other paired sets
PAIR_LAYOUTS = (("data", "gt"), ("rain", "clean"), ("input", "target"), ("input", "gt"))


def layouts_text() -> str:
    """``data/+gt/, rain/+clean/, input/+target/ or input/+gt/`` (for messages)."""
    names = [f"{a}/+{b}/" for a, b in PAIR_LAYOUTS]
    return ", ".join(names[:-1]) + " or " + names[-1]


def pair_dirs(folder) -> tuple[Path, Path] | None:
    """(inputs, targets) of the first :data:`PAIR_LAYOUTS` entry whose two sub-folders exist, else None."""
    folder = Path(folder)
    for a, b in PAIR_LAYOUTS:
        if (folder / a).is_dir() and (folder / b).is_dir():
            return folder / a, folder / b
    return None


def find_splits(data_root, splits: list[str] | None = None) -> list[tuple[str, Path, Path]]:
    """``root/{data,gt}`` (or another :data:`PAIR_LAYOUTS` pair) -> one split named after root; else every
    ``root/<split>/{data,gt}`` (``train`` left out unless asked for by name, or when it is the only split).
    Returns [(split, inputs folder, targets folder)]."""
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


def read_pairs(folder) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (rain, clean) uint8 images of every split in ``folder`` (any layout :func:`find_splits` reads),
    paired by id; one clear error when there are none. Used by ``--real-val`` and the model card."""
    from agan.images import read_image

    pairs = [(read_image(a), read_image(b)) for _, rain_dir, clean_dir in find_splits(folder)
             for _, a, b in pair_by_id(rain_dir, clean_dir, "rainy image", "clean image")]
    if not pairs:
        raise ValueError(f"{folder}: no rain/clean pairs found")
    return pairs


# ----------------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------------

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
        import io

        from agan.checkpoint import atomic_write_text

        buf = io.StringIO(newline="")
        w = csv.DictWriter(buf, fieldnames=_ROW_FIELDS)
        w.writeheader()
        for r in self.rows:
            w.writerow({k: ("" if r.get(k) is None else r[k]) for k in _ROW_FIELDS})
        return atomic_write_text(path, buf.getvalue())  # temp + fsync + rename

    def to_json(self, path: str | os.PathLike) -> Path:
        """The summary (protocol + means per split) as JSON (inf PSNR written as the string "inf")."""
        from agan.checkpoint import atomic_write_text

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


def _progress(items, progress: bool, desc: str):
    if not progress:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit="img", leave=False)


# ----------------------------------------------------------------------------------------------
# Evaluating folders and models
# ----------------------------------------------------------------------------------------------


def evaluate_folders(pred_dir, gt_dir, input_dir="auto", color: str = "y", split: str | None = None,
                     progress: bool = True) -> EvalResult:
    """Score ready outputs (images in ``pred_dir``) against ``gt_dir``, pairing files by id.

    ``input_dir``: the rainy inputs for the identity baseline; ``"auto"`` uses the inputs folder beside
    ``gt_dir`` in a :data:`PAIR_LAYOUTS` layout (``gt/`` -> ``../data/``, ``clean/`` -> ``../rain/``,
    ``target/`` -> ``../input/``) when it exists, None skips the baseline.
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


def _as_callable(model, device="auto", tile=None, precision="fp32") -> tuple[Callable, str]:
    """A weights path, an nn.Module generator or a callable -> f(uint8 HxWx3) -> float/uint8 HxWx3."""
    if isinstance(model, (str, os.PathLike)):
        from agan.infer.pipeline import load_generator

        name = str(model)
        model = load_generator(model, device=device)
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
                            precision=precision, clip=False)
            return out

        return run, name
    if not callable(model):
        raise TypeError(f"model must be a weights file, a generator (nn.Module) or a callable, got {type(model)}")
    return model, getattr(model, "__name__", type(model).__name__)


def evaluate_model(model, data_root, splits: list[str] | None = None, cast: str = "clip", color: str = "y",
                   device: str = "auto", tile: int | None = None, precision: str = "fp32",
                   out_dir=None, progress: bool = True) -> EvalResult:
    """Run a generator on ``data_root/{data,gt}`` (or ``data_root/<split>/{data,gt}``; any
    :data:`PAIR_LAYOUTS` pair, see :func:`find_splits`) and score it.

    ``model``: a weights file (kit checkpoint or the authors' gen.pkl, via ``agan.infer.pipeline.load_generator``),
    a Generator, or any callable ``f(uint8 HxWx3) -> float HxWx3 in [0, 1] (raw) | uint8 HxWx3``.
    Each input is cropped top-left to a multiple of 4 before the model sees it (the authors' protocol).
    ``out_dir``: also write the uint8 outputs (after ``cast``) as PNG under ``out_dir/<split>/``.
    """
    if cast not in CASTS:
        raise ValueError(f"cast must be one of {CASTS}, got {cast!r}")
    if color not in COLORS:
        raise ValueError(f"color must be one of {COLORS}, got {color!r}")
    found = find_splits(data_root, splits)
    fn, name = _as_callable(model, device, tile, precision)
    result = EvalResult(protocol={"cast": cast, "color": color, "crop": 4, "model": name,
                                  "data": str(data_root)})
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
                from agan.images import write_image

                out_name = f"{rf.stem}.png"
                write_image(Path(out_dir) / split / out_name, out)
            result.rows.append({"split": split, "id": k, "output": out_name, "gt": gf.name, "input": rf.name,
                                "psnr": p, "ssim": s, "input_psnr": ip, "input_ssim": iss})
    return result
