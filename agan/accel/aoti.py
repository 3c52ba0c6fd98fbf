"""The int8 G compiled ahead of time and kept on disk: a later process loads it instead of quantizing and
compiling (AOTInductor, ``torch._inductor.aoti_compile_and_package``; both costs:
docs/performance.md).

    save(q, path)              # q: an agan.accel.quantize.Int8Generator (what agan tune does)
    load(path, n_steps)        # -> Int8Generator running the package (the same outputs, bit for bit)
    package_path(G, keep)      # $AGAN_CACHE_DIR/int8/<key>.pt2

The key hashes ``agan.accel.records.record_key(G)`` (CPU and instruction sets, threads, torch and torchao
versions, G's weights), the split (``keep_float``), the float dtype and the graph's version, so a package
is only ever loaded where it was built, for the weights it was built from. It is a shared library built on
this machine: it is read only from the user's own cache folder, never from a path in a model file.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import torch
from torch import Tensor

from agan.accel.quantize import GRAPH_VERSION, MIN_SIDE, Int8Generator, float_dtype_of
from agan.accel.records import cache_path, record_key
from agan.atomic import atomic_path

__all__ = ["load", "load_cached", "package_path", "save"]


def package_path(G: torch.nn.Module, keep: tuple[str, ...], float_dtype: str = "auto") -> Path:
    key = (f"{record_key(G)} | keep {','.join(keep)} | float {float_dtype_of(float_dtype)}"
           f" | graph {GRAPH_VERSION}")
    return cache_path().parent / "int8" / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.pt2"


def save(q, path: Path) -> Path:
    """Compile ``q``'s converted graph ahead of time (H, W symbolic, inductor freezing) into ``path``."""
    import torch._inductor.config as inductor_config  # loads inductor (seconds): only when saving

    x = torch.rand(1, 3, 64, 96).contiguous(memory_format=torch.channels_last)  # (1, 3, H, W)
    h = torch.export.Dim("h", min=MIN_SIDE // 4, max=4096)  # H = 4 h
    w = torch.export.Dim("w", min=MIN_SIDE // 4, max=4096)
    with torch.no_grad():
        ep = torch.export.export(q.graph, (x,), dynamic_shapes={"x": {2: 4 * h, 3: 4 * w}})
        with atomic_path(path, suffix=".pt2") as tmp, inductor_config.patch(freezing=True):
            torch._inductor.aoti_compile_and_package(ep, package_path=str(tmp))
    return path


def load(path: Path, n_steps: int, keep: tuple[str, ...]):
    """An Int8Generator that runs the package at ``path``."""
    runner = torch._inductor.aoti_load_package(str(path))

    def run(x: Tensor) -> tuple[Tensor, ...]:  # x: (1, 3, H, W) channels-last
        return tuple(runner(x))

    return Int8Generator(graph=None, n_steps=n_steps, keep_float=keep, runner=run)


def load_cached(G, keep: tuple[str, ...]):
    """The package built for G and this split on this machine, loaded; None where there is none (or it does
    not load: said once on stderr, and the caller quantizes and compiles instead)."""
    path = package_path(G, keep)
    if not path.is_file():
        return None
    try:
        return load(path, G.steps, keep)
    except Exception as e:  # a stale or damaged package: fall back, never fail the derain
        print(f"agan: the int8 package {path} did not load ({type(e).__name__}: {e}); compiling instead",
              file=sys.stderr)
        return None
