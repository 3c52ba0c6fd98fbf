"""agan.cpu: what this CPU can do, the AVX2 cap, and what each precision does with it.

These hold on every machine: the CPU kinds are built from their flag sets, and the AVX2-only behaviour is
checked through AGAN_CPU_CAP=avx2 (in this process the kit's decisions; in a subprocess oneDNN and ATen too).
.ci/run also runs the precision tests once with the whole process capped.
"""

import platform
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from agan import cpu
from agan.cpu import CpuCaps, cpu_caps
from agan.precision import resolve_precision

X86 = platform.machine().lower() in ("x86_64", "amd64")

ZEN3 = {"avx2", "fma"}  # AMD Zen 3, Intel Haswell .. Comet Lake
SKYLAKE_SP = ZEN3 | {"avx512f", "avx512bw", "avx512vl", "avx512dq"}
CASCADE_LAKE = SKYLAKE_SP | {"avx512_vnni"}
ZEN4 = CASCADE_LAKE | {"avx512_bf16"}
SAPPHIRE_RAPIDS = ZEN4 | {"amx_tile", "amx_bf16", "amx_int8"}
ALDER_LAKE = ZEN3 | {"avx_vnni"}  # AVX-VNNI without AVX-512


def caps(flags, machine="x86_64"):
    return CpuCaps("test CPU", frozenset(flags), machine)


@pytest.mark.parametrize("flags,native,ok,vnni", [
    (ZEN3, False, False, False),
    (SKYLAKE_SP, False, True, False),  # oneDNN emulates bf16 on AVX-512 BW/VL/DQ (slower than fp32)
    (CASCADE_LAKE, False, True, True),
    (ZEN4, True, True, True),
    (SAPPHIRE_RAPIDS, True, True, True),
    (ALDER_LAKE, False, False, True),
    (ZEN3 | {"avx_ne_convert", "avx_vnni"}, True, True, True),  # Sierra Forest / Arrow Lake
])
def test_capabilities_of_each_cpu_kind(flags, native, ok, vnni):
    c = caps(flags)
    assert (c.bf16_native, c.bf16_ok, c.vnni) == (native, ok, vnni)
    why = c.why_no_bf16()
    assert (why is None) == ok
    if why:  # one line that names what the CPU has and what to use instead
        assert "\n" not in why and "avx2 fma" in why and "--precision fp32" in why


def test_arm():
    assert caps({"bf16", "asimd"}, "aarch64").bf16_native
    assert not caps({"asimd"}, "aarch64").bf16_ok and caps({"asimd"}, "aarch64").vnni


def test_this_cpu():
    c = cpu_caps()
    assert c.name and c.machine == platform.machine()
    assert c.flags <= set(cpu.ISA_FLAGS) | {"bf16"}
    if X86 and c.capped is None:
        with open("/proc/cpuinfo") as f:
            flags = set(next(ln for ln in f if ln.startswith("flags")).split())
        assert c.flags == flags & set(cpu.ISA_FLAGS)
    assert c.describe() in c.key()


def test_cap_acts_as_an_avx2_only_cpu(monkeypatch):
    for var in ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY"):  # set in a capped run (.ci/run)
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv(cpu.CAP_ENV, "avx2")
    c = cpu_caps()
    assert c.capped == "avx2" and c.flags <= ZEN3
    assert not (c.bf16_native or c.bf16_ok or c.vnni or c.amx)
    assert "capped avx2" in c.key()  # agan tune's record for the capped CPU is its own
    monkeypatch.setenv(cpu.CAP_ENV, "avx512")
    with pytest.raises(ValueError, match="must be avx2"):
        cpu_caps()
    monkeypatch.delenv(cpu.CAP_ENV)
    for var, value in (("ONEDNN_MAX_CPU_ISA", "AVX2"), ("ATEN_CPU_CAPABILITY", "avx2")):
        with monkeypatch.context() as m:  # oneDNN or ATen capped by hand: the kit sees the same CPU
            m.setenv(var, value)
            assert cpu_caps().capped == "avx2"
    with monkeypatch.context() as m:
        m.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")
        assert cpu_caps().capped is None


def test_bf16_refused_in_one_line_on_an_avx2_cpu(monkeypatch):
    monkeypatch.setenv(cpu.CAP_ENV, "avx2")
    assert resolve_precision("auto", "cpu") == "fp32"
    assert resolve_precision("auto", "cpu", training=True) == "fp32"
    with pytest.raises(ValueError, match="precision bf16 needs a CPU") as e:
        resolve_precision("bf16", "cpu")
    assert "\n" not in str(e.value) and "acting as an AVX2-only CPU" in str(e.value)
    assert resolve_precision("fp32", "cpu") == "fp32"


def test_derain_bf16_on_an_avx2_cpu_exits_2_and_writes_nothing(monkeypatch, tmp_path, capsys):
    from agan.cli import main

    monkeypatch.setenv(cpu.CAP_ENV, "avx2")
    Image.fromarray(np.full((32, 48, 3), 128, np.uint8)).save(tmp_path / "a.png")
    out = tmp_path / "out"
    assert main(["derain", str(tmp_path / "a.png"), "--out", str(out), "--precision", "bf16",
                 "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "precision bf16 needs a CPU" in err[0]
    assert not out.exists()


def test_bench_lists_what_it_skipped(monkeypatch):
    from agan.experiments.bench import format_report, run_bench

    monkeypatch.setenv(cpu.CAP_ENV, "avx2")
    said = []
    r = run_bench(paths=["plain", "bf16", "fast32"], quick=True, train=False, synth=False,
                  progress=said.append)
    inf = r["inference"]
    assert list(inf["paths"]) == ["plain", "fast32"]
    assert list(inf["skipped"]) == ["bf16"] and "precision bf16 needs a CPU" in inf["skipped"]["bf16"]
    assert any(s.startswith("skipped bf16:") for s in said)
    text = format_report(r)
    assert "bf16" in text and "skipped" in text and "AVX2-only" in text
    with pytest.raises(ValueError, match="no path can run here"):
        run_bench(paths=["bf16"], quick=True, train=False, synth=False)


@pytest.mark.skipif(not X86, reason="the AVX2 cap is for x86 CPUs")
def test_cap_reaches_onednn_and_aten_in_a_new_process():
    """AGAN_CPU_CAP=avx2 set before the process starts: ``import agan`` caps ATen's kernels (and oneDNN's,
    through the same environment) before torch is imported."""
    code = ("import os, agan, torch; print(torch.backends.cpu.get_cpu_capability(), "
            "os.environ['ONEDNN_MAX_CPU_ISA'], agan.cpu.cpu_caps().vnni)")
    env = {k: v for k, v in __import__("os").environ.items()
           if k not in ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")}
    out = subprocess.run([sys.executable, "-c", code], env={**env, cpu.CAP_ENV: "avx2"}, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["AVX2", "AVX2", "False"]
