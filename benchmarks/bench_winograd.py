"""Could fewer multiplications beat oneDNN's direct 3x3 convolution on this CPU, from eager PyTorch?

    python benchmarks/bench_winograd.py [--threads 2] [--size 480x720] [--compile]

Winograd F(2x2, 3x3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016) needs
16 multiplications per 2x2 output tile instead of 36 (2.25x fewer). Here it is written with eager tensor ops:
the input transform B^T d B as strided slices, the 16 per-frequency products as one batched matmul
(16, K, C) @ (16, C, tiles), the output transform A^T m A as slices again. It is exact (max abs error vs
F.conv2d is printed) but every transform is a pass over memory, so on a CPU it loses to the direct
convolution unless the transforms are fused. ``--compile`` also times it under ``torch.compile`` (inductor
generates C++ loops for the transforms; the products stay one batched matmul). On our 2-core Zen 4 both
lost: 32->32 direct 42 ms, eager 241, compiled 235; 64->128 direct 270 ms, eager 1018, compiled 892.
Shapes: the generator's full-resolution convs at 480x720 (32->32 residual blocks, 64->128 ConvLSTM gates).
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

G_MAT = [[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]]


def winograd_weights(w: torch.Tensor) -> torch.Tensor:
    """(K, C, 3, 3) -> U = G g G^T per (k, c), laid out (16, K, C)."""
    G = torch.tensor(G_MAT, dtype=w.dtype)
    return torch.einsum("ai,kcij,bj->abkc", G, w, G).reshape(16, *w.shape[:2]).contiguous()


def _bt(p: list[torch.Tensor]) -> list[torch.Tensor]:  # B^T applied along one axis of 4 stride-2 slices
    return [p[0] - p[2], p[1] + p[2], p[2] - p[1], p[1] - p[3]]


def winograd_conv(x: torch.Tensor, U: torch.Tensor) -> torch.Tensor:
    """3x3 conv, padding 1, of x (C, H, W) with even H, W; U from winograd_weights. Returns (K, H, W)."""
    C, H, W = x.shape
    xp = F.pad(x, (1, 1, 1, 1))  # (C, H+2, W+2)
    V = []
    for t in _bt([xp[:, o:o + H:2] for o in range(4)]):  # tile rows -> (C, H/2, W+2) each
        V += _bt([t[:, :, o:o + W:2] for o in range(4)])  # tile cols -> (C, H/2, W/2) each
    M = torch.bmm(U, torch.stack(V).reshape(16, C, -1))  # (16, K, tiles)
    M = M.reshape(4, 4, U.shape[1], H // 2, W // 2)
    out = x.new_empty(U.shape[1], H, W)
    for j, a in enumerate((M[:, 0] + M[:, 1] + M[:, 2], M[:, 1] - M[:, 2] - M[:, 3])):  # A^T along cols
        out[:, 0::2, j::2] = a[0] + a[1] + a[2]  # A^T along rows
        out[:, 1::2, j::2] = a[1] - a[2] - a[3]
    return out


def _best(fn, repeats: int = 3) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", default="480x720", help="HxW, even")
    ap.add_argument("--compile", action="store_true", help="also time the Winograd conv under torch.compile")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    try:
        h, w = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        ap.error(f"--size {args.size!r}: expected HxW, e.g. 480x720")
    if h % 2 or w % 2 or h < 2 or w < 2:
        ap.error(f"--size {args.size}: height and width must be even and positive")
    g = torch.Generator().manual_seed(0)
    for C, K in [(32, 32), (64, 128)]:
        x = torch.randn(C, h, w, generator=g)
        wt = 0.05 * torch.randn(K, C, 3, 3, generator=g)
        U = winograd_weights(wt)
        with torch.inference_mode():
            err = (winograd_conv(x, U) - F.conv2d(x[None], wt, padding=1)[0]).abs().max().item()
            xc = x[None].contiguous(memory_format=torch.channels_last)
            wc = wt.contiguous(memory_format=torch.channels_last)
            t_direct = _best(lambda: F.conv2d(xc, wc, padding=1))
            t_wino = _best(lambda: winograd_conv(x, U))
            if args.compile:
                compiled = torch.compile(winograd_conv, dynamic=False)
                t0 = time.perf_counter()
                compiled(x, U)
                t_compile = time.perf_counter() - t0
                t_comp = _best(lambda: compiled(x, U))
                err_c = (compiled(x, U) - F.conv2d(x[None], wt, padding=1)[0]).abs().max().item()
        gflop = 2 * C * K * 9 * h * w / 1e9
        print(f"{C:>3}->{K:<3} {h}x{w}: direct (oneDNN, channels-last) {1e3 * t_direct:6.0f} ms "
              f"({gflop / t_direct:4.0f} GFLOP/s); Winograd F(2x2,3x3), eager {1e3 * t_wino:6.0f} ms "
              f"(as {gflop / t_wino:4.0f} GFLOP/s of direct work), x{t_wino / t_direct:.1f}; "
              f"max abs error {err:.1e}")
        if args.compile:
            print(f"{'':>8} compiled Winograd {1e3 * t_comp:6.0f} ms "
                  f"({gflop / t_comp:4.0f} GFLOP/s of direct work), x{t_comp / t_direct:.1f} of direct; "
                  f"compile {t_compile:.0f} s; max abs error {err_c:.1e}")


if __name__ == "__main__":
    main()
