"""Training throughput of a preset and the extrapolated wall time of its full run (cpu preset: <= 15 min).

    python benchmarks/bench_train.py [--preset cpu] [--steps 30] [--threads 2] [--set key=value ...]

Runs ``agan.train.loop.train`` for ``--steps`` steps (after ``--warmup`` steps of a throw-away run, synthetic
data rendered on the fly, validation/checkpoints off) and reports seconds per step: wall clock and
process CPU time. On a shared machine the wall clock is inflated by other processes; CPU time / threads
is the better estimate of what an idle machine with that many cores needs. The extrapolation adds the
validation passes of the full run (``val_every``), measured once.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=20, help="steps of a throw-away run first (default 20)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--budget-min", type=float, default=15.0, help="target wall time of the full run")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    from agan.config import Config
    from agan.train.loop import Trainer, train

    full = Config.preset(args.preset, **Config.parse_overrides(args.set))
    quiet = {"log_every": 10**9, "val_every": 0, "sample_every": 0, "ckpt_every": 10**9}
    with tempfile.TemporaryDirectory() as tmp:
        # warm-up run: imports, caches, allocator
        train(full.replace(iterations=args.warmup, **quiet), f"{tmp}/warm", progress=False)
        w0, c0 = time.perf_counter(), time.process_time()
        res = train(full.replace(iterations=args.steps, **quiet), f"{tmp}/run", progress=False)
        wall, cpu = (time.perf_counter() - w0) / args.steps, (time.process_time() - c0) / args.steps
        from agan import pick_device
        from agan.train.distributed import DistInfo

        trainer = Trainer(full, f"{tmp}/val", False, False, False, DistInfo(), pick_device(full.device),
                          None, None)
        trainer.gan.G_eval.load_state_dict(res.G.state_dict())
        v0 = time.perf_counter()
        trainer._validation_point()  # what a run does every val_every steps (with ema on: the raw G too)
        val = time.perf_counter() - v0
    n_val = full.iterations // full.val_every + 1 if full.val_every else 0
    est_wall = full.iterations * wall + n_val * val
    est_idle = full.iterations * cpu / args.threads + n_val * val
    # "auto" resolved here
    precision = {None: "fp32"}.get(trainer.gan.amp, str(trainer.gan.amp).removeprefix("torch."))
    print(f"preset {args.preset} ({', '.join(args.set) or 'as is'}): {args.steps} steps, "
          f"{args.threads} threads, precision {precision}")
    print(f"  per step: {wall:.3f} s wall, {cpu:.3f} s CPU ({cpu / args.threads:.3f} s per thread)")
    print(f"  validation pass ({full.val_size} images): {val:.2f} s, {n_val} in the full run")
    print(f"  full run of {full.iterations} steps: {est_wall / 60:.1f} min at this wall clock, "
          f"~{est_idle / 60:.1f} min on an idle machine with {args.threads} cores "
          f"(budget {args.budget_min:g} min: {'OK' if est_idle <= args.budget_min * 60 else 'OVER'})")


if __name__ == "__main__":
    main()
