"""The int8 path's toolchain: torchao's PT2E quantization, oneDNN and a C++ compiler for inductor. Whether
they are here (cheap: finds torchao without importing it), and torchao's functions, imported on first use."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import shutil

import torch

__all__ = ["available", "require", "torchao_pt2e", "unavailable_reason"]


class _DropLines(logging.Filter):
    """Drops log records that begin with one of ``starts`` (the rest of the logger's records pass)."""

    def __init__(self, *starts: str):
        super().__init__()
        self.starts = starts

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.starts)


# Two lines torch logs on every int8 run that say nothing about it: torchao 0.18 registers an Enum with
# torch's pytree on import ("... is an Enum subclass ... deprecated"), and inductor's C++ build looks for a
# CUDA toolkit even for CPU code ("No CUDA runtime is found, using CUDA_HOME=...").
logging.getLogger("torch.utils._pytree").addFilter(_DropLines("%s is an Enum subclass"))
logging.getLogger("torch.utils.cpp_extension").addFilter(_DropLines("No CUDA runtime is found"))


def unavailable_reason() -> str | None:
    """Why the int8 path cannot run here (one line naming what to install), or None when it can. Cheap: finds
    torchao without importing it (an import costs seconds of a CLI's cold start)."""
    need = "the int8 path needs torchao's PT2E quantization: pip install 'torchao>=0.18'"
    if importlib.util.find_spec("torchao") is None:
        return need
    try:
        major, minor = (int(v) for v in importlib.metadata.version("torchao").split(".")[:2])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return need
    if (major, minor) < (0, 18):
        return need
    if not torch.backends.mkldnn.is_available():
        return "the int8 path needs a torch build with oneDNN (mkldnn)"
    if not any(shutil.which(c) for c in ("g++", "c++", "clang++")):
        return "the int8 path compiles with inductor and needs a C++ compiler (Debian: apt-get install g++)"
    return None


def torchao_pt2e():
    """(prepare_pt2e, convert_pt2e, x86_inductor_quantizer module) from torchao, imported on first use (an
    import costs seconds), after this module's log filters are in place."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq

    return prepare_pt2e, convert_pt2e, xiq


def require() -> None:
    """Raise a one-line ValueError naming what to install when the int8 path cannot run here."""
    reason = unavailable_reason()
    if reason is not None:
        raise ValueError(reason)


def available() -> bool:
    """True when torchao's PT2E quantization, oneDNN and a C++ compiler (inductor) are all here."""
    return unavailable_reason() is None
