"""``agan bench``: the cost report (seconds per image per execution path, GFLOP/s, memory, training step,
synthesiser pairs/s). Delegates to :mod:`agan.experiments.bench`."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="cost report: s/image per path (plain, fast fp32, bf16/fp16, compiled), GFLOP/s, memory",
        description=(
            "Time the generator's forward pass at --size on each execution path: 'plain' (the reference "
            "eager fp32 model), 'fast32' (agan.accel.fast.FastGenerator in fp32: channels-last, fused "
            "ConvLSTM gates, in-place ops), 'bf16' (CPU with native bf16) or 'fp16' (CUDA), 'compiled' "
            "(the plain Generator under torch.compile at the automatic precision), 'int8' (CPU: "
            "agan.accel.int8, "
            "PT2E static int8, what agan derain --precision int8 runs; where torchao and a C++ compiler are"
            " installed). Prints the CPU's instruction sets, parameters, GFLOPs (torch's flop counter), "
            "seconds per image (median of --repeats interleaved runs after a warm-up), achieved GFLOP/s, "
            "the fraction of this machine's measured 3x3-conv throughput, peak memory and the speed-up over"
            " plain; the ceiling per precision (the network's GFLOPs at the best of the conv and large-"
            "matmul rates: the most any path with the same multiplications could gain over plain); then one"
            " training step (the trainer's own step: plain fp32 vs as trained) and the synthesiser's "
            "pairs/s. Slow at full size on a small CPU (timings: docs/performance.md); --quick for a smoke "
            "run."))
    p.add_argument("--size", default="480x720", metavar="HxW",
                   help="image size (multiples of 4), default 480x720")
    p.add_argument("--paths", default=None,
                   help="comma-separated paths among plain,fast32,bf16,fp16,compiled,int8 "
                        "(default: plain,fast32,bf16,compiled,int8 on CPU, int8 where available; "
                        "plain,fast32,fp16,compiled on CUDA)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per path (median reported), default 3")
    p.add_argument("--preset", default="paper",
                   help="config preset for the generator (paper | cpu), default paper")
    p.add_argument("--device", default="auto", help="auto (CUDA when present) | cpu | cuda | cuda:N")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--no-train", action="store_true", help="skip the training-step benchmark")
    p.add_argument("--no-synth", action="store_true", help="skip the synthesiser benchmark")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses (CPU)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 32x48, width 0.25, 1 repeat, no compiled path, tiny training step")
    p.add_argument("--json", action="store_true", help="print the report as JSON (for notebooks)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from agan import pick_device
    from agan.cli import apply_timing_args
    from agan.experiments.bench import format_report, run_bench
    from agan.models.summary import parse_size

    apply_timing_args(args)
    paths = [p.strip() for p in args.paths.split(",") if p.strip()] if args.paths else None
    progress = None if args.json else (lambda msg: print(f"  .. {msg}", file=sys.stderr, flush=True))
    report = run_bench(size=parse_size(args.size), paths=paths, repeats=args.repeats, preset=args.preset,
                       device=pick_device(args.device), train=not args.no_train, synth=not args.no_synth,
                       quick=args.quick, memory=not args.no_memory, progress=progress)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0
