"""Real raindrop photos with a clean reference: PSNR / SSIM of the rainy input and of the derained output.

    python benchmarks/real_pairs.py [--weights W] [--pairs DIR] [--out DIR] [--precision fp32] [--json FILE]

DIR (default: ../shared/real/train_pairs beside the repository) holds rainy photos and their clean
references in one of the paired layouts ``agan eval`` reads: data/+gt/ (Raindrop), rain/+clean/,
input/+target/ or input/+gt/, itself or in split folders; files pair by their leading number
(0_rain.png <-> 0_clean.png). Each photo is derained at full resolution by the public API
``agan.infer.pipeline.derain`` (no resizing), and both the input and the output are scored against the clean
photo with ``agan.evaluation.protocol.score_pair``: the authors' protocol (Qian et al., CVPR 2018, Sec. 6;
docs/paper.md#evaluation-protocol), i.e. top-left crop to a multiple of 4, Y channel, PSNR (data range
255) and SSIM (7x7 uniform window).
Without --weights, derain's default model is used (weights=None).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

DEFAULT_PAIRS = Path(__file__).resolve().parents[1].parent / "shared" / "real" / "train_pairs"


def fail(msg: str) -> int:
    print(f"real_pairs: error: {msg}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", metavar="W", default=None,
                    help="checkpoint: kit .pt, the authors' gen.pkl or a state dict (default: derain's own)")
    ap.add_argument("--pairs", metavar="DIR", default=str(DEFAULT_PAIRS),
                    help=f"folder of rainy / clean pairs (default: {DEFAULT_PAIRS})")
    ap.add_argument("--out", metavar="DIR", default=None,
                    help="also save the outputs here as N_derained.png (never overwrites a file)")
    ap.add_argument("--precision", default="fp32", choices=("auto", "fp32", "bf16", "fp16"),
                    help="inference precision (default fp32, so the numbers do not depend on the machine)")
    ap.add_argument("--json", metavar="FILE", default=None,
                    help="write the per-image and mean numbers here (an existing file is never overwritten)")
    args = ap.parse_args(argv)

    import numpy as np

    from agan.checkpoint import atomic_write_text
    from agan.data.layout import find_splits, pair_by_id
    from agan.evaluation.protocol import score_pair, to_uint8_output
    from agan.images import read_image, write_image
    from agan.infer.pipeline import derain

    pairs_dir = Path(args.pairs)
    if not pairs_dir.is_dir():
        return fail(f"{pairs_dir}: no such folder of real pairs (give --pairs DIR)")
    try:
        splits = find_splits(pairs_dir)
        pairs = [(s, k, rf, cf) for s, rd, cd in splits for k, rf, cf in pair_by_id(rd, cd, "rainy", "clean")]
    except (ValueError, OSError) as e:
        return fail(str(e))
    label = (lambda s, k: f"{s}/{k}") if len(splits) > 1 else (lambda s, k: str(k))
    out_dir = Path(args.out) if args.out else None
    targets = {(s, k): out_dir / (f"{s}/{k}_derained.png" if len(splits) > 1 else f"{k}_derained.png")
               for s, k, _, _ in pairs} if out_dir else {}
    for path in [*targets.values(), *([Path(args.json)] if args.json else [])]:  # refuse before any work
        if path.exists():
            return fail(f"{path}: exists (choose another --out / --json; nothing is overwritten)")

    print(f"real pairs: {len(pairs)} in {pairs_dir}; weights {args.weights or 'default'}, precision "
          f"{args.precision}; scored on Y, top-left crop to a multiple of 4")
    print(f"{'id':>6} {'size':>9}  {'input PSNR':>10} {'SSIM':>6}  {'output PSNR':>11} {'SSIM':>6}  "
          f"{'time':>6}")
    rows = []
    for s, k, rf, cf in pairs:
        try:
            rain, clean = read_image(rf), read_image(cf)  # uint8 HxWx3, full resolution
            if rain.shape != clean.shape:
                raise ValueError(f"{rf.name} ({rain.shape[1]}x{rain.shape[0]}) and {cf.name} "
                                 f"({clean.shape[1]}x{clean.shape[0]}): sizes differ")
            t0 = time.perf_counter()
            out, _ = derain(rain, weights=args.weights, precision=args.precision)  # full size, HxWx3
            seconds = time.perf_counter() - t0
            out = to_uint8_output(out, "clip")  # HxWx3 uint8
            ip, iss = score_pair(rain, clean)
            op, oss = score_pair(out, clean)
            if out_dir:
                write_image(targets[(s, k)], out, overwrite=False)
        except (ValueError, OSError, RuntimeError, KeyError, TypeError) as e:  # one line, no traceback
            return fail(str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__)
        rows.append({"id": label(s, k), "rain": rf.name, "clean": cf.name,
                     "size": [rain.shape[1], rain.shape[0]], "input_psnr": ip, "input_ssim": iss,
                     "psnr": op, "ssim": oss, "seconds": seconds})
        print(f"{label(s, k):>6} {rain.shape[1]:>4}x{rain.shape[0]:<4}  {ip:>7.2f} dB {iss:>6.4f}  "
              f"{op:>8.2f} dB {oss:>6.4f}  {seconds:>5.1f}s", flush=True)

    mean = {k: float(np.mean([r[k] for r in rows])) for k in ("input_psnr", "input_ssim", "psnr", "ssim")}
    mean["gain_db"] = mean["psnr"] - mean["input_psnr"]
    print(f"real pairs: input {mean['input_psnr']:.2f} dB / {mean['input_ssim']:.4f} -> "
          f"output {mean['psnr']:.2f} dB / {mean['ssim']:.4f} (gain {mean['gain_db']:+.2f} dB)")
    if args.json:
        def clean_inf(v):  # JSON has no inf; written as the string "inf" (as agan eval does)
            if isinstance(v, dict):
                return {a: clean_inf(b) for a, b in v.items()}
            if isinstance(v, list):
                return [clean_inf(b) for b in v]
            return str(v) if isinstance(v, float) and math.isinf(v) else v

        doc = {"pairs": str(pairs_dir), "weights": args.weights, "precision": args.precision,
               "protocol": {"color": "y", "cast": "clip", "crop": 4}, "n": len(rows), "mean": mean,
               "images": rows}
        atomic_write_text(args.json, json.dumps(clean_inf(doc), indent=2) + "\n")
        print(f"numbers: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
