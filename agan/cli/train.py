"""``agan train``: train Attentive GAN (or an ablation / baseline) from a preset; argument parsing only.

Also the entry point of ``python -m agan.train`` / ``torchrun --nproc_per_node=K -m agan.train``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DESCRIPTION = """\
Train the Attentive GAN of Qian et al. (CVPR 2018) or one of its ablations (paper Table 1).
Per step: a discriminator update (L_D with gamma*L_map) then a generator update
(L_G = 0.01*log(1-D(O)) + L_ATT + L_M + L_P, D frozen). Writes DIR/config.json, DIR/metrics.jsonl,
DIR/train.log, DIR/samples/*.png and DIR/checkpoints/{last.pt,generator.pt}.

Presets: cpu (narrow network, 64x64 crops, no L_P: ImageNet VGG16 cannot be downloaded offline;
~6-11 min on 2 CPU cores), paper (the paper's constants, docs/paper.md#losses; 224x224 crops, ImageNet
VGG16; for a GPU).
The paper gives no optimiser: the default is Adam (lr 5e-4, betas 0.5/0.99); --optimizer rmsprop
uses lr 2e-5 (G) / 1e-5 (D) with generator-only pre-training for the first 10% of the steps (change
with --set pretrain_steps=N).
Multi-GPU: torchrun --nproc_per_node=K -m agan.train <these options> (batch_size is per process).
"""

EPILOG = """\
examples:
  agan train --preset cpu                                   # ~6-11 min on a laptop, synthetic data
  agan train --preset paper --data /data/Raindrop --out runs/paper   # GPU, Raindrop folder layout
  agan train --preset cpu --variant A+D --set lr_g=1e-4 --set batch_size=8
  agan train --out runs/paper --resume --iterations 60000   # continue / extend a run
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default=None, help="cpu | paper (default cpu; with --resume: the run's own)")
    p.add_argument("--variant", default=None, help="A | A+D | A+AD | AA+AD (full model, default)")
    p.add_argument("--model", default=None, help="agan (default) | eigen13 | pix2pix (baselines)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="run directory (default runs/<preset>-<variant>-s<seed>)")
    p.add_argument("--data", default=None, metavar="DIR",
                   help="training data: 'synthetic' (default, rendered on the fly) or a folder in the "
                        "Raindrop layout")
    p.add_argument("--val-data", default=None, metavar="DIR",
                   help="held-out pairs folder (default: synthetic split)")
    p.add_argument("--real-val", default=None, nargs="+", metavar="DIR",
                   help="one or more folders of real rain/clean pairs (rain/+clean/, data/+gt/, "
                        "input/+target/ or input/+gt/; any size), each scored at full resolution at every "
                        "validation point and logged on its own, beside the synthetic split (e.g. "
                        "../shared/real/train_pairs ../shared/real/val_pairs)")
    p.add_argument("--iterations", type=int, default=None, metavar="N", help="total training steps")
    p.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    p.add_argument("--device", default=None, help="auto (CUDA when present) | cpu | cuda | cuda:N")
    p.add_argument("--precision", default=None,
                   help="auto (bf16/fp16 autocast on CUDA; bf16 on CPUs with native bf16, else fp32) | "
                        "fp32 | bf16 | fp16")
    p.add_argument("--optimizer", default=None, choices=["adam", "rmsprop"],
                   help="adam (lr 5e-4, betas 0.5/0.99) | rmsprop (lr 2e-5 G / 1e-5 D + G pre-training)")
    p.add_argument("--vgg-weights", default=None, metavar="W",
                   help="VGG16 for L_P: imagenet | random | path of vgg16-397923af.pth (also turns L_P on "
                        "where the preset has it off, as cpu does)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any config field, repeatable (e.g. --set batch_size=8 --set lambdas=[0.6,0.8,1])")
    p.add_argument("--resume", action="store_true", help="continue the run in DIR from checkpoints/last.pt")
    p.add_argument("--overwrite", action="store_true", help="replace a previous run in DIR")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (logs still go to DIR/train.log)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train Attentive GAN or an ablation (presets cpu | paper)",
                       description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.set_defaults(func=run)


def build_config(args: argparse.Namespace):
    """Config from preset (or the resumed run's config.json), then flags, then --set. A choice made by name
    brings what it implies (agan.config.implied_by: --optimizer its learning rates and, for rmsprop, G
    pre-training; --vgg-weights turns L_P on) where the same step does not set it; one line says so."""
    from agan.checkpoint import load_saved_config
    from agan.config import Config
    from agan.train.loop import run_name

    flags = {"variant": args.variant, "model": args.model, "data": args.data, "val_data": args.val_data,
             "real_val": (None if args.real_val is None else args.real_val[0] if len(args.real_val) == 1
                          else tuple(args.real_val)), "iterations": args.iterations, "seed": args.seed,
             "device": args.device, "precision": args.precision, "optimizer": args.optimizer,
             "vgg_weights": args.vgg_weights}
    flags = {k: v for k, v in flags.items() if v is not None}
    base = Config.preset(args.preset or "cpu")
    out = Path(args.out) if args.out else None
    if out is None:
        named = {k: v for k, v in flags.items() if k in ("variant", "model", "seed")}
        out = Path("runs") / run_name(base.replace(**named))
    saved = out / "config.json"
    if args.resume and saved.is_file():
        old = load_saved_config(saved)
        if args.preset and args.preset != old.name:
            raise ValueError(f"{out} holds a run of preset {old.name!r}, not {args.preset!r}")
        base = old
    cfg = _choose(base, flags, lambda key: f"--{key.replace('_', '-')} {flags[key]}")
    sets = Config.parse_overrides(args.set)
    return _choose(cfg, sets, lambda key: f"--set {key}={sets[key]}"), out


def _choose(cfg, changes: dict, named):
    """``cfg`` with ``changes`` and what they imply; one line per choice that implied something."""
    from agan.config import implied_by

    implied = implied_by(cfg, changes)
    for key, fields in implied.items():
        print(f"{named(key)}: " + ", ".join(f"{k}={v}" for k, v in fields.items()))
    return cfg.replace(**changes, **{k: v for fields in implied.values() for k, v in fields.items()})


def run(args: argparse.Namespace) -> int:
    from agan.train.loop import train

    cfg, out = build_config(args)
    result = train(cfg, out, resume=args.resume, progress=not args.no_progress, overwrite=args.overwrite)
    if result.interrupted:
        print(f"agan train: interrupted at step {result.step}; resume with: "
              f"agan train --out {result.out_dir} --resume", file=sys.stderr)
        return 130
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m agan.train`` / torchrun entry: the same options as ``agan train``."""
    from agan.cli import main as cli_main

    return cli_main(["train", *(sys.argv[1:] if argv is None else argv)])
