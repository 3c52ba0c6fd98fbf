"""The machine's measured rates, the roofline ``agan bench`` compares each path with: one channels-last 3x3
conv (fp32 / bf16 / fp16 GFLOP/s; int8 GOP/s through the int8 path's own toolchain) and a large matmul."""

from __future__ import annotations

import time
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import nn

from agan.accel.malloc import malloc_tuning

__all__ = ["conv_rate_int8", "conv_throughput", "matmul_throughput", "sync", "timed"]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device) -> float:
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def conv_throughput(device: torch.device, precision: str = "fp32", channels: int = 64,
                    size: tuple[int, int] = (240, 360), repeats: int = 5) -> float:
    """GFLOP/s of one channels-last 3x3 conv (channels -> channels, batch 1), best of ``repeats``; int8: GOP/s
    of the same conv quantized by the int8 path's toolchain (:func:`conv_rate_int8`)."""
    if precision == "int8":
        return conv_rate_int8(size, channels, repeats)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(1, channels, *size, generator=g).to(device, dtype)
         .contiguous(memory_format=torch.channels_last))
    w = (0.05 * torch.randn(channels, channels, 3, 3, generator=g)).to(device, dtype)
    w = w.contiguous(memory_format=torch.channels_last)
    flops = 2 * channels * channels * 9 * size[0] * size[1]
    cm = malloc_tuning() if device.type == "cpu" else nullcontext()
    with torch.inference_mode(), cm:
        F.conv2d(x, w, padding=1)
        best = min(timed(lambda: F.conv2d(x, w, padding=1), device) for _ in range(repeats))
    return flops / best / 1e9


def matmul_throughput(device: torch.device, precision: str = "fp32", n: int = 2048,
                      repeats: int = 5) -> float:
    """GFLOP/s of an n x n by n x n matrix multiply (2 n^3 flops), best of ``repeats``: with the 3x3-conv
    rate, what bounds any path that does the network's multiplications at that precision."""
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randn(n, n, generator=g).to(device, dtype) for _ in range(2))
    with torch.inference_mode():
        a @ b
        best = min(timed(lambda: a @ b, device) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def conv_rate_int8(size: tuple[int, int] = (240, 360), channels: int = 64, repeats: int = 5,
                   depth: int = 5) -> float:
    """GOP/s of one int8 3x3 conv (channels -> channels, + ReLU, channels-last, batch 1) through the same
    toolchain (PT2E, x86 inductor quantizer, inductor): the measured int8 rate ``agan bench`` compares
    the int8 path with (a multiply-add = 2 operations).

    Measured as the difference between a chain of ``depth`` such convs and a single one, so that it counts
    u8 -> u8 convs only: a lone quantized conv also quantizes its fp32 input and dequantizes its output,
    two passes over memory that can cost more than the conv itself (docs/performance.md, "int8's conv
    rate")."""
    import torch._inductor.config as inductor_config

    from agan.accel.toolchain import torchao_pt2e

    prepare_pt2e, convert_pt2e, xiq = torchao_pt2e()

    torch.manual_seed(0)
    x = torch.rand(1, channels, *size).contiguous(memory_format=torch.channels_last)  # (1, C, H, W)
    runs = {}
    with torch.no_grad(), inductor_config.patch(freezing=True):
        for n in (1, depth):
            chain = nn.Sequential(*[m for _ in range(n) for m in
                                    (nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU())]).eval()
            for conv in chain[::2]:  # weights that keep the activations in range down the chain
                nn.init.normal_(conv.weight, std=(2 / (9 * channels)) ** 0.5)
                nn.init.zeros_(conv.bias)
            gm = torch.export.export(chain, (x,)).module()
            quantizer = xiq.X86InductorQuantizer()
            quantizer.set_global(xiq.get_default_x86_inductor_quantization_config())
            prepared = prepare_pt2e(gm, quantizer)
            prepared(x)
            runs[n] = torch.compile(convert_pt2e(prepared))
            runs[n](x)  # compile + warm-up
        times = {n: [] for n in runs}
        for _ in range(repeats):  # interleaved: a change in machine load hits both alike
            for n, run in runs.items():
                t0 = time.perf_counter()
                run(x)
                times[n].append(time.perf_counter() - t0)
    ops = 2 * channels * channels * 9 * size[0] * size[1] * (depth - 1)
    return ops / max(min(times[depth]) - min(times[1]), 1e-9) / 1e9
