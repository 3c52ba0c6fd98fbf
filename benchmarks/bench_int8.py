"""The int8 path of G (agan.accel.quantize, PT2E static quantization) against plain eager fp32 and
FastGenerator bf16.

    OMP_NUM_THREADS=2 python benchmarks/bench_int8.py [--size 480x720] [--repeats 3] [--synthetic 4]
        [--real DIR | --no-real] [--keep-float arn] [--float-dtype auto|bf16|fp32] [--variants] [--weights W]

Speed: s/image at --size, one image, for ``plain`` (``G(x)`` under inference_mode, eager fp32), ``fast32`` /
``bf16`` (agan.accel.fast.FastGenerator) and ``int8`` (agan.accel.quantize, inductor-compiled); the paths run
interleaved, ``--repeats`` rounds after a warm-up, and the table shows the least wall time of each (and the
least CPU time / threads, a steadier figure on a shared machine). ``--variants`` also times int8 with every
conv int8, and the default split (the whole ARN float) with its float parts in fp32 instead of bf16.
Quality: int8 vs fp32 (FastGenerator fp32, within 1e-4 of the plain path) on ``--synthetic`` synthetic rainy
images at --size and on every photo under --real (default ../shared/real beside the repository, when it
exists) at full resolution (``derain_tensor`` with the paper's settings, ``agan.infer.PAPER``, each run by
its forward, ``forward=``; tiled above 1024x1024 like ``agan derain``):
PSNR of O (clipped to [0, 1]) per image, worst and mean, and the IoU of A_N >= 0.5.
"""

from __future__ import annotations

import argparse
import functools
import math
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agan.accel import quantize  # noqa: E402
from agan.accel.fast import FastGenerator, fast_forward  # noqa: E402
from agan.accel.records import DEFAULT_KEEP_FLOAT  # noqa: E402
from agan.accel.toolchain import unavailable_reason  # noqa: E402
from agan.cpu import cpu_caps  # noqa: E402
from agan.infer import PAPER, derain_tensor, load_generator  # noqa: E402
from agan.infer.shipped import default_weights  # noqa: E402

DEFAULT_REAL = Path(__file__).resolve().parents[1].parent / "shared" / "real"
THRESHOLD = 0.5


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.clamp(0, 1) - b.clamp(0, 1)) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def iou(a: torch.Tensor, b: torch.Tensor, t: float = THRESHOLD) -> float:
    a, b = a >= t, b >= t
    union = int((a | b).sum())
    return 1.0 if union == 0 else int((a & b).sum()) / union


def load_image(path: Path) -> torch.Tensor:
    from PIL import Image

    arr = np.asarray(Image.open(path).convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)[None].float() / 255.0  # (1, 3, H, W)


def time_paths(runs: dict, x: torch.Tensor, repeats: int) -> dict:
    threads = torch.get_num_threads()
    for f in runs.values():
        f(x)  # warm-up (compiles the int8 graph)
    wall = {k: [] for k in runs}
    cpu = {k: [] for k in runs}
    for _ in range(repeats):
        for k, f in runs.items():
            c, t = cpu_s(), time.perf_counter()
            f(x)
            wall[k].append(time.perf_counter() - t)
            cpu[k].append((cpu_s() - c) / threads)
    return {k: (min(wall[k]), min(cpu[k])) for k in runs}


def quality(G, q, images: list[tuple[str, object]]) -> list[tuple[str, str, float, float]]:
    """(name, size, PSNR dB, IoU) of int8 vs fp32, full resolution, tiled like ``agan derain``."""
    fp32 = functools.partial(fast_forward, precision="fp32")  # within 1e-4 of G's own forward

    def int8(model, x):  # the quantized G in G's place
        return q(x)

    rows = []
    for name, x in images:
        x = x() if callable(x) else x
        O32, A32 = derain_tensor(G, x, settings=PAPER, tile=None, forward=fp32)
        O8, A8 = derain_tensor(G, x, settings=PAPER, tile=None, forward=int8)
        j = iou(A8[-1], A32[-1]) if A32 else 1.0
        rows.append((name, f"{x.shape[-1]}x{x.shape[-2]}", psnr(O8, O32), j))
        print(f"  {name:<48}{rows[-1][1]:>11}{rows[-1][2]:>9.2f} dB  IoU {rows[-1][3]:.3f}", flush=True)
    return rows


def summary(label: str, rows) -> str:
    if not rows:
        return f"{label}: no images"
    p = [r[2] for r in rows]
    worst = min(rows, key=lambda r: r[2])
    j = [r[3] for r in rows]
    return (f"{label}: {len(rows)} images, PSNR worst {worst[2]:.2f} dB ({worst[0]}), "
            f"mean {np.mean(p):.2f} dB; "
            f"IoU(A_N>={THRESHOLD}) worst {min(j):.3f}, mean {np.mean(j):.3f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="480x720", help="HxW of the timed image (default 480x720)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--synthetic", type=int, default=4, help="synthetic test images for quality (default 4)")
    ap.add_argument("--real", default=str(DEFAULT_REAL), help="folder of real photos, searched recursively")
    ap.add_argument("--no-real", action="store_true")
    ap.add_argument("--calib", type=int, default=8, help="calibration images (synthetic, 240x360)")
    ap.add_argument("--keep-float", default=",".join(DEFAULT_KEEP_FLOAT),
                    help="comma-separated module prefixes of G kept float (default: arn; '' = all int8)")
    ap.add_argument("--float-dtype", default="auto", choices=("auto", "bf16", "fp32"),
                    help="what the float parts run in (default auto: bf16 on CPUs with native bf16)")
    ap.add_argument("--variants", action="store_true", help="also time all-int8 and fp32 float parts")
    ap.add_argument("--weights", default=None, help="generator weights (default: the kit's shipped model)")
    ap.add_argument("--preset", default=None,
                    help="time a randomly initialised G of this config preset (e.g. paper, as `agan bench`) "
                         "instead of the weights; quality is then skipped")
    args = ap.parse_args(argv)
    why = unavailable_reason()
    if why is not None:
        print(f"bench_int8: {why}", file=sys.stderr)
        return 2
    H, W = (int(v) for v in args.size.lower().split("x"))
    if args.preset:
        from agan.config import Config
        from agan.models import build_generator

        torch.manual_seed(0)
        G = build_generator(Config.preset(args.preset)).eval()
    else:
        G = load_generator(args.weights or default_weights(), "cpu").model
    keep = tuple(p for p in args.keep_float.split(",") if p)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()} ({cpu_caps().key()}); "
          f"G width {G.width:g}, ARN width {G.arn_width:g}")
    calib = quantize.calibration_images(args.calib, (240, 360))
    t = time.perf_counter()
    q = quantize.quantize_generator(G, calib, keep_float=keep, float_dtype=args.float_dtype)
    print(f"quantize (export + calibrate on {len(calib)} images + convert): {time.perf_counter() - t:.1f} s")
    x = quantize.calibration_images(1, (H, W), seed=2000)[0]
    t = time.perf_counter()
    q(x)
    print(f"int8 first call (inductor compile): {time.perf_counter() - t:.1f} s")

    def plain(img):
        with torch.inference_mode():
            return G(img)

    runs = {"plain": plain, "fast32": FastGenerator(G, "fp32"), "bf16": FastGenerator(G, "bf16"), "int8": q}
    if cpu_caps().why_no_bf16():  # oneDNN runs no bf16 conv here: int8 is compared with fast32 instead
        print(f"bf16 skipped: {cpu_caps().why_no_bf16()}")
        del runs["bf16"]
    ref = "bf16" if "bf16" in runs else "fast32"
    if args.variants:
        for name, kf, fd in (("int8 all", (), "auto"), ("int8 float parts fp32", keep, "fp32")):
            runs[name] = quantize.quantize_generator(G, calib, keep_float=kf, float_dtype=fd)
    res = time_paths(runs, x, args.repeats)
    print(f"\n{'path':<24}{'s/image':>9}{'cpu/thr':>9}{'vs plain':>10}{'vs ' + ref:>10}"
          f"   ({H}x{W}, min of {args.repeats})")
    for k, (w, c) in res.items():
        print(f"{k:<24}{w:>9.3f}{c:>9.3f}{res['plain'][0] / w:>9.2f}x{res[ref][0] / w:>9.2f}x")

    if args.preset:
        return 0
    print(f"\nquality, int8{' (float: ' + ','.join(keep) + ')' if keep else ''} vs fp32:")
    syn = [(f"synthetic seed 3000 #{i}", t) for i, t in
           enumerate(quantize.calibration_images(args.synthetic, (H, W), seed=3000))]
    rows_syn = quality(G, q, syn)
    rows_real = []
    real = Path(args.real)
    if not args.no_real and real.is_dir():
        files = sorted(p for p in real.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg")
                       and "clean" not in p.parts)
        rows_real = quality(G, q, [(str(p.relative_to(real)), lambda p=p: load_image(p)) for p in files])
    print(summary(f"synthetic {H}x{W}", rows_syn))
    print(summary(f"real ({real}, full resolution)", rows_real))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
