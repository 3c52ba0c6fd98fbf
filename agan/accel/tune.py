"""``--precision auto`` on the CPU, decided from a measurement: int8 only where this CPU ran it faster than
the float path and within the quality bounds, and only for a job big enough to repay its warm-up.

    agan tune                                   # measure (the kit's model, or --weights W) and record it
    pick_precision(G, "cpu", pixels)            # what agan derain --precision auto runs

1. Without a record, "auto" is what :func:`agan.precision.resolve_precision` says (bf16 on CPUs with native
   bf16 dot products, else fp32; fp16 on CUDA): int8 is never guessed.
2. :func:`tune` times the float path (``base``: what auto runs otherwise) and the int8 path
   (``agan.accel.int8``) at one size through the forwards ``agan derain`` runs, records the int8 warm-up
   (quantize + inductor compile), and checks int8 against fp32 on synthetic rainy images: PSNR of O worst
   >= 35 dB and IoU of ``A_N >= 0.5`` worst >= 0.9 (docs/int8.md). It tries two splits (the ARN float, the
   default; everything int8) and keeps the fastest within both bounds: that split is what int8 then runs
   for these weights here. int8 is eligible when a split holds both bounds and was faster.
3. :func:`pick_precision`: eligible, and the job's pixels (at G's scale) times the per-pixel saving exceed the
   warm-up still to pay -> "int8"; else the float path. The warm-up: 0 once this process has compiled the
   int8 G; loading the package ``tune`` saved (``agan.accel.aoti``) while it exists; else quantize +
   compile (both measured by ``tune`` and kept in the record: ``agan.accel.records``).
"""

from __future__ import annotations

import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image

from agan.accel import aoti
from agan.accel.fast import fast_forward
from agan.accel.int8 import int8_forward, is_compiled
from agan.accel.quantize import calibration_images, quantize_generator
from agan.accel.records import DEFAULT_KEEP_FLOAT, lookup, write_record
from agan.accel.toolchain import available, require
from agan.experiments.attention import ATTENTION_THRESHOLD
from agan.infer.settings import DerainSettings
from agan.models.generator import Generator
from agan.precision import resolve_precision

Forward = Callable[[torch.nn.Module, torch.Tensor], object]  # (G, x) -> G's output

__all__ = ["MIN_IOU", "MIN_PSNR", "file_pixels", "pick_precision", "run_pixels", "tune"]

MIN_PSNR = 35.0  # dB, int8 O vs fp32 O, worst image
MIN_IOU = 0.9  # IoU of A_N >= ATTENTION_THRESHOLD, int8 vs fp32, worst image


def pick_precision(model: torch.nn.Module, device: torch.device | str, pixels: float,
                   precision: str = "auto") -> str:
    """The precision to run a job of ``pixels`` (total, at G's scale) with: ``precision`` unless it is
    "auto"; for "auto", int8 where the record allows it (module docstring), else resolve_precision's."""
    device = torch.device(device)
    base = resolve_precision(precision, device)
    if precision != "auto" or device.type != "cpu":
        return base
    if not isinstance(model, Generator) or not model.attentive:
        return base
    entry = lookup(model)
    if entry is None or not entry.get("eligible") or entry.get("base") != base or not available():
        return base
    try:
        return _int8_if_repaid(model, entry, pixels, base)
    except (KeyError, TypeError, ValueError):  # a damaged or hand-edited record: as if there were none
        return base


def _int8_if_repaid(model, entry: dict, pixels: float, base: str) -> str:
    """"int8" when the job's saving exceeds the warm-up still to pay (module docstring, step 3), else base."""
    if not isinstance(entry["keep_float"], list):
        raise TypeError("keep_float")
    if is_compiled(model):
        warmup = 0.0
    elif "load_s" in entry and aoti.package_path(model, tuple(entry["keep_float"])).is_file():
        warmup = float(entry["load_s"])  # agan tune's compiled G: a load, what int8_forward will do
    else:
        warmup = float(entry["warmup_s"])  # quantize + compile in this process
    saving = pixels / 1e6 * (float(entry["base_s_per_mpx"]) - float(entry["int8_s_per_mpx"]))
    return "int8" if saving > warmup else base


def run_pixels(settings: DerainSettings, hw: tuple[int, int]) -> int:
    """Pixels G runs on for one H x W image under ``settings`` (reduced to ``settings.size``, like derain)."""
    h, w = settings.run_hw(*hw)
    return h * w


def file_pixels(settings: DerainSettings, files) -> int:
    """Sum of :func:`run_pixels` over image files (sizes from their headers; unreadable files count 0)."""
    total = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # warned when the file is read
        for f in files:
            try:
                with Image.open(f) as im:
                    total += run_pixels(settings, (im.height, im.width))
            except (OSError, ValueError, Image.DecompressionBombError):  # reported when the file is read
                pass
    return total


def _psnr_iou(a, b) -> tuple[float, float]:
    """PSNR (dB) of O_a vs O_b (clipped to [0, 1]) and IoU of A_N >= ATTENTION_THRESHOLD."""
    mse = float(((a[0].clamp(0, 1) - b[0].clamp(0, 1)) ** 2).mean())
    psnr = float("inf") if mse == 0 else 10 * torch.log10(torch.tensor(1 / mse)).item()
    ma, mb = a[1][-1] >= ATTENTION_THRESHOLD, b[1][-1] >= ATTENTION_THRESHOLD
    union = int((ma | mb).sum())
    return psnr, 1.0 if union == 0 else int((ma & mb).sum()) / union


def _time(fn, x, times: list[float]) -> None:
    t0 = time.perf_counter()
    fn(x)
    times.append(time.perf_counter() - t0)


def _measure_split(G, keep: tuple[str, ...], float_forward: Forward, x, quality: list, repeats: int,
                   base_times: list, say) -> dict:
    """One int8 split: warm-up, ``repeats`` rounds interleaved with the float path, quality vs fp32."""
    label = "all int8" if not keep else f"float: {','.join(keep)}"
    say(f"int8 ({label}): warm-up (quantize + compile)")
    t0 = time.perf_counter()
    int8_forward(G, x, keep_float=keep)
    warmup = time.perf_counter() - t0
    times: list[float] = []
    say(f"int8 ({label}): {repeats} rounds interleaved with the float path; quality on {len(quality)} images")
    for _ in range(repeats):
        _time(lambda im: float_forward(G, im), x, base_times)
        _time(lambda im: int8_forward(G, im, keep_float=keep), x, times)
    scores = []
    for img in quality:
        q = int8_forward(G, img, keep_float=keep)
        ref = fast_forward(G, img, "fp32")
        scores.append(_psnr_iou((q.O, q.attention), (ref.O, ref.attention)))
    mpx = x.shape[-2] * x.shape[-1] / 1e6
    psnr, iou = min(s[0] for s in scores), min(s[1] for s in scores)
    return {"keep_float": list(keep), "int8_s_per_mpx": min(times) / mpx, "warmup_s": warmup,
            "psnr_worst": psnr, "iou_worst": iou, "ok": bool(psnr >= MIN_PSNR and iou >= MIN_IOU)}


def _save_package(G, keep: tuple[str, ...], x, say) -> dict:
    """Build the ahead-of-time int8 package for this split (agan.accel.aoti) and time loading it."""
    path = aoti.package_path(G, keep)
    say(f"saving the compiled int8 G for later processes: {path}")
    aoti.save(quantize_generator(G, keep_float=keep, compile=False), path)
    return {"package": str(path), "load_s": _fresh_load_s(path, tuple(x.shape[-2:]))}


_LOAD_PROBE = """import sys, time
import torch
t0 = time.perf_counter()
m = torch._inductor.aoti_load_package(sys.argv[1])
x = torch.rand(1, 3, int(sys.argv[2]), int(sys.argv[3])).contiguous(memory_format=torch.channels_last)
m(x)
t1 = time.perf_counter()
m(x)
print(2 * t1 - t0 - time.perf_counter())
"""


def _fresh_load_s(path: Path, hw: tuple[int, int]) -> float:
    """What loading the package costs a new process (importing torch's inductor runtime, loading the
    library, its first-call setup), beyond the image's own work: measured in a subprocess, as a CLI pays
    it."""
    out = subprocess.run([sys.executable, "-c", _LOAD_PROBE, str(path), str(hw[0]), str(hw[1])],
                         capture_output=True, text=True, check=True).stdout
    return max(0.0, float(out.strip().splitlines()[-1]))


def tune(G: torch.nn.Module, float_forward: Forward | None = None, size: tuple[int, int] = (320, 480),
         repeats: int = 3, n_quality: int = 4, splits: tuple[tuple[str, ...], ...] | None = None,
         progress=None, save: bool = True) -> dict:
    """Measure int8 against the float path on this CPU for G (module docstring) and record the entry.

    ``float_forward(G, x)``: the float path int8 must beat (default: ``agan.accel.fast`` at the precision
    "auto" resolves to here, what ``agan derain`` runs without a record). ``splits``: the int8 variants tried
    (``keep_float`` of ``agan.accel.quantize``; default: the whole ARN float, and all int8); the record keeps
    the fastest one within the quality bounds, which ``--precision int8`` and ``auto`` then use for G on this
    machine."""
    say = progress or (lambda msg: None)
    require()
    G = G.cpu().eval()
    base = resolve_precision("auto", "cpu")
    if float_forward is None:
        def float_forward(model, x):
            return fast_forward(model, x, base)
    splits = (DEFAULT_KEEP_FLOAT, ()) if splits is None else tuple(tuple(k) for k in splits)
    x = calibration_images(1, size, seed=2000)[0]  # (1, 3, H, W)
    quality = calibration_images(n_quality, size, seed=3000)  # not the calibration seed (1000)
    float_forward(G, x)  # warm the float path
    base_times: list[float] = []
    tried = [_measure_split(G, k, float_forward, x, quality, repeats, base_times, say) for k in splits]
    ok = [t for t in tried if t["ok"]]
    chosen = min(ok, key=lambda t: t["int8_s_per_mpx"]) if ok else tried[0]
    mpx = size[0] * size[1] / 1e6
    entry = {"base": base, "size": list(size), "base_s_per_mpx": min(base_times) / mpx,
             **{k: v for k, v in chosen.items() if k != "ok"}, "splits": tried,
             "when": time.strftime("%Y-%m-%d %H:%M:%S")}
    entry["faster"] = entry["int8_s_per_mpx"] < entry["base_s_per_mpx"]
    entry["eligible"] = bool(chosen["ok"] and entry["faster"])
    if save and entry["eligible"]:  # later processes load the compiled int8 G instead of compiling it
        entry.update(_save_package(G, tuple(chosen["keep_float"]), x, say))
    if save:
        write_record(G, entry)
    return entry
