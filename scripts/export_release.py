"""Export a finished training run as the kit's default model: fp16 safetensors + JSON sidecar + MODEL_CARD.md.

    python scripts/export_release.py runs/agan-synthetic                 # -> agan/weights/agan-synthetic.*
    python scripts/export_release.py RUN_DIR --out agan/weights --overwrite --failures failures.md

Reads RUN_DIR/checkpoints/generator.pt (the G the run validated), RUN_DIR/config.json and
RUN_DIR/metrics.jsonl (its 'run' and 'done' rows: device, precision, iterations, wall time; its last 'val' and
'real' rows: scores); records this machine (platform, CPU model from /proc/cpuinfo; --machine to describe
another). Uses agan.release (export and card) and agan.infer.shipped (the release format). Never replaces an
existing file without --overwrite. Exit status 2 with one line on any error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", metavar="RUN_DIR", help="a finished training run (agan train --out RUN_DIR)")
    p.add_argument("--out", default=str(ROOT / "agan" / "weights"), metavar="DIR",
                   help="where the release goes (default: the package's agan/weights)")
    p.add_argument("--name", default="agan-synthetic", help="file stem (default agan-synthetic)")
    p.add_argument("--failures", metavar="FILE", default=None,
                   help="markdown snippet for the card's 'Known failure cases' section "
                        "(default: see the docs)")
    p.add_argument("--machine", default=None, metavar="TEXT",
                   help="describe the training machine when this is not it "
                        "(default: this machine's CPU model)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing release of that name")
    p.add_argument("--measure", type=int, default=12, metavar="N",
                   help="score the exported file on N synthetic 480x720 frames (and --real) for the card; "
                        "0 = skip")
    p.add_argument("--real", default=os.path.relpath(ROOT.parent / "shared" / "real" / "train_pairs"),
                   metavar="DIR",
                   help="real rain/clean pairs scored for the card when the folder exists "
                        "(default ../shared/real/train_pairs; never needed)")
    args = p.parse_args(argv)

    from agan.checkpoint import CheckpointError, atomic_write_text
    from agan.infer.shipped import sidecar_path
    from agan.release import MAX_BYTES, export_release, measure_release, render_model_card, run_card_fields

    try:
        run_dir, out = Path(args.run_dir), Path(args.out)
        card = out / "MODEL_CARD.md"
        if card.exists() and not args.overwrite:
            raise FileExistsError(f"{card}: exists (use --overwrite to replace it)")
        failures = Path(args.failures).read_text(encoding="utf-8") if args.failures else ""
        fields = run_card_fields(run_dir)
        if args.machine:
            fields["machine"] = {**fields["machine"], "cpu": args.machine, "described": "by --machine"}
        weights = export_release(run_dir / "checkpoints" / "generator.pt", out, fields, name=args.name,
                                 overwrite=args.overwrite)
        info = json.loads(sidecar_path(weights).read_text(encoding="utf-8"))
        if args.measure:  # the card's numbers, measured on the exported file itself
            info["measured"] = measure_release(weights, args.real or None, n_synthetic=args.measure)
            atomic_write_text(sidecar_path(weights), json.dumps(info, indent=2) + "\n")
        atomic_write_text(card, render_model_card(info, failures))
    except (CheckpointError, OSError, ValueError) as e:
        print(f"export_release: error: {e}", file=sys.stderr)
        return 2
    size = weights.stat().st_size
    print(f"{weights} ({size / 1e6:.2f} MB, sha256 {info['sha256']}), {sidecar_path(weights)}, {card}")
    if size > MAX_BYTES:
        print(f"export_release: warning: {weights} is over {MAX_BYTES / 2**20:.0f} MiB, more than the "
              f"repository takes", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
