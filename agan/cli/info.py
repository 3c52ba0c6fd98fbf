"""``agan info``: model summary (parameters per sub-network, GFLOPs at a given size)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="model summary: parameters and GFLOPs of G and D",
                       description="Print parameter counts of the generator and discriminator for a "
                                   "preset (and the variant's sub-networks) and the generator's GFLOPs at "
                                   "the given sizes (torch's flop counter, one forward pass, batch 1).")
    p.add_argument("--preset", default="paper", help="config preset (paper | cpu), default paper")
    p.add_argument("--model", default="agan", choices=("agan", "eigen13", "pix2pix"),
                   help="agan (default) or a Table 1 baseline: eigen13 (Eigen et al. 2013), "
                        "pix2pix (U-Net + PatchGAN)")
    p.add_argument("--variant", default=None, help="A | A+D | A+AD | AA+AD (default: the preset's)")
    p.add_argument("--size", action="append", default=None, metavar="HxW",
                   help="image size for the FLOP count, repeatable (default 224x224 and 480x720)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from agan.config import Config
    from agan.models.summary import model_summary, parse_size

    cfg = Config.preset(args.preset, model=args.model, **({"variant": args.variant} if args.variant else {}))
    sizes = [parse_size(s) for s in (args.size or ["224x224", "480x720"])]
    info = model_summary(cfg, sizes)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    arn = f" (ARN {cfg.arn_width})" if cfg.arn_width is not None and cfg.arn_width != cfg.width else ""
    if cfg.model == "agan":
        print(f"preset {cfg.name}, variant {cfg.variant}, width {cfg.width}{arn}, steps {cfg.steps}")
    else:
        print(f"preset {cfg.name}, model {cfg.model}, width {cfg.width}")
    for name, n in info["parameters"].items():
        print(f"  {name:<32} {n:>12,d} parameters")
    for s, g in info["gflops"].items():
        print(f"  generator GFLOPs at {s:<12} {g:>10.1f}")
    return 0
