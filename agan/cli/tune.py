"""``agan tune``: measure, on this CPU and for these weights, whether ``--precision auto`` may use int8
(argument parsing only; the work is ``agan.accel.tune.tune``)."""

from __future__ import annotations

import argparse
import sys

EPILOG = """what auto does afterwards in agan derain (Python's derain() runs the plain Generator unless given
a forward):
  int8 when this record says int8 was faster than the float path here and within the quality bounds
  (O >= 35 dB PSNR of fp32 and attention IoU >= 0.9, worst synthetic image), and the job's pixels repay the
  int8 warm-up (its first call quantizes and compiles: docs/performance.md); otherwise bf16 (CPUs with native
  bf16) or fp32. Without a record auto never picks int8. The record is keyed by CPU, threads, torch and
  torchao versions and the weights, so a new machine or new weights need a new run."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tune", help="measure whether --precision auto should use int8 on this CPU (writes a record)",
        description="Time the int8 path (agan.accel.int8) against the float path that --precision auto "
                    "otherwise runs, on this CPU, for the given weights, check int8's quality against "
                    "fp32 on synthetic rainy images, and record the result in $AGAN_CACHE_DIR/precision.json "
                    "(default ~/.cache/agan). Takes 1-3 minutes (one int8 compile).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default=None, metavar="W",
                   help="generator weights (default: the kit's own model)")
    p.add_argument("--size", default="320x480", metavar="HxW",
                   help="image size G runs at for the timing and quality check (multiples of 4), "
                        "default 320x480 (the kit's model runs at 480 px on the long side by default: a "
                        "720x480 photo at 320x480)")
    p.add_argument("--repeats", type=int, default=3, help="timed rounds (the least is kept), default 3")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--dry-run", action="store_true", help="measure and print, write no record")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from agan.accel.records import cache_path
    from agan.accel.toolchain import require
    from agan.accel.tune import MIN_IOU, MIN_PSNR, tune
    from agan.cli import apply_timing_args
    from agan.infer.load import load_generator
    from agan.infer.shipped import default_weights
    from agan.models.summary import parse_size

    apply_timing_args(args)
    size = parse_size(args.size)
    require()  # torchao, oneDNN, a C++ compiler: one line naming what is missing
    G, _ = load_generator(args.weights or default_weights(), device="cpu")
    if not getattr(G, "attentive", False):
        raise ValueError("agan tune needs an attentive generator (the int8 path quantizes the full model)")
    e = tune(G, size=size, repeats=args.repeats, save=not args.dry_run,
             progress=lambda msg: print(f"  .. {msg}", file=sys.stderr, flush=True))
    mpx = size[0] * size[1] / 1e6
    b, q = e["base_s_per_mpx"] * mpx, e["int8_s_per_mpx"] * mpx
    print(f"{size[0]}x{size[1]}, {torch.get_num_threads()} threads: {e['base']} {b:.3f} s")
    for t in e["splits"]:
        label = "all int8" if not t["keep_float"] else f"int8, float {','.join(t['keep_float'])}"
        t8 = t["int8_s_per_mpx"] * mpx
        print(f"  {label:<22} {t8:.3f} s (x{b / t8:.2f}), warm-up {t['warmup_s']:.1f} s; vs fp32: O worst "
              f"{t['psnr_worst']:.2f} dB (>= {MIN_PSNR:g}), A_N IoU worst {t['iou_worst']:.3f} "
              f"(>= {MIN_IOU:g}){'' if t['ok'] else '  -- outside the bounds'}")
    if e["eligible"]:
        split = "all int8" if not e["keep_float"] else f"float {','.join(e['keep_float'])}"
        warm = e.get("load_s", e["warmup_s"])  # later processes load the saved package, else compile
        if "package" in e:
            print(f"saved the compiled int8 G: {e['package']} (a later process loads it in {warm:.2f} s "
                  f"instead of compiling for {e['warmup_s']:.0f} s)")
        verdict = (f"int8 runs as {split} for these weights here; auto uses it for jobs whose saving "
                   f"(x{b / q:.2f}) repays the {warm:.2f} s warm-up")
        mpx_even = warm / (e["base_s_per_mpx"] - e["int8_s_per_mpx"])
        verdict += f" (from about {mpx_even:.2g} Mpx: {mpx_even / mpx:.0f} images of {size[0]}x{size[1]})"
    else:
        why = "outside the quality bounds" if not any(t["ok"] for t in e["splits"]) else "not faster"
        verdict = f"auto keeps {e['base']} (int8 {why})"
    print(verdict + ("" if args.dry_run else f"; recorded in {cache_path()}"))
    return 0
