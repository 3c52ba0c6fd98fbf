"""``agan derain``: remove raindrops from image files or folders (argument parsing and file handling only;
the work is ``agan.infer.pipeline.derain``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EPILOG = """examples:
  agan derain photo.jpg --out derained/                     # the kit's default model
  agan derain photo.jpg --weights runs/cpu/checkpoint.pt --out derained/
  agan derain data/test_a/data --weights gen.pkl --out out/ --save-attention
  agan derain big.png --weights ckpt.pt --out out/ --tile 512 --overwrite

Outputs keep the input's file name, format (extension) and size; a transparent input (RGBA, grey +
alpha, palette with transparency) keeps its alpha channel in PNG, WebP and TIFF outputs (the
network sees the colour only). The EXIF orientation is applied. Attention maps A_1..A_N
(--save-attention) go to OUT/attention/<name>_A<t>.png as grey images (clipped to [0, 1]).
An existing output is never replaced without --overwrite and an input is never written over.
Unreadable inputs are skipped; the run ends with a summary and exit status 1 if any input
failed or was skipped (2 for a usage error such as a bad weights file)."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "derain", help="remove raindrops from images or folders of images",
        description="Run a trained generator on image files or folders: reflect-pads to a "
                    "multiple of 4 and crops back (every pixel kept), tiles large images with "
                    "blended seams. Weights: a kit checkpoint, a kit release (.safetensors), the "
                    "authors' gen.pkl, or a Generator state dict; without --weights, the kit's "
                    "default model (agan/weights/agan-synthetic.safetensors).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files and/or folders of images")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    p.add_argument("--weights", default=None, metavar="W",
                   help="checkpoint file (kit .pt, kit release .safetensors, or the authors' gen.pkl); "
                        "default: the kit's own model, agan/weights/agan-synthetic.safetensors (installed "
                        "with the package, trained on synthetic drops only)")
    p.add_argument("--save-attention", action="store_true", help="also write the attention maps A_1..A_N")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--tile", type=int, default=None, metavar="N",
                   help="tile size in pixels (default: automatic, 512 for images over 1024x1024; "
                        "0 = never tile)")
    p.add_argument("--overlap", type=int, default=32, metavar="N", help="tile overlap in pixels (default 32)")
    p.add_argument("--size", default="model", metavar="N|full|model",
                   help="the longer side (px) at which the network runs: model (default: the scale the "
                        "weights were trained for, e.g. 480 for the cpu preset, full resolution for "
                        "gen.pkl), full, or N; only the network's change is enlarged back, so finer detail "
                        "stays the input's")
    p.add_argument("--smooth", default="model", metavar="S|model",
                   help="sigma (px at the network's scale) of the Gaussian that smooths the network's change "
                        "before it is applied: model (default: the weights' own, e.g. 2 for the kit's model, "
                        "0 for gen.pkl)")
    p.add_argument("--blend", default="model", choices=("model", "none", "attention"),
                   help="attention: the change is weighted by the last attention map clip(A_N, 0, 1), so "
                        "regions without drops stay as they were; none: applied everywhere; model (default): "
                        "the weights' own")
    p.add_argument("--device", default="auto", help="auto (CUDA when present) | cpu | cuda | cuda:N")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16", "int8"),
                   help="auto (default): bf16 on CPUs with native bf16 (avx512_bf16/AMX), fp16 on CUDA, else "
                        "fp32, and int8 where `agan tune` measured it faster on this CPU for these weights "
                        "and the job repays its warm-up. The command runs the accelerated forward "
                        "(agan.accel; "
                        "Python's agan.infer.derain runs the plain Generator unless given forward=): fp32 "
                        "matches the plain network within 1e-4, "
                        "bf16/fp16 within >= 40 dB PSNR; int8 (CPU, needs torchao and a C++ compiler): "
                        ">= 35 dB of fp32, its first image quantizes and compiles G (docs/int8.md)")
    p.add_argument("--recursive", action="store_true", help="also look into sub-folders of folder inputs")
    p.set_defaults(func=run)


def _size(text: str) -> int | None:
    """--size: 'model' -> None (the weights' own), 'full' -> 0, N -> N (>= 16)."""
    if text in ("model", "full"):
        return None if text == "model" else 0
    if not text.isdigit() or int(text) < 16:
        raise ValueError(f"--size must be model, full or a number of pixels >= 16, got {text!r}")
    return int(text)


def _smooth(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise ValueError(f"--smooth must be model or a number of pixels >= 0, got {text!r}")
    return value


def run(args: argparse.Namespace) -> int:
    from agan import pick_device
    from agan.accel import int8_notes, pick_forward, pick_precision
    from agan.accel.malloc import malloc_tuning
    from agan.accel.toolchain import require
    from agan.accel.tune import file_pixels
    from agan.infer.batch import collect_inputs, derain_files
    from agan.infer.load import load_generator
    from agan.infer.shipped import announce_default, default_weights
    from agan.precision import resolve_precision

    files, failed = collect_inputs(args.inputs, args.recursive)
    if args.tile is not None and args.tile < 0:
        raise ValueError(f"--tile must be >= 0, got {args.tile}")
    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {out_dir}: exists and is not a folder")
    if args.precision != "auto":  # before any weights are loaded or files written: one line, exit 2
        resolve_precision(args.precision, pick_device(args.device))  # e.g. bf16 on a CPU without it
    if args.precision == "int8":
        require()
    # the options first: a bad one is one line before any weights are loaded
    size, smooth = _size(args.size), None if args.smooth == "model" else _smooth(args.smooth)
    blend = None if args.blend == "model" else args.blend
    weights = args.weights
    if weights is None:  # the kit's packaged model; missing: one line, exit 2
        weights = default_weights()
        announce_default(weights)
    model, saved = load_generator(weights, device=args.device)  # a bad file stops here (exit 2)
    settings = saved.but(size, smooth, blend)
    # one precision for the whole job: int8 for "auto" only where `agan tune` measured it worth this job
    device = next(model.parameters()).device
    pixels = file_pixels(settings, files) if args.precision == "auto" else 0  # only auto weighs the job
    precision = pick_precision(model, device, pixels, args.precision)
    if precision == "int8" and files:
        if args.precision == "auto":
            print("precision auto: int8 (measured faster on this CPU by agan tune)", file=sys.stderr)
        for note in int8_notes(model):
            print(note, file=sys.stderr)
    forward = pick_forward(model, precision, device)
    with malloc_tuning():  # one tuned heap for the job: later images reuse its pages (trimmed at the end)
        report = derain_files(files, out_dir, model, overwrite=args.overwrite,
                              save_attention=args.save_attention, tile=args.tile, overlap=args.overlap,
                              settings=settings, forward=forward)
    failed += report.failed
    print(f"derained {report.done} of {len(files)} image(s) into {out_dir}")
    for what, label in ((report.skipped, "skipped"), (failed, "failed")):
        if what:
            print(f"{len(what)} {label}:", file=sys.stderr)
            for name, why in what:
                print(f"  {name}: {why}", file=sys.stderr)
    return 1 if failed or report.skipped else 0
