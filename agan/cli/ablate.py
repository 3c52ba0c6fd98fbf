"""``agan ablate``: paper Table 1 from one command (six rows x seeds); argument parsing only."""

from __future__ import annotations

import argparse
import sys

DESCRIPTION = """\
Reproduce Table 1 of Qian et al. (CVPR 2018): train the six rows Eigen13, Pix2Pix, A, A+D, A+AD and
AA+AD with the same preset, data, iterations and seeds, score each on one held-out split with the
authors' protocol (crop to a multiple of 4, Y channel, PSNR / SSIM), and write OUT/table1.csv and
OUT/table1.md: the paper's numbers beside the kit's mean +- std over seeds, plus the rainy input
itself (identity baseline). Held-out split: a synthetic set rendered once into OUT/heldout (a seed
of its own), or --test DIR (Raindrop test_a: DIR/{data,gt}, or a dataset root holding test_a/).

Resumable: each row/seed writes OUT/<row>/s<seed>/results.json when done; running the same command
again skips finished rows and continues an interrupted one from its last checkpoint. A larger
--iterations continues the finished runs from their checkpoints.
"""

EPILOG = """\
examples:
  agan ablate --preset cpu --seeds 1 --out runs/ablation-cpu           # CPU budget, synthetic data
  agan ablate --preset cpu --seeds 3 --iterations 300 --rows A,A+D     # a quick subset
  agan ablate --preset paper --seeds 3 --data /data/Raindrop --test /data/Raindrop/test_a --out runs/table1
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ablate", help="paper Table 1: train and evaluate the six ablation rows, mean +- std",
                       description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="cpu", choices=("cpu", "paper"),
                   help="config preset for every row (default cpu)")
    p.add_argument("--seeds", type=int, default=3, metavar="N", help="seeds 0..N-1 per row (default 3)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (default runs/ablation-<preset>)")
    p.add_argument("--rows", default=None, metavar="R1,R2",
                   help="comma-separated subset of Eigen13,Pix2Pix,A,A+D,A+AD,AA+AD (default all six)")
    p.add_argument("--data", default=None, metavar="DIR",
                   help="training data: a Raindrop-layout folder (default: the preset's, synthetic)")
    p.add_argument("--test", default=None, metavar="DIR",
                   help="held-out folder with data/ and gt/ (Raindrop test_a), or a root holding test_a/ "
                        "(default: a synthetic held-out split in OUT/heldout)")
    p.add_argument("--iterations", type=int, default=None, metavar="N",
                   help="training steps per run (default: the preset's)")
    # light: no torch at import; the defaults are stated from the source
    from agan.experiments.heldout import HELDOUT

    (cn, (ch, cw)), (pn, (ph, pw)) = HELDOUT["cpu"], HELDOUT["paper"]
    p.add_argument("--heldout-count", type=int, default=None, metavar="N",
                   help=f"pairs in the synthetic held-out split (default {cn} for cpu, {pn} for paper)")
    p.add_argument("--heldout-size", default=None, metavar="HxW",
                   help=f"size of the synthetic held-out images "
                        f"(default {ch}x{cw} for cpu, {ph}x{pw} for paper)")
    p.add_argument("--device", default=None, help="auto (CUDA when present) | cpu | cuda | cuda:N")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a config field for every row, repeatable (e.g. --set batch_size=8)")
    p.add_argument("--overwrite", action="store_true",
                   help="retrain the rows whose saved config differs from this call (instead of refusing); "
                        "finished rows with the same config are always kept")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from agan.experiments.ablate import run_ablation
    from agan.models.summary import parse_size

    rows = [r.strip() for r in args.rows.split(",") if r.strip()] if args.rows else None
    size = parse_size(args.heldout_size) if args.heldout_size else None
    if args.heldout_count is not None and args.heldout_count < 1:
        raise ValueError(f"--heldout-count must be >= 1, got {args.heldout_count}")
    out = args.out or f"runs/ablation-{args.preset}"
    try:
        table = run_ablation(args.preset, args.seeds, out, rows=rows, data=args.data, test=args.test,
                             iterations=args.iterations, overrides=args.set, device=args.device,
                             heldout_count=args.heldout_count, heldout_size=size, overwrite=args.overwrite,
                             progress=not args.no_progress)
    except KeyboardInterrupt:
        print(f"agan ablate: interrupted; run the same command again to continue "
              f"(finished rows in {out} are kept)", file=sys.stderr)
        return 130
    print(table.markdown)
    print(f"wrote {table.csv_path}, {table.md_path} and {table.json_path}")
    return 0
