"""``--precision auto`` with a measured record (agan.infer.choose): int8 only where ``agan tune`` found it
faster on this machine, within the quality bounds, and for a job that repays its warm-up. No compile here:
the record is written by hand (``tests/test_int8.py`` runs the real ``tune``)."""

from __future__ import annotations

import json

import pytest
import torch

from agan.infer import choose, int8
from agan.infer.load import load_generator
from agan.infer.release import default_weights
from agan.precision import resolve_precision

BASE = resolve_precision("auto", "cpu")  # what auto runs without a record


@pytest.fixture()
def G():
    return load_generator(default_weights(), "cpu")


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AGAN_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(int8, "available", lambda: True)  # the choice, not the toolchain, is tested here
    monkeypatch.setattr(int8, "is_compiled", lambda G, *a: False)
    return tmp_path


def _record(G, **kw):
    entry = {"base": BASE, "size": [240, 360], "base_s_per_mpx": 2.0, "int8_s_per_mpx": 1.0, "warmup_s": 40.0,
             "psnr_worst": 40.0, "iou_worst": 0.99, "faster": True, "eligible": True, "keep_float": ["arn"],
             **kw}
    path = choose.cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({choose.record_key(G): entry}))


def test_without_a_record_auto_is_the_float_path(G, cache):
    assert choose.lookup(G) is None
    assert choose.pick_precision(G, "cpu", 1e12) == BASE


def test_record_int8_only_when_the_job_repays_the_warmup(G, cache):
    _record(G)  # saves 1 s per Mpx, warm-up 40 s
    assert choose.pick_precision(G, "cpu", 30e6) == BASE  # 30 s saved < 40 s warm-up
    assert choose.pick_precision(G, "cpu", 50e6) == "int8"
    assert choose.pick_precision(G, "cpu", 50e6, precision="fp32") == "fp32"  # explicit choice kept


@pytest.mark.parametrize("damage", [{"warmup_s": None}, {"int8_s_per_mpx": "fast"}, {"keep_float": None}])
def test_a_damaged_record_is_as_if_there_were_none(G, cache, damage):
    _record(G, **damage)
    assert choose.pick_precision(G, "cpu", 1e12) == BASE
    choose.cache_path().write_text("{not json")
    assert choose.lookup(G) is None and choose.pick_precision(G, "cpu", 1e12) == BASE


def test_a_record_without_the_int8_toolchain_keeps_the_float_path(G, cache, monkeypatch):
    _record(G)
    monkeypatch.setattr(int8, "available", lambda: False)
    assert choose.pick_precision(G, "cpu", 1e12) == BASE


def test_a_saved_package_costs_only_its_load(G, cache):
    """agan tune's ahead-of-time package (agan.infer.aoti): the warm-up left is its load, while it exists."""
    from agan.infer import aoti

    _record(G, load_s=1.0)  # saves 1 s per Mpx; compiling 40 s, loading 1 s
    assert choose.pick_precision(G, "cpu", 5e6) == BASE  # no package file: the compile must be repaid
    path = aoti.package_path(G, ("arn",))
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    assert choose.pick_precision(G, "cpu", 5e6) == "int8"  # 5 s saved > 1 s load
    assert choose.pick_precision(G, "cpu", 0.5e6) == BASE


def test_already_compiled_int8_costs_no_warmup(G, cache, monkeypatch):
    _record(G)
    monkeypatch.setattr(int8, "is_compiled", lambda G, *a: True)
    assert choose.pick_precision(G, "cpu", 0.1e6) == "int8"


@pytest.mark.parametrize("why", [{"eligible": False, "faster": False}, {"eligible": False, "iou_worst": 0.8},
                                 {"base": "other"}])
def test_ineligible_or_stale_record_keeps_the_float_path(G, cache, why):
    _record(G, **why)
    assert choose.pick_precision(G, "cpu", 1e12) == BASE


def test_int8_runs_the_recorded_split(G, cache):
    """--precision int8 (and auto) run the split agan tune chose for these weights, else the default."""
    assert choose.recorded_keep_float(G) == int8.DEFAULT_KEEP_FLOAT
    _record(G, keep_float=[])
    assert choose.recorded_keep_float(G) == ()  # all int8 passed the bounds and was fastest
    _record(G, keep_float=[], eligible=False)
    assert choose.recorded_keep_float(G) == int8.DEFAULT_KEEP_FLOAT


def test_record_is_per_weights(G, cache):
    _record(G)
    other = load_generator(default_weights(), "cpu")
    with torch.no_grad():
        other.autoencoder.head_O.bias.add_(1e-3)  # other weights: another fingerprint
    assert choose.lookup(other) is None and choose.pick_precision(other, "cpu", 1e12) == BASE


def test_cuda_auto_stays_fp16(G, cache):
    _record(G)
    if torch.cuda.is_available():
        assert choose.pick_precision(G.cuda(), "cuda", 1e12) == "fp16"
    with pytest.raises(ValueError, match="int8 is for inference on the CPU"):
        choose.pick_precision(G, "cuda", 1.0, precision="int8")


def test_run_pixels_follows_the_derain_scale(G):
    assert choose.run_pixels(G, (480, 720), 0) == 480 * 720
    assert choose.run_pixels(G, (480, 720), 240) == 160 * 240
    assert choose.run_pixels(G, (100, 120), 240) == 100 * 120  # smaller than the scale: as it is


def test_derain_files_reports_an_auto_int8_choice(G, cache, tmp_path, monkeypatch, capsys):
    """agan derain --precision auto: one choice per job, from the files' sizes; said on stderr."""
    from PIL import Image

    from agan.infer import batch

    _record(G, warmup_s=0.0)
    seen = []
    monkeypatch.setattr(batch, "_derain_one", lambda f, t, o, m, s, kw: seen.append(kw["precision"]))
    files = []
    for i in range(2):
        files.append(tmp_path / f"{i}.png")
        Image.new("RGB", (64, 48)).save(files[-1])
    report = batch.derain_files(files, tmp_path / "out", G, precision="auto", progress=True)
    assert report.done == 2 and seen == ["int8", "int8"]
    err = capsys.readouterr().err
    assert "precision auto: int8" in err and "the first image quantizes and compiles" in err  # no package
    from agan.infer import aoti

    path = aoti.package_path(G, ("arn",))
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    batch.derain_files(files, tmp_path / "out2", G, precision="int8", progress=True)
    assert "compiles" not in capsys.readouterr().err  # a saved package: loaded, nothing to warn of


def test_int8_says_in_one_line_when_tune_measured_it_slower(G, cache, capsys):
    """``agan derain --precision int8`` where ``agan tune`` found int8 slower than the float path on this CPU
    for these weights: one line says so (and that auto runs the faster one); a record that found it faster
    says nothing of the kind."""
    from agan.infer.batch import _say_int8_warmup

    _record(G, faster=False, eligible=False, int8_s_per_mpx=3.0)
    _say_int8_warmup(G)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "slower" in ln]
    assert lines == [f"int8: agan tune measured it slower than {BASE} on this CPU for these weights; "
                     "--precision auto runs the faster one"]
    _record(G)
    _say_int8_warmup(G)
    assert "slower" not in capsys.readouterr().err


def test_the_record_is_kept_per_cpu_capability(G, cache, monkeypatch):
    """The same weights on the same machine acting as an AVX2-only CPU (agan.cpu) have their own record:
    int8's speed and its activation range depend on what the CPU can do."""
    for var in ("AGAN_CPU_CAP", "ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY"):  # set in make test-avx2
        monkeypatch.delenv(var, raising=False)
    _record(G)
    assert choose.lookup(G) is not None
    monkeypatch.setenv("AGAN_CPU_CAP", "avx2")
    assert "capped avx2" in choose.record_key(G) and choose.lookup(G) is None
