"""The cost report behind ``agan bench``: what a forward pass of G costs here, per execution path.

For each path (``plain`` = the reference eager fp32 ``Generator.forward``; ``fast32`` / ``bf16`` / ``fp16`` =
:class:`agan.infer.fast.FastGenerator` at that precision; ``compiled`` = the same under ``torch.compile``):
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
Also: one training step (D update + G update, paper losses, VGG with random weights), plain eager fp32
vs the fast setup (channels-last, bf16/fp16 autocast, tuned allocator), and synthesiser pairs/s.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from contextlib import nullcontext

import torch
import torch.nn.functional as F

from agan.config import Config
from agan.infer.fast import FastGenerator, autocast, channels_last, grad_scaler, malloc_tuning, resolve_precision
from agan.models import build_discriminator, build_generator, count_parameters
from agan.models.summary import count_flops

__all__ = ["PATHS", "bench_inference", "bench_synth", "bench_train_step", "conv_throughput", "format_report",
           "matmul_throughput", "run_bench"]

PATHS = ("plain", "fast32", "bf16", "fp16", "compiled")
DEFAULT_PATHS = {"cpu": "plain,fast32,bf16,compiled", "cuda": "plain,fast32,fp16,compiled"}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def path_precision(path: str, device: torch.device) -> str:
    """The numeric precision a path runs in on ``device``."""
    if path not in PATHS:
        raise ValueError(f"unknown bench path {path!r}; choose from {', '.join(PATHS)}")
    if path in ("plain", "fast32"):
        return "fp32"
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
    return FastGenerator(G, precision=path_precision(path, device), compile=path == "compiled")


# ----------------------------------------------------------------------------------------------
# the machine's 3x3-conv throughput (the roofline the paths are compared with)
# ----------------------------------------------------------------------------------------------


def conv_throughput(device: torch.device, precision: str = "fp32", channels: int = 64,
                    size: tuple[int, int] = (240, 360), repeats: int = 5) -> float:
    """GFLOP/s of one channels-last 3x3 conv (channels -> channels, batch 1), best of ``repeats``."""
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, channels, *size, generator=g).to(device, dtype).contiguous(memory_format=torch.channels_last)
    w = (0.05 * torch.randn(channels, channels, 3, 3, generator=g)).to(device, dtype)
    w = w.contiguous(memory_format=torch.channels_last)
    flops = 2 * channels * channels * 9 * size[0] * size[1]
    cm = malloc_tuning() if device.type == "cpu" else nullcontext()
    with torch.inference_mode(), cm:
        F.conv2d(x, w, padding=1)
        best = min(_timed(lambda: F.conv2d(x, w, padding=1), device) for _ in range(repeats))
    return flops / best / 1e9


def matmul_throughput(device: torch.device, precision: str = "fp32", n: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of an n x n by n x n matrix multiply (2 n^3 flops), best of ``repeats``: with the 3x3-conv
    rate, what bounds any path that does the network's multiplications at that precision."""
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randn(n, n, generator=g).to(device, dtype) for _ in range(2))
    with torch.inference_mode():
        a @ b
        best = min(_timed(lambda: a @ b, device) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


# ----------------------------------------------------------------------------------------------
# inference
# ----------------------------------------------------------------------------------------------


def _peak_memory_subprocess(preset: str, size: tuple[int, int], path: str, device: torch.device,
                            width: float | None) -> float | None:
    """Peak RSS (MB) of a fresh Python process that builds G and runs one forward on ``path``."""
    spec = json.dumps({"preset": preset, "size": list(size), "path": path, "device": str(device), "width": width})
    cmd = [sys.executable, "-c", "import agan.experiments.bench as b, sys; b._memory_worker(sys.argv[1])", spec]
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
    paths = paths or DEFAULT_PATHS[device.type].split(",")
    for p in paths:
        path_precision(p, device)
    if device.type == "cpu" and "fp16" in paths:
        raise ValueError("path fp16 needs CUDA; use bf16 on CPU")
    cfg = Config.preset(preset, **({"width": width} if width else {}))
    torch.manual_seed(0)
    G = build_generator(cfg).to(device).eval()
    x = torch.rand(1, 3, h, w, device=device)
    with torch.device("meta"):
        Gm = build_generator(cfg)
    gflops = count_flops(Gm, torch.empty(1, 3, h, w, device="meta")) / 1e9

    precisions = sorted({path_precision(p, device) for p in paths})
    conv = {p: conv_throughput(device, p, size=conv_size) for p in precisions}
    matmul = {p: matmul_throughput(device, p, n=matmul_n) for p in precisions}
    runners, compile_s = {}, {}
    for p in paths:  # build and warm up (the compiled path compiles here)
        runners[p] = make_runner(G, p, device)
        compile_s[p] = _timed(lambda run=runners[p]: run(x), device)
        if progress:
            progress(f"warm-up {p}: {compile_s[p]:.2f} s")
    times: dict[str, list[float]] = {p: [] for p in paths}
    for r in range(repeats):  # interleaved rounds
        for p in paths:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            times[p].append(_timed(lambda run=runners[p]: run(x), device))
            if progress:
                progress(f"round {r + 1}/{repeats} {p}: {times[p][-1]:.2f} s")

    rows = {}
    for p in paths:
        sec = statistics.median(times[p])
        prec = path_precision(p, device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            runners[p](x)
            _sync(device)
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
    peak = {p: max(conv[p], matmul[p]) for p in precisions}
    ceiling = {p: {"gflop_per_s": rate, "seconds": gflops / rate, "speedup": base * rate / gflops if base else None}
               for p, rate in peak.items()}
    return {"size": f"{h}x{w}", "preset": preset, "width": cfg.width, "parameters": count_parameters(G),
            "gflops": gflops, "conv3x3_gflop_per_s": conv, "conv_size": f"{conv_size[0]}x{conv_size[1]}",
            "matmul_gflop_per_s": matmul, "matmul_n": matmul_n, "ceiling": ceiling, "repeats": repeats,
            "memory_kind": "peak CUDA allocated" if device.type == "cuda" else "peak RSS of a fresh process",
            "paths": rows}


# ----------------------------------------------------------------------------------------------
# one training step: D update then G update (paper Eqs. 8-9, then Eq. 7)
# ----------------------------------------------------------------------------------------------


class _Step:
    """G, D, the four losses and two optimisers; ``fast`` = channels-last + autocast (+ GradScaler)."""

    def __init__(self, cfg: Config, device: torch.device, fast: bool):
        from agan.losses import (
            AttentionLoss,
            DiscriminatorLoss,
            GeneratorAdversarialLoss,
            MultiScaleLoss,
            PerceptualLoss,
        )

        torch.manual_seed(0)
        self.device, self.fast = device, fast
        self.G = build_generator(cfg).to(device).train()
        self.D = build_discriminator(cfg)
        self.D = self.D.to(device).train() if self.D is not None else None
        self.L_ATT, self.L_M = AttentionLoss(cfg.theta), MultiScaleLoss(cfg.lambdas)
        self.L_P = PerceptualLoss(weights="random").to(device)
        self.L_GAN, self.L_D = GeneratorAdversarialLoss(cfg.adv_weight), DiscriminatorLoss(cfg.gamma)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg.lr_g, betas=cfg.betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.lr_d, betas=cfg.betas) if self.D else None
        precision = resolve_precision("auto", device) if fast else "fp32"
        self.precision = precision
        self.ctx = (lambda: autocast(device, precision)) if fast else nullcontext
        self.scaler = grad_scaler(device, precision) if fast else None
        if fast:
            channels_last(self.G, self.D, self.L_P)

    def __call__(self, I, T, M) -> float:
        G, D = self.G, self.D
        with self.ctx():
            out = G(I)
        if D is not None:  # D update: L_D = -log D(R) - log(1 - D(O)) + gamma L_map
            with self.ctx():
                real, fake = D(T), D(out.O.detach())
                target = out.attention[-1].detach() if out.attention else M
                L_D, _ = self.L_D(real.logit, fake.logit, real.map, fake.map, target)
            self.opt_d.zero_grad(set_to_none=True)
            self._backward_step(L_D, self.opt_d)
        with self.ctx():  # G update: L_G = 1e-2 L_GAN + L_ATT + L_M + L_P
            L_G = self.L_M([out.S1, out.S2, out.O], T) + self.L_P(out.O, T)
            if out.attention:
                L_G = L_G + self.L_ATT(out.attention, M)
            if D is not None:
                for p in D.parameters():
                    p.requires_grad_(False)
                L_G = L_G + self.L_GAN(D(out.O).logit)
                for p in D.parameters():
                    p.requires_grad_(True)
        self.opt_g.zero_grad(set_to_none=True)
        self._backward_step(L_G, self.opt_g)
        return L_G.detach()

    def _backward_step(self, loss, opt) -> None:
        if self.scaler is not None and self.scaler.is_enabled():
            self.scaler.scale(loss).backward()
            self.scaler.step(opt)
            self.scaler.update()
        else:
            loss.backward()
            opt.step()


def bench_train_step(preset: str = "paper", size: int = 224, batch: int = 2, steps: int = 2,
                     width: float | None = None, device: torch.device | str = "cpu", progress=None) -> dict:
    """Seconds per training step (median of ``steps`` after one warm-up), plain eager fp32 vs fast."""
    device = torch.device(device)
    cfg = Config.preset(preset, crop_size=size, batch_size=batch, **({"width": width} if width else {}))
    g = torch.Generator().manual_seed(0)
    I, T = torch.rand(batch, 3, size, size, generator=g), torch.rand(batch, 3, size, size, generator=g)
    M = (torch.rand(batch, 1, size, size, generator=g) > 0.8).float()
    I, T, M = I.to(device), T.to(device), M.to(device)
    res = {"preset": preset, "size": size, "batch": batch, "variant": cfg.variant}
    steppers = {"plain": _Step(cfg, device, fast=False), "fast": _Step(cfg, device, fast=True)}
    inputs = {"plain": (I, T, M), "fast": tuple(t.contiguous(memory_format=torch.channels_last) for t in (I, T, M))}
    times: dict[str, list[float]] = {k: [] for k in steppers}
    for k, step in steppers.items():  # warm-up
        cm = malloc_tuning() if (k == "fast" and device.type == "cpu") else nullcontext()
        with cm:
            _timed(lambda step=step, k=k: step(*inputs[k]), device)
    for r in range(steps):
        for k, step in steppers.items():
            cm = malloc_tuning() if (k == "fast" and device.type == "cpu") else nullcontext()
            with cm:
                times[k].append(_timed(lambda step=step, k=k: step(*inputs[k]), device))
            if progress:
                progress(f"train step {r + 1}/{steps} {k}: {times[k][-1]:.2f} s")
    for k in steppers:
        res[f"{k}_seconds"] = statistics.median(times[k])
        res[f"{k}_seconds_all"] = times[k]
    res["fast_precision"] = steppers["fast"].precision
    res["speedup"] = res["plain_seconds"] / res["fast_seconds"]
    return res


# ----------------------------------------------------------------------------------------------
# the synthesiser
# ----------------------------------------------------------------------------------------------


def bench_synth(size: int = 224, n: int = 50, seed: int = 0) -> dict:
    """Pairs/s of ``agan.synth.renderer.make_pair`` on one core, after a warm-up that builds the procedural
    background bank and loads the photos (a one-off cost per process, cached); a note when absent."""
    try:
        from agan.synth.backgrounds import N_PROCEDURAL, _default_source, _procedural_bank
        from agan.synth.renderer import make_pair
    except ImportError as e:
        return {"pairs_per_s": None, "note": f"agan.synth.renderer unavailable ({e})"}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for k in range(N_PROCEDURAL):  # warm-up: background bank, photos
            _procedural_bank(k)
        _default_source()
        make_pair(seed, 0, size)
        t0 = time.perf_counter()
        for i in range(1, n + 1):
            make_pair(seed, i, size)
        wall = time.perf_counter() - t0
    finally:
        torch.set_num_threads(threads)
    return {"size": size, "pairs": n, "pairs_per_s": n / wall, "note": "one core (torch threads = 1)"}


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
        paths = [p for p in (paths or DEFAULT_PATHS[device.type].split(",")) if p != "compiled"]
        train_kw.update(size=32, steps=1, width=0.25)
        synth_kw.update(size=32, n=2)
    report = {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
              "quick": quick}
    if device.type == "cuda":
        report["device_name"] = torch.cuda.get_device_name(device)
    report["inference"] = bench_inference(size, paths, repeats, preset, width, device, memory, progress, conv_size,
                                          matmul_n)
    report["train_step"] = bench_train_step(device=device, progress=progress, **train_kw) if train else None
    report["synth"] = bench_synth(**synth_kw) if synth else None
    return report


def format_report(r: dict) -> str:
    inf = r["inference"]
    name = f" ({r['device_name']})" if r.get("device_name") else ""
    lines = [(f"agan bench: {r['device']}{name}, torch {r['torch']}, {r['threads']} threads"
              f"{', QUICK' if r.get('quick') else ''}"),
             (f"generator: preset {inf['preset']}, width {inf['width']}, {inf['parameters']:,d} parameters, "
              f"{inf['gflops']:.1f} GFLOP per {inf['size']} image"),
             f"3x3-conv throughput (channels-last, 64->64 at {inf['conv_size']}): "
             + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in inf["conv3x3_gflop_per_s"].items()),
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
    lines.append(f"(median of {inf['repeats']} interleaved runs after a warm-up; peak memory: {inf['memory_kind']}; "
                 "'of conv' = achieved / 3x3-conv throughput at the same precision)")
    for p, c in inf["ceiling"].items():
        sp = f" = x{c['speedup']:.2f} plain" if c["speedup"] is not None else ""
        lines.append(f"ceiling {p}: {inf['gflops']:.1f} GFLOP at {c['gflop_per_s']:.0f} GFLOP/s (the best rate above) = "
                     f"{c['seconds']:.3f} s/image{sp}")
    t = r.get("train_step")
    if t:
        lines += ["", (f"training step ({t['preset']}, variant {t['variant']}, {t['size']}x{t['size']}, batch "
                       f"{t['batch']}, G+D+VGG): plain fp32 {t['plain_seconds']:.2f} s, fast "
                       f"({t['fast_precision']}, channels-last) {t['fast_seconds']:.2f} s, x{t['speedup']:.2f}")]
    s = r.get("synth")
    if s:
        lines += [""]
        if s.get("pairs_per_s") is None:
            lines.append(f"synthesiser: skipped ({s['note']})")
        else:
            lines.append(f"synthesiser: {s['pairs_per_s']:.1f} pairs/s at {s['size']}x{s['size']} "
                         f"({s['pairs']} pairs, {s['note']})")
    return "\n".join(lines)
