"""Do no harm: photos without a single raindrop, derained, against themselves.

    python benchmarks/bench_clean.py [--weights W] [--real DIR] [--no-real] [--precision fp32] [--json FILE]

A model that leaves drop-free pixels alone returns each photo within >= 40 dB PSNR (Y, the authors' protocol:
``agan.evaluation.protocol.score_pair``) of itself, with its mean Y shifted by at most 1 grey level. Photos:
- the clean shots of the real pairs (``DIR/*/clean``, default ../shared/real beside the repository, when it
  exists: never bundled, never trained on);
- scikit-image's colour sample photos with a free licence (astronaut, coffee, chelsea, rocket),
  none of which is among the synthesiser's bundled backgrounds.
Each is derained whole by the public ``agan.infer.pipeline.derain`` with the weights' own settings (size,
smooth, blend), as ``agan derain`` does. Prints one line per photo, then the worst and the count that pass.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_REAL = Path(__file__).resolve().parents[1].parent / "shared" / "real"
SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
MIN_PSNR, MAX_SHIFT = 40.0, 1.0


def photos(real: Path | None):
    """(name, HxWx3 uint8) of every clean photo: the real pairs' clean shots, then scikit-image's."""
    from agan.images import read_image

    if real is not None and real.is_dir():
        for f in sorted(p for p in real.glob("*/clean/*") if p.suffix.lower() in (".png", ".jpg", ".jpeg")):
            yield str(f.relative_to(real)), read_image(f)
    import skimage.data

    for name in SKIMAGE_PHOTOS:
        img = getattr(skimage.data, name)()
        if img.ndim == 3 and img.shape[2] == 3:
            yield f"skimage.data.{name}", img


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=None, help="generator weights (default: the kit's shipped model)")
    ap.add_argument("--real", default=str(DEFAULT_REAL), help="folder whose */clean/ photos are used")
    ap.add_argument("--no-real", action="store_true", help="only scikit-image's photos")
    ap.add_argument("--precision", default="fp32", choices=("auto", "fp32", "bf16", "int8"),
                    help="inference precision (default fp32: the numbers do not depend on the machine)")
    ap.add_argument("--json", default=None, help="also write the rows here (never overwrites a file)")
    args = ap.parse_args(argv)

    from agan.evaluation.protocol import score_pair
    from agan.infer.pipeline import derain

    rows = []
    for name, img in photos(None if args.no_real else Path(args.real)):
        out, _ = derain(img, weights=args.weights, precision=args.precision)
        psnr, _ = score_pair(out, img)
        y = (img.astype(np.float64) @ [0.299, 0.587, 0.114], out.astype(np.float64) @ [0.299, 0.587, 0.114])
        shift = float(y[1].mean() - y[0].mean())
        ok = psnr >= MIN_PSNR and abs(shift) <= MAX_SHIFT
        rows.append({"photo": name, "psnr": psnr, "mean_y_shift": shift, "ok": ok})
        print(f"{name:48s} {psnr:6.2f} dB  mean Y {shift:+5.2f}  {'ok' if ok else 'CHANGED'}", flush=True)
    if not rows:
        print("bench_clean: no photos", file=sys.stderr)
        return 2
    worst = min(rows, key=lambda r: r["psnr"])
    print(f"clean photos: {sum(r['ok'] for r in rows)} of {len(rows)} within >= {MIN_PSNR:.0f} dB and "
          f"|mean Y shift| <= {MAX_SHIFT:.0f}; worst {worst['psnr']:.2f} dB ({worst['photo']}); mean |shift| "
          f"{np.mean([abs(r['mean_y_shift']) for r in rows]):.2f}")
    if args.json:
        path = Path(args.json)
        if path.exists():
            print(f"bench_clean: {path} exists; not overwritten", file=sys.stderr)
            return 2
        path.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
