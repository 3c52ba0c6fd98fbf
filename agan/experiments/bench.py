"""The cost report behind ``agan bench``: what a forward pass of G costs here, per execution path.

For each path (``plain`` = the reference eager fp32 ``Generator.forward``; ``fast32`` / ``bf16`` / ``fp16`` =
:class:`agan.accel.fast.FastGenerator` at that precision; ``compiled`` = the plain ``Generator.forward`` under
``torch.compile`` (inductor) at the automatic precision; ``int8`` = ``agan.accel.int8``):
seconds per image (median of ``repeats`` timed runs after one warm-up; the paths' runs are interleaved
round by round, so a change in machine load hits them alike), GFLOPs at the measured size (torch's flop
counter, a multiply-add = 2), achieved GFLOP/s, the fraction of this machine's measured 3x3-conv
throughput at that precision, peak memory (CPU: peak RSS of a fresh subprocess running one forward;
CUDA: ``torch.cuda.max_memory_allocated``) and the speed-up over ``plain``.
The ceiling lines put those in proportion: the network's GFLOPs over the best dense rate measured here
at a precision (the larger of the 3x3-conv and a large square matrix multiply) is the least time any
path that keeps the network's multiplications (direct or im2col convolutions, as oneDNN's CPU path
uses) could take, and plain's time over it the largest speed-up such a path could show.
Only fewer multiplications (Winograd or FFT convolutions) could beat it.
Also (``agan.experiments.bench_train``): the trainer's own training step, plain eager fp32 vs the trainer's
setup, and synthesiser pairs/s.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

import torch

from agan.accel import toolchain
from agan.accel.fast import FastGenerator
from agan.accel.int8 import int8_forward
from agan.config import Config
from agan.cpu import cpu_caps
from agan.experiments.bench_train import bench_synth, bench_train_step
from agan.experiments.rates import conv_throughput, matmul_throughput, sync, timed
from agan.models import build_generator, count_parameters
from agan.models.summary import count_flops
from agan.precision import autocast, resolve_precision

__all__ = ["PATHS", "bench_inference", "bench_synth", "bench_train_step", "format_report", "run_bench",
           "skip_reason"]

PATHS = ("plain", "fast32", "bf16", "fp16", "compiled", "int8")
DEFAULT_PATHS = {"cpu": "plain,fast32,bf16,compiled,int8", "cuda": "plain,fast32,fp16,compiled"}


def default_paths(device: torch.device) -> list[str]:
    """The paths ``agan bench`` times by default (those this machine cannot run are skipped: skip_reason)."""
    return DEFAULT_PATHS[device.type].split(",")


def skip_reason(path: str, device: torch.device) -> str | None:
    """Why this machine cannot time ``path`` (one line), or None: bf16 on a CPU that oneDNN runs no bf16
    conv on (``agan.cpu``), int8 without its toolchain."""
    if device.type != "cpu":
        return None
    if path == "bf16":
        return cpu_caps().why_no_bf16()
    if path == "int8":
        return toolchain.unavailable_reason()
    return None


def path_precision(path: str, device: torch.device) -> str:
    """The numeric precision a path runs in on ``device``."""
    if path not in PATHS:
        raise ValueError(f"unknown bench path {path!r}; choose from {', '.join(PATHS)}")
    if path in ("plain", "fast32"):
        return "fp32"
    if path == "int8" and device.type != "cpu":
        raise ValueError("path int8 is a CPU path; on CUDA use fp16")
    if path == "int8":
        toolchain.require()
    if path == "compiled":
        return resolve_precision("auto", device)
    return path


def make_runner(G, path: str, device: torch.device):
    """A zero-argument-free callable x -> output for one path (the plain path runs under inference_mode)."""
    if path == "plain":
        def run(x):
            with torch.inference_mode():
                return G(x)
        return run
    if path == "int8":  # what agan derain --precision int8 runs: quantized (and compiled) on the first call
        return lambda x: int8_forward(G, x)
    if path == "compiled":  # the plain forward, compiled by inductor (the first call compiles)
        compiled, precision = torch.compile(G, dynamic=False), path_precision(path, device)

        def run_compiled(x):
            with torch.inference_mode(), autocast(device, precision):
                return compiled(x)
        return run_compiled
    return FastGenerator(G, precision=path_precision(path, device))


# ----------------------------------------------------------------------------------------------
# inference
# ----------------------------------------------------------------------------------------------


def _peak_memory_subprocess(preset: str, size: tuple[int, int], path: str, device: torch.device,
                            width: float | None) -> float | None:
    """Peak RSS (MB) of a fresh Python process that builds G and runs one forward on ``path``."""
    spec = json.dumps({"preset": preset, "size": list(size), "path": path, "device": str(device),
                       "width": width})
    cmd = [sys.executable, "-c", "import agan.experiments.bench as b, sys; b._memory_worker(sys.argv[1])",
           spec]
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env=env, check=True)
        return float(json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_mb"])
    except (subprocess.SubprocessError, ValueError, KeyError, IndexError):
        return None


def peak_rss_mb() -> float:
    """This process's peak RSS in MB: VmHWM from /proc (per process image; ``ru_maxrss`` would include the
    parent's RSS at fork time on Linux), else ``getrusage(RUSAGE_SELF).ru_maxrss``."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KB on Linux


def _memory_worker(spec: str) -> None:
    s = json.loads(spec)
    device = torch.device(s["device"])
    cfg = Config.preset(s["preset"], **({"width": s["width"]} if s["width"] else {}))
    G = build_generator(cfg).to(device).eval()
    x = torch.rand(1, 3, *s["size"], device=device)
    make_runner(G, s["path"], device)(x)
    print(json.dumps({"peak_rss_mb": peak_rss_mb()}))


def bench_inference(size: tuple[int, int] = (480, 720), paths: list[str] | None = None, repeats: int = 3,
                    preset: str = "paper", width: float | None = None, device: torch.device | str = "cpu",
                    memory: bool = True, progress=None, conv_size: tuple[int, int] = (240, 360),
                    matmul_n: int = 2048) -> dict:
    """Time G's forward at ``size`` (batch 1) on each path; see the module docstring for the fields."""
    device = torch.device(device)
    h, w = size
    if h % 4 or w % 4:
        raise ValueError(f"--size {h}x{w}: height and width must be multiples of 4")
    paths = paths or default_paths(device)
    if device.type == "cpu" and "fp16" in paths:
        raise ValueError("path fp16 needs CUDA; use bf16 on CPU")
    for p in paths:
        if p not in PATHS:
            raise ValueError(f"unknown bench path {p!r}; choose from {', '.join(PATHS)}")
    skipped = {p: why for p in paths if (why := skip_reason(p, device))}
    paths = [p for p in paths if p not in skipped]
    for p, why in skipped.items():
        if progress:
            progress(f"skipped {p}: {why}")
    if not paths:
        raise ValueError("no path can run here: " + "; ".join(f"{p}: {why}" for p, why in skipped.items()))
    for p in paths:
        path_precision(p, device)
    cfg = Config.preset(preset, **({"width": width} if width else {}))
    torch.manual_seed(0)
    G = build_generator(cfg).to(device).eval()
    x = torch.rand(1, 3, h, w, device=device)
    with torch.device("meta"):
        Gm = build_generator(cfg)
    gflops = count_flops(Gm, torch.empty(1, 3, h, w, device="meta")) / 1e9

    precisions = sorted({path_precision(p, device) for p in paths})
    conv = {p: conv_throughput(device, p, size=conv_size) for p in precisions}
    matmul = {p: matmul_throughput(device, p, n=matmul_n) for p in precisions if p != "int8"}
    runners, compile_s = {}, {}
    for p in paths:  # build and warm up (the compiled path compiles here)
        runners[p] = make_runner(G, p, device)
        compile_s[p] = timed(lambda run=runners[p]: run(x), device)
        if progress:
            progress(f"warm-up {p}: {compile_s[p]:.2f} s")
    times: dict[str, list[float]] = {p: [] for p in paths}
    for r in range(repeats):  # interleaved rounds
        for p in paths:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            times[p].append(timed(lambda run=runners[p]: run(x), device))
            if progress:
                progress(f"round {r + 1}/{repeats} {p}: {times[p][-1]:.2f} s")

    rows = {}
    for p in paths:
        sec = statistics.median(times[p])
        prec = path_precision(p, device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            runners[p](x)
            sync(device)
            mem = torch.cuda.max_memory_allocated(device) / 2**20
        elif memory and p != "compiled":
            mem = _peak_memory_subprocess(preset, size, p, device, width)
        else:
            mem = None
        rows[p] = {"precision": prec, "seconds": sec, "seconds_all": times[p],
                   "warmup_seconds": compile_s[p], "gflop_per_s": gflops / sec,
                   "conv_fraction": gflops / sec / conv[prec], "peak_memory_mb": mem}
    base = rows.get("plain", {}).get("seconds")
    for p in paths:
        rows[p]["speedup"] = base / rows[p]["seconds"] if base else None
    # the least time any path with the same multiplications could take: every FLOP at the best rate measured
    peak = {p: max(conv[p], matmul.get(p, 0.0)) for p in precisions}
    ceiling = {p: {"gflop_per_s": rate, "seconds": gflops / rate,
                   "speedup": base * rate / gflops if base else None}
               for p, rate in peak.items()}
    return {"size": f"{h}x{w}", "preset": preset, "width": cfg.width, "parameters": count_parameters(G),
            "gflops": gflops, "conv3x3_gflop_per_s": conv, "conv_size": f"{conv_size[0]}x{conv_size[1]}",
            "matmul_gflop_per_s": matmul, "matmul_n": matmul_n, "ceiling": ceiling, "repeats": repeats,
            "memory_kind": "peak CUDA allocated" if device.type == "cuda" else "peak RSS of a fresh process",
            "paths": rows, "skipped": skipped}


# ----------------------------------------------------------------------------------------------
# everything, and the printed table
# ----------------------------------------------------------------------------------------------


def run_bench(size=(480, 720), paths=None, repeats: int = 3, preset: str = "paper", device="cpu",
              train: bool = True, synth: bool = True, quick: bool = False, memory: bool = True,
              progress=None) -> dict:
    """The whole cost report as a dict (what ``agan bench --json`` prints).

    ``quick``: a small size (32x48), narrow generator (width 0.25), one repeat, a tiny training step,
    few synthesiser pairs, no compiled path and no memory subprocesses - for tests and notebooks.
    """
    device = torch.device(device)
    width = None
    train_kw = {"preset": preset, "size": 224, "batch": 2, "steps": 2}
    synth_kw = {"size": 224, "n": 50}
    conv_size, matmul_n = (240, 360), 2048
    if quick:
        size, repeats, width, memory, conv_size, matmul_n = (32, 48), 1, 0.25, False, (60, 90), 256
        paths = [p for p in (paths or default_paths(device)) if p not in ("compiled", "int8")]  # no compiles
        train_kw.update(size=32, steps=1, width=0.25)
        synth_kw.update(size=32, n=2)
    report = {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
              "quick": quick, "cpu_isa": cpu_caps().describe(), "cpu_capped": cpu_caps().capped}
    if device.type == "cuda":
        report["device_name"] = torch.cuda.get_device_name(device)
    report["inference"] = bench_inference(size, paths, repeats, preset, width, device, memory, progress,
                                          conv_size, matmul_n)
    report["train_step"] = bench_train_step(device=device, progress=progress, **train_kw) if train else None
    report["synth"] = bench_synth(**synth_kw) if synth else None
    return report


def format_report(r: dict) -> str:
    inf = r["inference"]
    name = f" ({r['device_name']})" if r.get("device_name") else ""
    isa = r.get("cpu_isa") or "unknown"
    if r.get("cpu_capped"):
        isa += f" (acting as an {r['cpu_capped'].upper()}-only CPU: AGAN_CPU_CAP / ONEDNN_MAX_CPU_ISA)"
    lines = [(f"agan bench: {r['device']}{name}, torch {r['torch']}, {r['threads']} threads"
              f"{', QUICK' if r.get('quick') else ''}"),
             f"CPU instruction sets: {isa}",
             (f"generator: preset {inf['preset']}, width {inf['width']}, {inf['parameters']:,d} parameters, "
              f"{inf['gflops']:.1f} GFLOP per {inf['size']} image"),
             f"3x3-conv throughput (channels-last, 64->64 at {inf['conv_size']}): "
             + ", ".join(f"{k} {v:.0f} G{'OP' if k == 'int8' else 'FLOP'}/s"
                         for k, v in inf["conv3x3_gflop_per_s"].items()),
             f"matmul throughput ({inf['matmul_n']}x{inf['matmul_n']}): "
             + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in inf["matmul_gflop_per_s"].items()),
             "",
             (f"{'path':<10}{'precision':>10}{'s/image':>10}{'GFLOP/s':>10}{'of conv':>9}{'peak MB':>9}"
              f"{'x plain':>9}{'warm-up s':>11}")]
    for p, row in inf["paths"].items():
        mem = f"{row['peak_memory_mb']:.0f}" if row["peak_memory_mb"] is not None else "n/a"
        sp = f"{row['speedup']:.2f}" if row["speedup"] is not None else "n/a"
        lines.append(f"{p:<10}{row['precision']:>10}{row['seconds']:>10.3f}{row['gflop_per_s']:>10.1f}"
                     f"{100 * row['conv_fraction']:>8.0f}%{mem:>9}{sp:>9}{row['warmup_seconds']:>11.1f}")
    for p, why in inf.get("skipped", {}).items():
        lines.append(f"{p:<10}{'skipped':>10}  {why}")
    lines.append(f"(median of {inf['repeats']} interleaved runs after a warm-up; peak memory: "
                 f"{inf['memory_kind']}; 'of conv' = achieved / 3x3-conv throughput at the same precision; "
                 "int8: GOP/s, its warm-up quantizes and compiles)")
    for p, c in inf["ceiling"].items():
        sp = f" = x{c['speedup']:.2f} plain" if c["speedup"] is not None else ""
        lines.append(f"ceiling {p}: {inf['gflops']:.1f} GFLOP at {c['gflop_per_s']:.0f} GFLOP/s "
                     f"(the best rate above) = {c['seconds']:.3f} s/image{sp}")
    t = r.get("train_step")
    if t:
        parts = "G+D+VGG (random-init)" if t.get("perceptual") else "G+D, no L_P as in the preset"
        lines += ["", (f"training step, the trainer's GanStep ({t['preset']}, variant {t['variant']}, "
                       f"{t['size']}x{t['size']}, batch {t['batch']}, {parts}): plain fp32 NCHW "
                       f"{t['plain_seconds']:.2f} s, as trained ({t['fast_precision']}, channels-last) "
                       f"{t['fast_seconds']:.2f} s, x{t['speedup']:.2f}")]
    s = r.get("synth")
    if s:
        lines += [""]
        if s.get("pairs_per_s") is None:
            lines.append(f"synthesiser: skipped ({s['note']})")
        else:
            lines.append(f"synthesiser: {s['pairs_per_s']:.1f} pairs/s at {s['size']}x{s['size']} "
                         f"({s['pairs']} pairs, {s['note']})")
    return "\n".join(lines)
