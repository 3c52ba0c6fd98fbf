"""``--precision auto`` on the CPU, decided from a measurement: int8 only where this CPU ran it faster than
the float path and within the quality bounds, and only for a job big enough to repay its warm-up.

    agan tune                                   # measure (the kit's model, or --weights W) and record it
    pick_precision(G, "cpu", pixels)            # what derain() / agan derain use for "auto"

1. Without a record, "auto" is what :func:`agan.precision.resolve_precision` says (bf16 on CPUs with native
   bf16 dot products, else fp32; fp16 on CUDA): int8 is never guessed.
2. :func:`tune` times the float path (``base``: what auto runs otherwise) and the int8 path
   (``agan.infer.int8``) at one size through the product's own forward, records the int8 warm-up
   (quantize + inductor compile), and checks int8 against fp32 on synthetic rainy images: PSNR of O worst
   >= 35 dB and IoU of ``A_N >= 0.5`` worst >= 0.9 (docs/int8.md). It tries two splits (the ARN float, the
   default; everything int8) and keeps the fastest within both bounds: that split is what int8 then runs
   for these weights here. int8 is eligible when a split holds both bounds and was faster.
3. :func:`pick_precision`: eligible, and the job's pixels (at G's scale) times the per-pixel saving exceed the
   warm-up still to pay -> "int8"; else the float path. The warm-up: 0 once this process has compiled the
   int8 G; loading the package ``tune`` saved (``agan.infer.aoti``, ~0.1 s) while it exists; else quantize +
   compile (20-100 s).

The record is a JSON file, ``$AGAN_CACHE_DIR/precision.json`` (default ``~/.cache/agan``), one entry per key:
the CPU (model name and instruction sets), torch's thread count, the torch and torchao versions and a
fingerprint of G's weights (speed depends on the machine and the widths, quality on the weights).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import weakref
from pathlib import Path

import torch

from agan.cpu import cpu_caps
from agan.precision import resolve_precision

__all__ = ["MIN_IOU", "MIN_PSNR", "cache_path", "file_pixels", "lookup", "pick_precision",
           "record_key", "recorded_keep_float", "run_pixels", "tune"]

MIN_PSNR = 35.0  # dB, int8 O vs fp32 O, worst image
MIN_IOU = 0.9  # IoU of A_N >= 0.5, int8 vs fp32, worst image
THRESHOLD = 0.5  # the kit's attention threshold (agan.experiments.attention)

_FINGERPRINTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def cache_path() -> Path:
    return Path(os.environ.get("AGAN_CACHE_DIR") or Path.home() / ".cache" / "agan") / "precision.json"


def _cpu() -> str:
    """Model name and instruction sets (after any AGAN_CPU_CAP): int8's speed and its activation range
    (full on VNNI CPUs, 7-bit without) depend on them."""
    return cpu_caps().key()


def _fingerprint(G: torch.nn.Module) -> str:
    """sha256 (16 hex) of G's parameters, cached per G while they are unchanged."""
    key = tuple((p.data_ptr(), p._version) for p in G.parameters())
    cached = _FINGERPRINTS.get(G)
    if cached is None or cached[0] != key:
        h = hashlib.sha256()
        for name, t in G.state_dict().items():
            h.update(name.encode())
            h.update(t.detach().cpu().float().contiguous().numpy().tobytes())
        cached = (key, h.hexdigest()[:16])
        _FINGERPRINTS[G] = cached
    return cached[1]


def record_key(G: torch.nn.Module) -> str:
    import importlib.metadata

    try:
        ao = importlib.metadata.version("torchao")  # not an import: that costs seconds of a cold start
    except importlib.metadata.PackageNotFoundError:
        ao = "none"
    return (f"{_cpu()} | {torch.get_num_threads()} threads | torch {torch.__version__} | torchao {ao} | "
            f"G {_fingerprint(G)}")


def _read() -> dict:
    try:
        return json.loads(cache_path().read_text())
    except (OSError, ValueError):
        return {}


def lookup(G: torch.nn.Module) -> dict | None:
    """The recorded measurement for G on this machine, or None."""
    records = _read()  # no file: no fingerprint to compute
    entry = records.get(record_key(G)) if records else None
    return entry if isinstance(entry, dict) else None


def pick_precision(model: torch.nn.Module, device: torch.device | str, pixels: float,
                   precision: str = "auto") -> str:
    """The precision to run a job of ``pixels`` (total, at G's scale) with: ``precision`` unless it is
    "auto"; for "auto", int8 where the record allows it (module docstring), else resolve_precision's."""
    device = torch.device(device)
    base = resolve_precision(precision, device)
    if precision != "auto" or device.type != "cpu":
        return base
    from agan.infer import int8
    from agan.models.generator import Generator

    if not isinstance(model, Generator) or not model.attentive:
        return base
    entry = lookup(model)
    if entry is None or not entry.get("eligible") or entry.get("base") != base or not int8.available():
        return base
    try:
        return _int8_if_repaid(model, entry, pixels, base)
    except (KeyError, TypeError, ValueError):  # a damaged or hand-edited record: as if there were none
        return base


def _int8_if_repaid(model, entry: dict, pixels: float, base: str) -> str:
    """"int8" when the job's saving exceeds the warm-up still to pay (module docstring, step 3), else base."""
    from agan.infer import aoti, int8

    if not isinstance(entry["keep_float"], list):
        raise TypeError("keep_float")
    if int8.is_compiled(model):
        warmup = 0.0
    elif "load_s" in entry and aoti.package_path(model, tuple(entry["keep_float"])).is_file():
        warmup = float(entry["load_s"])  # agan tune's compiled G: a load, what int8_forward will do
    else:
        warmup = float(entry["warmup_s"])  # quantize + compile in this process
    saving = pixels / 1e6 * (float(entry["base_s_per_mpx"]) - float(entry["int8_s_per_mpx"]))
    return "int8" if saving > warmup else base


def run_pixels(model: torch.nn.Module, hw: tuple[int, int], size: int | None = None) -> int:
    """Pixels G runs on for one H x W image: at the longer side ``size`` (None = the model's own, 0 = full
    resolution) when the image is larger, as ``derain_tensor`` does."""
    from agan.models.generator import model_size

    H, W = hw
    size = model_size(model) if size is None else int(size)
    if 0 < size < max(H, W):
        s = size / max(H, W)
        return max(4, round(H * s)) * max(4, round(W * s))
    return H * W


def file_pixels(model: torch.nn.Module, files, size: int | None = None) -> int:
    """Sum of :func:`run_pixels` over image files (sizes from their headers; unreadable files count 0)."""
    import warnings

    from PIL import Image

    total = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # warned when the file is read
        for f in files:
            try:
                with Image.open(f) as im:
                    total += run_pixels(model, (im.height, im.width), size)
            except (OSError, ValueError, Image.DecompressionBombError):  # reported when the file is read
                pass
    return total


def _psnr_iou(a, b) -> tuple[float, float]:
    """PSNR (dB) of O_a vs O_b (clipped to [0, 1]) and IoU of A_N >= 0.5."""
    mse = float(((a[0].clamp(0, 1) - b[0].clamp(0, 1)) ** 2).mean())
    psnr = float("inf") if mse == 0 else 10 * torch.log10(torch.tensor(1 / mse)).item()
    ma, mb = a[1][-1] >= THRESHOLD, b[1][-1] >= THRESHOLD
    union = int((ma | mb).sum())
    return psnr, 1.0 if union == 0 else int((ma & mb).sum()) / union


def recorded_keep_float(G: torch.nn.Module) -> tuple[str, ...]:
    """The int8 split (``keep_float``) that ``agan tune`` chose for G on this machine, else the default."""
    from agan.infer.int8 import DEFAULT_KEEP_FLOAT

    entry = lookup(G)
    if entry and entry.get("eligible") and isinstance(entry.get("keep_float"), list):
        return tuple(entry["keep_float"])
    return DEFAULT_KEEP_FLOAT


def _time(fn, x, times: list[float]) -> None:
    t0 = time.perf_counter()
    fn(x)
    times.append(time.perf_counter() - t0)


def _measure_split(G, keep: tuple[str, ...], base: str, x, quality: list, repeats: int, base_times: list,
                   say) -> dict:
    """One int8 split: warm-up, ``repeats`` rounds interleaved with the float path, quality vs fp32."""
    from agan.infer.int8 import int8_forward
    from agan.infer.pipeline import _forward

    label = "all int8" if not keep else f"float: {','.join(keep)}"
    say(f"int8 ({label}): warm-up (quantize + compile)")
    t0 = time.perf_counter()
    int8_forward(G, x, keep_float=keep)
    warmup = time.perf_counter() - t0
    times: list[float] = []
    say(f"int8 ({label}): {repeats} rounds interleaved with {base}; quality on {len(quality)} images")
    for _ in range(repeats):
        _time(lambda im: _forward(G, im, base), x, base_times)
        _time(lambda im: int8_forward(G, im, keep_float=keep), x, times)
    scores = []
    for img in quality:
        q = int8_forward(G, img, keep_float=keep)
        scores.append(_psnr_iou((q.O, q.attention), _forward(G, img, "fp32")))
    mpx = x.shape[-2] * x.shape[-1] / 1e6
    psnr, iou = min(s[0] for s in scores), min(s[1] for s in scores)
    return {"keep_float": list(keep), "int8_s_per_mpx": min(times) / mpx, "warmup_s": warmup,
            "psnr_worst": psnr, "iou_worst": iou, "ok": bool(psnr >= MIN_PSNR and iou >= MIN_IOU)}


def _save_package(G, keep: tuple[str, ...], x, say) -> dict:
    """Build the ahead-of-time int8 package for this split (agan.infer.aoti) and time loading it."""
    from agan.infer import aoti, int8

    path = aoti.package_path(G, keep)
    say(f"saving the compiled int8 G for later processes: {path}")
    aoti.save(int8.quantize_generator(G, keep_float=keep, compile=False), path)
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
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _LOAD_PROBE, str(path), str(hw[0]), str(hw[1])],
                         capture_output=True, text=True, check=True).stdout
    return max(0.0, float(out.strip().splitlines()[-1]))


def tune(G: torch.nn.Module, size: tuple[int, int] = (320, 480), repeats: int = 3, n_quality: int = 4,
         splits: tuple[tuple[str, ...], ...] | None = None, progress=None, save: bool = True) -> dict:
    """Measure int8 against the float path on this CPU for G (module docstring) and record the entry.

    ``splits``: the int8 variants tried (``keep_float`` of ``agan.infer.int8``; default: the whole ARN float,
    and all int8); the record keeps the fastest one within the quality bounds, which ``--precision int8`` and
    ``auto`` then use for G on this machine."""
    from agan.infer import int8
    from agan.infer.pipeline import _forward

    say = progress or (lambda msg: None)
    int8.require()
    G = G.cpu().eval()
    base = resolve_precision("auto", "cpu")
    splits = (int8.DEFAULT_KEEP_FLOAT, ()) if splits is None else tuple(tuple(k) for k in splits)
    x = int8.calibration_images(1, size, seed=2000)[0]  # (1, 3, H, W)
    quality = int8.calibration_images(n_quality, size, seed=3000)  # not the calibration seed (1000)
    _forward(G, x, base)  # warm the float path
    base_times: list[float] = []
    tried = [_measure_split(G, k, base, x, quality, repeats, base_times, say) for k in splits]
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
        from agan.atomic import atomic_path

        records = _read()
        records[record_key(G)] = entry
        try:
            with atomic_path(cache_path()) as tmp:
                tmp.write_text(json.dumps(records, indent=2) + "\n")
        except OSError as e:
            raise ValueError(f"cannot write the record {cache_path()}: {e.strerror or e} (set AGAN_CACHE_DIR "
                             "to a writable folder)") from e
    return entry
