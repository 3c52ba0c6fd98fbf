"""What this CPU can do, decided in one place: the instruction sets behind each precision's fast path, and
what oneDNN (torch's CPU convolutions) will accept.

    caps = cpu_caps()
    caps.bf16_native        # hardware bf16 dot products (avx512_bf16, AMX-BF16, AVX-NE-CONVERT; Arm bf16)
    caps.bf16_ok            # oneDNN runs bf16 convs at all (native, or emulated on AVX-512 BW/VL/DQ)
    caps.vnni               # u8 x s8 dot products without 16-bit saturation (AVX512-VNNI, AVX-VNNI, AMX-INT8)
    caps.why_no_bf16()      # None, or one line naming what the CPU lacks

Who asks: ``agan.precision`` (what "auto" and "bf16" mean), ``agan.accel.quantize`` (full-range or 7-bit
activations), ``agan.accel.records`` (the key of agan tune's record), ``agan bench`` (which paths it can
time), training's autocast and the tests.

**Acting as a smaller CPU.** ``AGAN_CPU_CAP=avx2`` makes the kit see only what an AVX2-only CPU has (AMD
Zen 3, most laptops before 2020): no AVX-512, no VNNI, no AMX, no native bf16. Set it before the process
starts and the kit also caps oneDNN and ATen (``ONEDNN_MAX_CPU_ISA=AVX2``, ``ATEN_CPU_CAPABILITY=avx2``,
set by ``import agan`` when not already set, before torch is imported), so that an AVX-512 or AMX machine
runs the AVX2 kernels and checks the AVX2 behaviour. Either variable set by hand caps this view too:
oneDNN capped at AVX2 runs no bf16 conv and saturates int8 products, whatever the silicon has.
"""

from __future__ import annotations

import functools
import os
import platform
from dataclasses import dataclass

__all__ = ["CAP_ENV", "ISA_FLAGS", "CpuCaps", "apply_cap_env", "cpu_caps", "cpu_model_name", "read_cpuinfo"]

CAP_ENV = "AGAN_CPU_CAP"
# the flags (as /proc/cpuinfo names them) that decide a fast path here
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_vnni", "avx_vnni",
             "avx512_bf16", "avx_ne_convert", "amx_tile", "amx_bf16", "amx_int8")
_AVX2_LEVEL = frozenset({"avx2", "fma"})  # what an AVX2-only CPU (Zen 3, Haswell..Comet Lake) has
# oneDNN's ONEDNN_MAX_CPU_ISA values at or below AVX2 (no bf16 convs, no VNNI; oneDNN's CPU dispatcher docs)
_ONEDNN_AT_MOST_AVX2 = ("SSE41", "AVX", "AVX2")


def read_cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo ({"model name": ..., "flags": ...}); {} where there is
    none (macOS, Windows)."""
    out: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    if out:
                        break
                    continue
                key, _, value = line.partition(":")
                out.setdefault(key.strip().lower(), value.strip())
    except OSError:
        pass
    return out


def cpu_model_name() -> str:
    info = read_cpuinfo()
    return info.get("model name") or platform.processor() or platform.machine() or "unknown"


def _cap() -> str | None:
    """"avx2" when the kit should act as an AVX2-only CPU: AGAN_CPU_CAP, or oneDNN / ATen capped by hand."""
    cap = os.environ.get(CAP_ENV, "").strip().lower()
    if cap and cap != "avx2":
        raise ValueError(f"{CAP_ENV} must be avx2 (or unset), got {cap!r}")
    if cap:
        return cap
    if os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper() in _ONEDNN_AT_MOST_AVX2:
        return "avx2"
    if os.environ.get("ATEN_CPU_CAPABILITY", "").strip().lower() in ("avx2", "default"):
        return "avx2"
    return None


def apply_cap_env() -> None:
    """Under AGAN_CPU_CAP=avx2, cap oneDNN and ATen too (each read once, at torch's first use of it): call
    before torch is imported. Values set by hand are kept."""
    if os.environ.get(CAP_ENV, "").strip().lower() == "avx2":
        os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX2")
        os.environ.setdefault("ATEN_CPU_CAPABILITY", "avx2")


@dataclass(frozen=True)
class CpuCaps:
    """The instruction sets of ISA_FLAGS this CPU has (after any cap), and what follows from them."""

    name: str
    flags: frozenset[str]
    machine: str  # platform.machine(): x86_64, aarch64, arm64, ...
    capped: str | None = None  # "avx2" when acting as an AVX2-only CPU

    @property
    def x86(self) -> bool:
        return self.machine.lower() in ("x86_64", "amd64", "i686", "x86")

    @property
    def bf16_native(self) -> bool:
        """Hardware bf16 dot products: the only CPUs where bf16 runs faster than fp32."""
        if not self.x86:
            return "bf16" in self.flags
        return bool(self.flags & {"avx512_bf16", "amx_bf16", "avx_ne_convert"})

    @property
    def bf16_ok(self) -> bool:
        """oneDNN runs bf16 convs here: natively, or emulated on AVX-512 BW/VL/DQ (slower than fp32)."""
        if not self.x86:
            return "bf16" in self.flags
        return self.bf16_native or {"avx512bw", "avx512vl", "avx512dq"} <= self.flags

    @property
    def vnni(self) -> bool:
        """u8 x s8 products accumulate in 32 bits. Without VNNI, oneDNN's x86 int8 kernels use vpmaddubsw,
        whose pairwise 16-bit sums saturate for activations above 127: 7-bit activations avoid it."""
        if not self.x86:
            return True  # Arm's int8 dot products (sdot/udot) accumulate in 32 bits
        return bool(self.flags & {"avx512_vnni", "avx_vnni", "amx_int8"})

    @property
    def amx(self) -> bool:
        return "amx_tile" in self.flags

    def why_no_bf16(self) -> str | None:
        """None where bf16 runs; else one line naming what this CPU lacks."""
        if self.bf16_ok:
            return None
        seen = " (acting as an AVX2-only CPU: AGAN_CPU_CAP / ONEDNN_MAX_CPU_ISA)" if self.capped else ""
        if not self.x86:
            return f"this CPU ({self.name}) has no bf16 instructions{seen}; use --precision fp32 (or auto)"
        return (f"precision bf16 needs a CPU with native bf16 (avx512_bf16, AMX or avx_ne_convert) or "
                f"AVX-512 BW/VL/DQ, and this one ({self.name}) has {self.describe()}{seen}; use --precision "
                "fp32 (or auto)")

    def describe(self) -> str:
        """The flags of ISA_FLAGS present, e.g. 'avx2 fma' (or 'none of ...')."""
        have = [f for f in ISA_FLAGS if f in self.flags]
        return " ".join(have) if have else "none of " + "/".join(ISA_FLAGS)

    def key(self) -> str:
        """Model name and instruction sets: what a measurement made here holds for (agan tune's record)."""
        return f"{self.name} [{self.describe()}]" + (f" capped {self.capped}" if self.capped else "")


@functools.lru_cache(maxsize=None)
def _caps(cap: str | None, onednn: str, aten: str) -> CpuCaps:
    info = read_cpuinfo()
    flags = frozenset(info.get("flags", info.get("features", "")).split())
    machine = platform.machine()
    if cap == "avx2":
        flags = flags & _AVX2_LEVEL
    keep = flags & set(ISA_FLAGS) | ({"bf16"} & flags)  # "bf16": Arm's name in /proc/cpuinfo
    return CpuCaps(name=info.get("model name") or platform.processor() or machine or "unknown",
                   flags=frozenset(keep), machine=machine, capped=cap)


def cpu_caps() -> CpuCaps:
    """This CPU's capabilities as the kit should treat them now (AGAN_CPU_CAP, oneDNN/ATen caps applied)."""
    return _caps(_cap(), os.environ.get("ONEDNN_MAX_CPU_ISA", ""), os.environ.get("ATEN_CPU_CAPABILITY", ""))
