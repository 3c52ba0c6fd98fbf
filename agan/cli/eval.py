"""``agan eval``: PSNR / SSIM with the authors' protocol (argument parsing only; the work, and the
refusal to replace existing outputs, is ``agan.evaluation``)."""

from __future__ import annotations

import argparse

EPILOG = """examples:
  agan eval --weights runs/cpu/checkpoint.pt --data ~/Raindrop            # every split (test_a, test_b)
  agan eval --data ~/Raindrop                                             # the kit's default model
  agan eval --weights gen.pkl --data ~/Raindrop --split test_a --cast wrap  # the authors' script exactly
  agan eval --weights runs/cpu/checkpoint.pt --data ../shared/real/train_pairs  # rain/ + clean/ pairs
  agan eval --pred out/ --gt ~/Raindrop/test_a/gt --csv scores.csv        # ready outputs vs ground truth

Protocol (docs/paper.md#evaluation-protocol): top-left crop to a multiple of 4; output x255 -> uint8
(--cast clip: clip and round, default; wrap: the released script's unclipped cast, out-of-range values
wrap around);
Y = 0.299 R + 0.587 G + 0.114 B (--color y, default; y-matlab: 16-235 Y; rgb: no conversion);
PSNR (data range 255) and SSIM (scikit-image: 7x7 uniform window, K1 0.01, K2 0.03); mean over
images. --data DIR holds inputs + ground truth as data/+gt/ (Raindrop), rain/+clean/, input/+target/
or input/+gt/, itself or in split folders (DIR/test_a/...). Files pair by their leading number
(N_rain.png <-> N_clean.png) or by stem. The identity baseline (rainy input vs ground truth) is
printed beside the model's numbers."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="PSNR / SSIM of a model or of ready outputs (the authors' protocol)",
                       description="Score a generator on a folder of rainy / clean pairs (--weights W --data "
                                   "DIR; --data alone: the kit's default model), or a folder of ready "
                                   "outputs against ground truth (--pred DIR --gt DIR).",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", metavar="W",
                   help="checkpoint: kit .pt, kit release .safetensors, the authors' gen.pkl, or a state "
                        "dict; with --data and no --weights: the kit's default model "
                        "(agan/weights/agan-synthetic.safetensors, trained on synthetic drops only)")
    p.add_argument("--data", metavar="DIR", help="DIR/{data,gt} or DIR/<split>/{data,gt} (test_a, test_b, "
                                                 "...); also rain/+clean/, input/+target/, input/+gt/")
    p.add_argument("--split", action="append", default=None, metavar="NAME",
                   help="evaluate only this split of --data (repeatable; default all but train)")
    p.add_argument("--pred", metavar="DIR", help="folder of ready outputs to score")
    p.add_argument("--gt", metavar="DIR", help="ground-truth folder for --pred")
    p.add_argument("--input", metavar="DIR", default="auto",
                   help="rainy inputs for the baseline with --pred (default: the inputs folder beside GT, "
                        "e.g. GT/../data for gt/, GT/../rain for clean/, when present; 'none' to skip)")
    p.add_argument("--cast", choices=("clip", "wrap"), default="clip", help="output -> uint8 (default clip)")
    p.add_argument("--color", choices=("y", "y-matlab", "rgb"), default="y",
                   help="channel scored (default y)")
    p.add_argument("--csv", metavar="PATH", help="write per-image scores to this CSV file")
    p.add_argument("--json", metavar="PATH", help="write the summary (protocol, means per split) as JSON")
    p.add_argument("--save-outputs", metavar="DIR", help="with --weights: also write the outputs as PNG here")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --csv / --json file or a non-empty --save-outputs folder")
    p.add_argument("--device", default="auto", help="auto (CUDA when present) | cpu | cuda | cuda:N")
    p.add_argument("--tile", type=int, default=None, metavar="N",
                   help="tile size for large images (0 = never)")
    p.add_argument("--precision", default="fp32", choices=("auto", "fp32", "bf16", "fp16"),
                   help="fp32 (default, so scores do not depend on the machine) | auto (bf16 on CPUs with "
                        "native bf16, fp16 on CUDA) | bf16 | fp16")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from agan.evaluation import evaluate_folders, evaluate_model, refuse_existing_outputs

    refuse_existing_outputs(args.csv, args.json, args.save_outputs, args.overwrite)  # before any work
    model_mode = args.weights is not None or args.data is not None
    folder_mode = args.pred is not None or args.gt is not None
    if model_mode == folder_mode:
        raise ValueError("give either --weights W --data DIR, or --pred DIR --gt DIR")
    if model_mode:
        if not args.data:
            raise ValueError("--weights and --data go together")
        weights = args.weights
        if weights is None:  # --data alone: the kit's packaged model
            from agan.infer.shipped import announce_default, default_weights

            weights = default_weights()
            announce_default(weights)
        result = evaluate_model(weights, args.data, splits=args.split, cast=args.cast, color=args.color,
                                device=args.device, tile=args.tile, precision=args.precision,
                                out_dir=args.save_outputs)
    else:
        if not (args.pred and args.gt):
            raise ValueError("--pred and --gt go together")
        for name in ("split", "save_outputs"):
            if getattr(args, name):
                raise ValueError(f"--{name.replace('_', '-')} needs --weights/--data")
        if args.cast != "clip":
            raise ValueError("--cast applies to model outputs; --pred images are already uint8")
        inp = None if str(args.input).lower() == "none" else args.input
        result = evaluate_folders(args.pred, args.gt, input_dir=inp, color=args.color)
    print(result.table())
    if args.csv:
        print(f"per-image scores: {result.to_csv(args.csv)}")
    if args.json:
        print(f"summary: {result.to_json(args.json)}")
    return 0
