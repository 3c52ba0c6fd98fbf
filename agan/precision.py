"""Numeric precision: what "auto" means, for training and for inference, decided in one place.

    resolve_precision("auto", "cpu")                  # "bf16" on CPUs with native bf16 dot products, else
                                                      # "fp32"
    resolve_precision("auto", "cuda")                 # "fp16": inference (``agan derain``, ``agan bench``)
    resolve_precision("auto", "cuda", training=True)  # "bf16" on GPUs with native bf16 (Ampere+), else "fp16"
    with autocast(device, "bf16"): ...                # torch.autocast, or nothing for fp32

Why the two CUDA answers differ: a training step needs bf16's range (no loss scaling, no overflow in the
losses' gradients), while inference computes bounded images, where fp16 is as exact and at least as fast on
every GPU, including those without native bf16 (docs/design.md). On a CPU both use bf16 only where the CPU has
native bf16 dot products (avx512_bf16 / AMX / Arm bf16); emulated bf16 is slower than fp32. "int8"
(inference on the CPU, ``agan.accel.int8``) is never chosen here: whether it pays depends on the CPU, the
weights and the job (its first call per process quantizes and compiles; the warm-up's cost:
docs/performance.md#cold-start-of-agan-derain), so inference's "auto" asks
``agan.accel.tune.pick_precision``, which picks int8 only from an ``agan tune`` measurement (docs/int8.md).
"""

from __future__ import annotations

import contextlib

import torch

from agan.cpu import cpu_caps

__all__ = ["PRECISIONS", "autocast", "cpu_has_fast_bf16", "precision_dtype", "resolve_precision"]

PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")  # int8: inference on the CPU only (agan.accel.int8)
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def cpu_has_fast_bf16() -> bool:
    """True when the CPU has native bf16 dot products (x86 avx512_bf16, AMX-BF16 or AVX-NE-CONVERT; Arm
    bf16): ``agan.cpu.CpuCaps.bf16_native``."""
    return cpu_caps().bf16_native


def _cuda_has_native_bf16() -> bool:
    try:  # native bf16 only (Ampere and newer); emulated bf16 on a T4 is slower than fp16
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # older torch
        return torch.cuda.is_bf16_supported()


def resolve_precision(precision: str = "auto", device: torch.device | str = "cpu",
                      training: bool = False) -> str:
    """"auto" -> the precision this device runs fastest at (see the module docstring); the others are checked
    (fp16 needs CUDA, bf16 on the CPU a CPU that oneDNN runs it on: ``agan.cpu``) and returned."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {'|'.join(PRECISIONS)}, got {precision!r}")
    device = torch.device(device)
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if training and _cuda_has_native_bf16() else "fp16"
        return "bf16" if device.type == "cpu" and cpu_has_fast_bf16() else "fp32"
    if precision == "bf16" and device.type == "cpu" and (why := cpu_caps().why_no_bf16()):
        raise ValueError(why)  # oneDNN would fail inside every conv ("bf16 path needs the cpu support ...")
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("precision fp16 is for CUDA; on CPU use bf16 (or fp32)")
    if precision == "int8" and (training or device.type != "cpu"):
        raise ValueError("precision int8 is for inference on the CPU; on CUDA use fp16 (or auto)")
    return precision


def precision_dtype(precision: str) -> torch.dtype:
    """"fp32" | "bf16" | "fp16" -> the torch dtype."""
    return _DTYPES[precision]


def autocast(device: torch.device | str, precision: str = "auto", training: bool = False):
    """A ``torch.autocast`` context for the resolved precision, or a no-op context for fp32."""
    device = torch.device(device)
    precision = resolve_precision(precision, device, training)
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=_DTYPES[precision])

