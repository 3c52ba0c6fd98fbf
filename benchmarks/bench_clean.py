"""Do no harm: photos without a single raindrop, derained, against themselves.

    python benchmarks/bench_clean.py [--weights W] [--real DIR] [--no-real] [--photos DIR] [--precision fp32]
        [--json FILE]

A model that leaves drop-free pixels alone returns each photo within >= 40 dB PSNR (Y, the authors'
protocol: ``agan.evaluation.protocol.score_pair``) of itself, with its mean Y shifted by at most 1 grey level.
Photos, in three groups:
- "real clean shots": the clean shots of the real pairs (``DIR/*/clean``, default ../shared/real beside the
  repository, when it exists: never bundled, never trained on);
- "never trained on": free-licence photos that are not among the synthesiser's backgrounds: matplotlib's
  sample photo grace_hopper.jpg (public domain) and any photos under ``--photos DIR``;
- "training backgrounds": scikit-image's colour photos (astronaut, coffee, chelsea, rocket), which the
  synthesiser draws drops onto (``agan.synth.backgrounds.SKIMAGE_PHOTOS``): seen in training, never without
  drops. Reported apart; the pass count is over the first two groups.
Each is derained whole by the public ``agan.infer.pipeline.derain`` with the weights' own settings (size,
smooth, blend), as ``agan derain`` does; G runs by its own forward at --precision (autocast), or for int8 by
``agan.accel``'s int8 forward, as ``agan derain --precision int8``. Prints one line per photo, then per
group the worst and the count that pass.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_REAL = Path(__file__).resolve().parents[1].parent / "shared" / "real"
MIN_PSNR, MAX_SHIFT = 40.0, 1.0


def photos(real: Path | None, extra: Path | None):
    """(group, name, HxWx3 uint8) of every clean photo (module docstring)."""
    import matplotlib.cbook
    import skimage.data

    from agan.images import read_image
    from agan.synth.backgrounds import SKIMAGE_PHOTOS

    def files(folder: Path, pattern: str):
        return sorted(p for p in folder.glob(pattern) if p.suffix.lower() in (".png", ".jpg", ".jpeg"))

    if real is not None and real.is_dir():
        for f in files(real, "*/clean/*"):
            yield "real clean shots", str(f.relative_to(real)), read_image(f)
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        yield "never trained on", "matplotlib grace_hopper.jpg", read_image(f.name)
    for f in files(extra, "**/*") if extra is not None else []:
        yield "never trained on", str(f), read_image(f)
    for name in SKIMAGE_PHOTOS:
        img = getattr(skimage.data, name, None)
        img = img() if img is not None else None
        if img is not None and img.ndim == 3 and img.shape[2] == 3:
            yield "training backgrounds", f"skimage.data.{name}", img


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=None, help="generator weights (default: the kit's shipped model)")
    ap.add_argument("--real", default=str(DEFAULT_REAL), help="folder whose */clean/ photos are used")
    ap.add_argument("--no-real", action="store_true", help="skip the real pairs' clean shots")
    ap.add_argument("--photos", default=None, help="a folder of more drop-free photos never trained on")
    ap.add_argument("--precision", default="fp32", choices=("auto", "fp32", "bf16", "int8"),
                    help="inference precision (default fp32: the numbers do not depend on the machine; auto: "
                         "bf16 on CPUs with native bf16, else fp32)")
    ap.add_argument("--json", default=None, help="also write the rows here (never overwrites a file)")
    args = ap.parse_args(argv)
    if args.json and Path(args.json).exists():
        print(f"bench_clean: {args.json} exists; not overwritten", file=sys.stderr)
        return 2

    from agan.evaluation.protocol import score_pair
    from agan.infer.pipeline import derain

    run = {"precision": args.precision}
    if args.precision == "int8":  # the plain path has no int8: agan.accel's forward, as agan derain runs it
        from agan.accel.int8 import int8_forward
        from agan.accel.toolchain import require

        require()  # torchao, oneDNN, a C++ compiler: one line naming what is missing
        run = {"forward": int8_forward}
    rows = []
    real = None if args.no_real else Path(args.real)
    for group, name, img in photos(real, Path(args.photos) if args.photos else None):
        out, _ = derain(img, weights=args.weights, **run)
        psnr, _ = score_pair(out, img)
        y_in, y_out = (a.astype(np.float64) @ [0.299, 0.587, 0.114] for a in (img, out))
        shift = float(y_out.mean() - y_in.mean())
        ok = psnr >= MIN_PSNR and abs(shift) <= MAX_SHIFT
        rows.append({"group": group, "photo": name, "psnr": psnr, "mean_y_shift": shift, "ok": ok})
        print(f"{group:20s} {name:40s} {psnr:6.2f} dB  mean Y {shift:+5.2f}  {'ok' if ok else 'CHANGED'}",
              flush=True)
    for group in dict.fromkeys(r["group"] for r in rows):
        g = [r for r in rows if r["group"] == group]
        worst = min(g, key=lambda r: r["psnr"])
        print(f"{group}: {sum(r['ok'] for r in g)} of {len(g)} within >= {MIN_PSNR:.0f} dB and "
              f"|mean Y shift| <= {MAX_SHIFT:.0f}; worst {worst['psnr']:.2f} dB ({worst['photo']}); "
              f"mean |shift| {np.mean([abs(r['mean_y_shift']) for r in g]):.2f}")
    unseen = [r for r in rows if r["group"] != "training backgrounds"]
    print(f"photos never trained on: {sum(r['ok'] for r in unseen)} of {len(unseen)} pass")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
