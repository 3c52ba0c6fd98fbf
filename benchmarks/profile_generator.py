"""Where a forward pass of G spends its time: torch.profiler, grouped by op and input shape.

    python benchmarks/profile_generator.py [--size 480x720] [--path plain|fast32|bf16|int8]
                                           [--preset paper|cpu] [--threads N] [--rows 25]

Prints the top ops by self time, and the share of convolutions with their achieved GFLOP/s per shape
(the conv FLOPs are 2 * Cin * Cout * k * k * Hout * Wout). Use ``--threads 1`` on a shared machine: one
thread's profile is not distorted by waiting for a second core that another process holds.
"""

from __future__ import annotations

import argparse
import math

import torch

from agan.config import Config
from agan.experiments.bench import make_runner
from agan.models import build_generator
from agan.models.summary import parse_size


def conv_flops(shapes) -> float | None:
    """2 * Cin * Cout/groups * kh * kw * Hout * Wout for (input, weight) shapes of a same-padded conv."""
    try:
        (b, _, h, w), (cout, cin_g, kh, kw) = shapes[0], shapes[1]
    except (TypeError, ValueError, IndexError):
        return None
    return 2.0 * b * cin_g * cout * kh * kw * h * w


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="480x720")
    ap.add_argument("--path", default="fast32", choices=["plain", "fast32", "bf16", "int8"])
    ap.add_argument("--preset", default="paper", help="config preset of G (random weights), default paper")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--rows", type=int, default=25)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from torch.profiler import ProfilerActivity, profile

    h, w = parse_size(args.size)
    torch.manual_seed(0)
    G = build_generator(Config.preset(args.preset)).eval()
    x = torch.rand(1, 3, h, w)
    run = make_runner(G, args.path, torch.device("cpu"))
    run(x)  # warm-up (oneDNN kernels are generated on first use)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        run(x)
    events = sorted(prof.key_averages(group_by_input_shape=True), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in events) / 1e6
    conv = [e for e in events if ("convolution" in e.key or "qconv" in e.key) and e.self_cpu_time_total > 0]
    conv_s = sum(e.self_cpu_time_total for e in conv) / 1e6
    print(f"{args.path} at {h}x{w}, {torch.get_num_threads()} threads: {total:.2f} s profiled, "
          f"convolutions {conv_s:.2f} s ({100 * conv_s / total:.0f}%)")
    print(f"\n{'op':<28}{'self s':>8}{'calls':>7}{'GFLOP/s':>9}  input shapes")
    for e in events[: args.rows]:
        sec = e.self_cpu_time_total / 1e6
        fl = conv_flops(e.input_shapes) if "convolution" in e.key else None  # (qconv: shapes not recorded)
        rate = f"{fl * e.count / sec / 1e9:9.0f}" if fl and sec > 0 and "transpose" not in e.key else " " * 9
        shapes = ", ".join(str(tuple(s)) for s in e.input_shapes[:2] if s)
        print(f"{e.key[:27]:<28}{sec:8.3f}{e.count:7d}{rate}  {shapes[:70]}")
    if not math.isfinite(total) or total <= 0:
        raise SystemExit("profiler recorded nothing")


if __name__ == "__main__":
    main()
