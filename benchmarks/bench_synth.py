"""Throughput of the raindrop renderer: pairs per second on ONE core (target >= 50 at 224x224).

    python benchmarks/bench_synth.py [--size 224] [--n 200] [--seed 0]

Times ``agan.synth.renderer.make_pair`` (background crop + jitter + ray-traced drops + defocus + masks) and,
separately, the dataset item (the same plus uint8 -> float tensors and the mask M of
docs/paper.md#raindrop-mask).  The procedural background bank and scikit-image photos are warmed up
first (a one-off cost).
"""

from __future__ import annotations

import argparse
import os
import time

# one core: BLAS/OpenMP pools (numpy, scipy.fft) and torch
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import numpy as np  # noqa: E402  (after the thread settings above)
import torch  # noqa: E402

from agan.data.datasets import SyntheticRaindrops  # noqa: E402
from agan.synth.backgrounds import N_PROCEDURAL, _default_source, _procedural_bank  # noqa: E402
from agan.synth.renderer import make_pair  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    for k in range(N_PROCEDURAL):
        _procedural_bank(k)
    _default_source()
    make_pair(args.seed, 0, args.size)
    print(f"warm-up (background bank of {N_PROCEDURAL} scenes + photos): "
          f"{time.perf_counter() - t0:.2f} s")

    n_drops, t0, c0 = [], time.perf_counter(), time.process_time()
    for i in range(args.n):
        n_drops.append(make_pair(args.seed, i, args.size).params["n_drops"])
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"make_pair {args.size}x{args.size}: {args.n / wall:.1f} pairs/s wall, "
          f"{args.n / cpu:.1f} pairs/s CPU "
          f"({1000 * wall / args.n:.1f} ms/pair; mean {np.mean(n_drops):.0f} drops/image)")

    ds = SyntheticRaindrops(args.n, args.size, seed=args.seed)
    t0 = time.perf_counter()
    for i in range(args.n):
        ds[i]
    wall = time.perf_counter() - t0
    print(f"SyntheticRaindrops item {args.size}x{args.size}: {args.n / wall:.1f} pairs/s wall "
          f"({1000 * wall / args.n:.1f} ms/item)")


if __name__ == "__main__":
    main()
