"""``agan synth``: render N synthetic raindrop pairs in the Raindrop dataset layout."""

from __future__ import annotations

import argparse

HELP_PARAMS = ("physical parameter override, repeatable: NAME=LO,HI (a range) or NAME=V (fixed), e.g. "
               "coverage=0.1,0.3  tilt_deg=30  radius_mm=1,4  f_number=8,16  merge_prob=0. "
               "Names: see `python -c 'import agan.synth.params as s; help(s.SynthParams)'`")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth", help="render synthetic raindrop pairs (rainy, clean, mask) with exact masks",
        description="Render N pairs with the physically based raindrop renderer (drops on a glass pane "
                    "in front of the lens: refraction, total internal reflection, defocus). Writes "
                    "DIR/data/N_rain.png, DIR/gt/N_clean.png (the Raindrop dataset layout, readable by "
                    "training with --data DIR), DIR/mask/N_mask.png (binary drop footprint) and "
                    "DIR/params.json (global and per-image sampled parameters). Pair i depends only on "
                    "(seed, i, size, parameters, backgrounds): it equals item i of the on-the-fly "
                    "synthetic training set made with the same values.")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (must be empty or new)")
    p.add_argument("--n", type=int, default=100, metavar="N", help="number of pairs (default 100)")
    p.add_argument("--size", default="224", metavar="S|HxW", help="image size: S (square) or HxW, "
                   "e.g. 480x720 (default 224)")
    p.add_argument("--seed", type=int, default=0, metavar="K", help="random seed (default 0)")
    p.add_argument("--backgrounds", default=None, metavar="DIR",
                   help="folder of clean photos to use as backgrounds (e.g. a Raindrop gt/ folder); "
                        "default: scikit-image's bundled photos + procedural scenes")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help=HELP_PARAMS)
    p.add_argument("--overwrite", action="store_true",
                   help="write into a non-empty DIR (old N_rain/N_clean/N_mask files there are removed)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from agan.data.datasets import write_synthetic
    from agan.models.summary import parse_size
    from agan.synth import SynthParams

    params = SynthParams().override(args.param)
    summary = write_synthetic(args.out, n=args.n, size=parse_size(args.size, min_side=8), seed=args.seed,
                              params=params, backgrounds=args.backgrounds, overwrite=args.overwrite,
                              progress=True)
    print(f"wrote {summary['n']} pairs ({summary['size'][0]}x{summary['size'][1]}) to {summary['out']}: "
          f"data/ gt/ mask/ params.json; mean drop coverage {summary['mean_coverage']:.3f}, "
          f"mean difference-mask coverage {summary['mean_diff_coverage']:.3f}")
    return 0
