"""Does the attention find real drops? IoU of A_t >= 0.5 with the paper's mask M on real pairs and synthetic.

    python benchmarks/real_attention.py [--weights W] [--real DIR] [--synthetic 16] [--json FILE]

Real pairs: every rain/clean pair under DIR (default ../shared/real beside the repository: train_pairs and
val_pairs, each scored on its own; never bundled). M is the paper's rule for aligned pairs,
|rain - clean| >= 30 in any channel (``agan.images.difference_mask``; docs/paper.md#raindrop-mask).
Synthetic: frames rendered by ``agan.synth.make_pair`` at 240x360 (seed 3000, not a training seed) with M the
drawn drop layer, as Fig. 3 scores it. The maps come from the public ``agan.infer.pipeline.derain`` with the
weights' own settings (G runs at their scale; the maps are enlarged to the photo): the maps that
``agan derain --save-attention`` writes. Prints per image the IoU of A_1..A_N
(``agan.experiments.attention.attention_scores``), the coverage of M and of A_N >= 0.5, then the mean per set.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_REAL = Path(__file__).resolve().parents[1].parent / "shared" / "real"


def score(name: str, rain: np.ndarray, mask: np.ndarray, weights: str | None) -> dict:
    from agan.experiments.attention import ATTENTION_THRESHOLD, attention_scores
    from agan.infer.pipeline import derain

    _, maps = derain(rain, weights=weights)  # A_1..A_N, each (H, W) at the photo's size
    if not maps:
        raise SystemExit("real_attention: these weights have no attention maps (variant A or a baseline)")
    iou, _ = attention_scores(np.stack(maps), mask)
    row = {"image": name, "iou": iou.round(4).tolist(), "mask_coverage": float(mask.mean()),
           "attention_coverage": float((maps[-1] >= ATTENTION_THRESHOLD).mean())}
    print(f"{name:40s} IoU A_1..A_N {' '.join(f'{v:.3f}' for v in iou)}   M {row['mask_coverage']:.3f}  "
          f"A_N>=0.5 {row['attention_coverage']:.3f}", flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=None, help="generator weights (default: the kit's shipped model)")
    ap.add_argument("--real", default=str(DEFAULT_REAL), help="folder whose */rain + */clean pairs are used")
    ap.add_argument("--synthetic", type=int, default=16, help="synthetic 240x360 frames (default 16)")
    ap.add_argument("--json", default=None, help="also write the rows here (never overwrites a file)")
    args = ap.parse_args(argv)

    from agan.data.datasets import DROP_MASK_ALPHA
    from agan.data.layout import pair_by_id
    from agan.images import difference_mask, read_image
    from agan.synth import make_pair

    sets: dict[str, list[dict]] = {}
    real = Path(args.real)
    for folder in sorted(p for p in real.glob("*") if (p / "rain").is_dir() and (p / "clean").is_dir()):
        for _, rf, cf in pair_by_id(folder / "rain", folder / "clean", "rainy", "clean"):
            rain, clean = read_image(rf), read_image(cf)
            m = difference_mask(rain, clean)[0].numpy().astype(bool)  # (H, W), |rain - clean| >= 30
            sets.setdefault(folder.name, []).append(score(f"{folder.name}/{rf.name}", rain, m, args.weights))
    for i in range(args.synthetic):
        res = make_pair(3000, i, (240, 360))
        sets.setdefault("synthetic", []).append(
            score(f"synthetic 3000 #{i}", res.rain, res.alpha >= DROP_MASK_ALPHA, args.weights))
    if not sets:
        print("real_attention: nothing to score", file=sys.stderr)
        return 2
    print()
    for name, rows in sets.items():
        iou = np.mean([r["iou"] for r in rows], axis=0)
        print(f"{name}: {len(rows)} images, mean IoU A_1..A_N {' '.join(f'{v:.3f}' for v in iou)}; mean M "
              f"{np.mean([r['mask_coverage'] for r in rows]):.3f}, A_N>=0.5 "
              f"{np.mean([r['attention_coverage'] for r in rows]):.3f}")
    if args.json:
        path = Path(args.json)
        if path.exists():
            print(f"real_attention: {path} exists; not overwritten", file=sys.stderr)
            return 2
        path.write_text(json.dumps(sets, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
