"""Before/after gallery of real raindrop photos, and paper Fig. 3 drawn on a real pair.

    python benchmarks/real_gallery.py [--weights W] [--real DIR] [--out runs/real_gallery] [--n-unpaired 8]

Draws, with ``agan.infer.derain`` and the weights' own settings (the kit's shipped model by default):
    fig3_real.png         Fig. 3 on the first val_pairs pair: I, A_1..A_N, the paper's M
                          (|rain - clean| >= 30) and O; the IoU of each A_t >= 0.5 with M in the title;
    val_pairs.png         every val_pairs pair: rainy, derained, clean, and |derained - rainy| x 4;
    unpaired.png          up to --n-unpaired photos of ../shared/real/unpaired (alternating folders): rainy,
                          derained.
The photos are not part of the repository (they carry no licence): the figures go to --out (default under
runs/, which git ignores) and are never committed. Without ../shared/real the script says so and exits 2.
"""

from __future__ import annotations

import argparse
import sys
from itertools import zip_longest
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_REAL = Path(__file__).resolve().parents[1].parent / "shared" / "real"


def _pairs(folder: Path):
    from agan.data.layout import pair_by_id
    from agan.images import read_image

    if not (folder / "rain").is_dir():
        return []
    return [(rf.name, read_image(rf), read_image(cf))
            for _, rf, cf in pair_by_id(folder / "rain", folder / "clean", "rainy", "clean")]


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=None, help="generator weights (default: the kit's shipped model)")
    ap.add_argument("--real", default=str(DEFAULT_REAL), help="real-photo folder (default ../shared/real)")
    ap.add_argument("--out", default="runs/real_gallery", help="output folder (default runs/real_gallery)")
    ap.add_argument("--n-unpaired", type=int, default=8, help="unpaired photos shown (default 8)")
    args = ap.parse_args(argv)
    real = Path(args.real)
    if not real.is_dir():
        print(f"real_gallery: no {real} (real photos are never bundled); nothing drawn", file=sys.stderr)
        return 2

    from agan.experiments.attention import attention_scores
    from agan.images import difference_mask, list_images, read_image
    from agan.infer.pipeline import derain
    from agan.viz.plots import attention_strip, image_grid

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    val = _pairs(real / "val_pairs")
    rows = []
    for k, (name, rain, clean) in enumerate(val):
        O, maps = derain(rain, weights=args.weights)  # uint8 (H, W, 3); A_1..A_N (H, W)
        if k == 0 and maps:  # Fig. 3 on a real pair
            M = difference_mask(rain, clean)[0].numpy().astype(bool)  # (H, W)
            iou, _ = attention_scores(np.stack(maps), M)
            title = (f"val_pairs/{name}: IoU of A_t >= 0.5 with M, t = 1..{len(maps)}: "
                     + " ".join(f"{v:.2f}" for v in iou))
            _save(attention_strip(rain, maps, mask=M.astype(np.float32), output=O, ax_size=2.6, title=title),
                  out / "fig3_real.png")
        change = np.clip(np.abs(O.astype(np.int16) - rain.astype(np.int16)) * 4, 0, 255).astype(np.uint8)
        rows.append([rain, O, clean, change])
    if rows:
        _save(image_grid(rows, col_titles=["rainy", "derained", "clean", "|change| x 4"],
                         row_titles=[n for n, _, _ in val], ax_size=(3.6, 2.4)), out / "val_pairs.png")
    folders = sorted(d for d in (real / "unpaired").glob("*") if d.is_dir())
    photos = [p for group in zip_longest(*(list_images(d) for d in folders)) for p in group if p is not None]
    shown = []
    for path in photos[: args.n_unpaired]:
        rain = read_image(path)
        shown.append((f"{path.parent.name}/{path.name}", [rain, derain(rain, weights=args.weights)[0]]))
    if shown:
        _save(image_grid([r for _, r in shown], col_titles=["rainy", "derained"],
                         row_titles=[n for n, _ in shown], ax_size=(4.0, 2.7)), out / "unpaired.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
