"""Peak memory (RSS) of inference: a whole 480x720 image, and a 4K image (3840x2160) through tiles.

    python benchmarks/bench_memory.py [--cases 480x720:plain,480x720:fp32,480x720:bf16,4k:bf16] [--tile 512]

Each case runs in a fresh subprocess (so peaks do not mix), which reports its own peak RSS (VmHWM,
imports and model included; ``ru_maxrss`` is avoided: on Linux a child inherits its parent's value).
Whole images run ``G`` (plain) or ``agan.accel.fast.FastGenerator`` (fp32 / bf16); the 4K case goes
through ``agan.infer.pipeline.derain_tensor(tile=...)`` with the forward ``agan derain`` runs, which runs
each tile through ``agan.accel.fast.fast_forward`` (``plain``: G's own forward). Targets (issue 7): <= 1 GB
at 480x720, <= 1.5 GB for 4K through tiles. Random-init paper-width generator; memory does not depend on
the weights.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

WORKER = r"""
import sys, json, time, torch
from agan.models import Generator
case, prec, tile = sys.argv[1], sys.argv[2], int(sys.argv[3])
torch.manual_seed(0)
G = Generator().eval()
t0 = time.perf_counter()
if case == "4k":
    import functools
    from agan.accel.fast import fast_forward
    from agan.infer.pipeline import derain_tensor
    x = torch.rand(1, 3, 2160, 3840)
    forward = None if prec == "plain" else functools.partial(fast_forward, precision=prec)
    O, maps = derain_tensor(G, x, tile=tile, device="cpu", forward=forward)
else:
    h, w = map(int, case.split("x"))
    x = torch.rand(1, 3, h, w)
    if prec == "plain":
        with torch.inference_mode():
            G(x)
    else:
        from agan.accel.fast import FastGenerator
        FastGenerator(G, precision=prec)(x)
from agan.experiments.bench import peak_rss_mb
print(json.dumps({"seconds": time.perf_counter() - t0, "peak_rss_mb": peak_rss_mb()}))
"""


def run_case(case: str, precision: str, tile: int) -> dict:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", WORKER, case, precision, str(tile)], capture_output=True,
                         text=True, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])  # the worker's own getrusage(RUSAGE_SELF) peak
    return {"case": case, "precision": precision, "tile": tile if case == "4k" else None,
            "peak_rss_mb": res["peak_rss_mb"], "seconds": res["seconds"],
            "wall_with_startup_s": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default="480x720:plain,480x720:fp32,480x720:bf16,4k:bf16",
                    help="comma-separated SIZE:PRECISION (SIZE = HxW or 4k; PRECISION = plain|fp32|bf16)")
    ap.add_argument("--tile", type=int, default=512, help="tile size for the 4k case")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    results = []
    for item in args.cases.split(","):
        case, prec = item.split(":")
        r = run_case(case, prec, args.tile)
        results.append(r)
        if not args.json:
            print(f"{case:>9} {prec:<6} tile={r['tile']}: peak RSS {r['peak_rss_mb']:.0f} MB, "
                  f"{r['seconds']:.1f} s", flush=True)
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
