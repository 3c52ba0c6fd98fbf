"""The arithmetic behind benchmark claims in the README (not their speed)."""

import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F


def _load(name: str):
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_winograd_f2x2_3x3_is_a_3x3_convolution():
    wb = _load("bench_winograd")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 12, 18, generator=g, dtype=torch.float64)  # (C, H, W)
    w = torch.randn(7, 5, 3, 3, generator=g, dtype=torch.float64)  # (K, C, 3, 3)
    out = wb.winograd_conv(x, wb.winograd_weights(w))  # (K, H, W)
    torch.testing.assert_close(out, F.conv2d(x[None], w, padding=1)[0], rtol=0, atol=1e-12)
