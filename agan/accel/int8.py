"""int8 inference of G on the CPU: quantized once per G and cached (built by ``agan.accel.quantize``).

    int8_forward(G, x)     # G(x) by the int8 path; the first call quantizes and compiles (or loads the
                           # package ``agan tune`` saved for G on this machine: ``agan.accel.aoti``)

The cache holds one quantized model per G (weak reference), rebuilt when G's parameters or the split change.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable

from torch import Tensor

from agan.accel import aoti
from agan.accel.quantize import quantize_generator
from agan.accel.records import params_key, recorded_keep_float
from agan.models.generator import Generator, GeneratorOutput

__all__ = ["int8_forward", "is_compiled"]

_INT8: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _split(G: Generator, keep_float: str | Iterable[str] | None) -> tuple[str, ...]:
    """keep_float, or for None the split ``agan tune`` chose for G on this machine (agan.accel.records), else
    the default."""
    if keep_float is None:
        keep_float = recorded_keep_float(G)
    return (keep_float,) if isinstance(keep_float, str) else tuple(keep_float)


def int8_forward(G: Generator, x: Tensor, calib: list[Tensor] | None = None,
                 keep_float: str | Iterable[str] | None = None) -> GeneratorOutput:
    """G(x) by the int8 path: quantizes G on first use (calibration on ``calib`` or the default synthetic
    images) and caches the result per G (rebuilt when its parameters or the split change); any H, W
    (multiples of 4, >= 8). ``keep_float`` None: the split ``agan tune`` recorded for G here, else the
    default."""
    key = (params_key(G), _split(G, keep_float))
    cached = _INT8.get(G)
    if cached is None or cached[0] != key:
        q = aoti.load_cached(G, key[1]) if calib is None else None  # built by agan tune: no compile
        cached = (key, q or quantize_generator(G, calib, keep_float=key[1]))
        _INT8[G] = cached
    return cached[1](x)


def is_compiled(G: Generator, keep_float: str | Iterable[str] | None = None) -> bool:
    """True when :func:`int8_forward` has already quantized and compiled G (its current weights, this split)
    in this process: a further int8 call costs no warm-up."""
    cached = _INT8.get(G)
    return (cached is not None and cached[0] == (params_key(G), _split(G, keep_float))
            and cached[1].ready)
