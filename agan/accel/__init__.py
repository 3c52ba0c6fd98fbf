"""Acceleration: faster ways to run the same G, for ``agan derain`` and anyone who wants speed over
readability. The plain path (``agan.infer``) imports none of it; ``derain(..., forward=...)`` takes one.

    fast       FastGenerator: G's forward organised for speed (NHWC, fused gates, in place), fp32/bf16/fp16
    quantize   int8 G by PyTorch 2 export quantization;  int8: run and cache it;  aoti: saved compiled copies
    tune       ``agan tune``: measure int8 against the float path here, and what ``--precision auto`` picks
    records    what tune measured, per CPU and weights;  malloc: glibc heap tuning;  toolchain: int8's needs

    forward = pick_forward(G, "auto", "cpu", pixels)   # (G, x) -> GeneratorOutput
    out, maps = derain(photo, model=G, settings=settings, forward=forward)
"""

from __future__ import annotations

import functools

import torch

from agan.accel import aoti
from agan.accel.fast import fast_forward
from agan.accel.int8 import int8_forward, is_compiled
from agan.accel.records import lookup, recorded_keep_float
from agan.accel.toolchain import require
from agan.accel.tune import pick_precision
from agan.models.generator import Generator

__all__ = ["int8_notes", "pick_forward", "pick_precision"]


def pick_forward(model: torch.nn.Module, precision: str = "auto", device: torch.device | str = "cpu",
                 pixels: float = 0.0):
    """A forward ``(G, x) -> G's output`` for ``precision`` on ``device``: "int8" (CPU, ``agan.accel.int8``),
    "fp32" | "bf16" | "fp16" (``agan.accel.fast``), or "auto": int8 where ``agan tune`` measured it worth a
    job of ``pixels`` (at G's scale) here, else what ``agan.precision`` says (bf16 on CPUs with native bf16,
    fp16 on CUDA, else fp32; ``pick_precision`` says which)."""
    precision = pick_precision(model, device, pixels, precision)
    if precision == "int8":
        if not isinstance(model, Generator):
            raise ValueError("precision int8 is for the attentive GAN generator only")
        require()  # torchao, oneDNN and a C++ compiler, or one line naming what is missing
        return int8_forward
    return functools.partial(fast_forward, precision=precision)


def int8_notes(model: torch.nn.Module) -> list[str]:
    """What a user should know before an int8 job: that the first image quantizes and compiles G (no saved
    package), and that ``agan tune`` measured int8 slower than the float path here."""
    if not isinstance(model, Generator):
        return []
    notes = []
    entry = lookup(model) or {}
    if entry.get("faster") is False:
        base = entry.get("base", "the float path")
        notes.append(f"int8: agan tune measured it slower than {base} on this CPU for these weights; "
                     "--precision auto runs the faster one")
    if not is_compiled(model) and not aoti.package_path(model, recorded_keep_float(model)).is_file():
        notes.append("int8: the first image quantizes and compiles G (docs/performance.md); `agan tune` "
                     "saves a compiled copy for later runs")
    return notes
