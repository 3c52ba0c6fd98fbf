"""``--precision auto`` with a measured record (agan.accel.tune.pick_precision, agan.accel.records): int8 only
where ``agan tune`` found it faster on this machine, within the quality bounds, and for a job that repays its
warm-up; ``agan.accel.pick_forward`` / ``int8_notes`` and what ``agan derain`` says. No compile here: the
record is written by hand (``tests/test_int8.py`` runs the real ``tune``)."""

from __future__ import annotations

import json

import pytest
import torch

import agan.accel
import agan.accel.toolchain as toolchain
import agan.accel.tune as tuning
from agan.accel import aoti, int8_notes, pick_forward, records
from agan.accel.fast import fast_forward
from agan.accel.int8 import int8_forward
from agan.infer import DerainSettings
from agan.infer.load import load_generator
from agan.infer.shipped import default_weights
from agan.precision import resolve_precision

BASE = resolve_precision("auto", "cpu")  # what auto runs without a record


@pytest.fixture()
def G():
    return load_generator(default_weights(), "cpu").model


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AGAN_CACHE_DIR", str(tmp_path))
    # the choice, not the toolchain, is tested here: torchao, oneDNN and a C++ compiler count as present
    monkeypatch.setattr(toolchain, "unavailable_reason", lambda: None)
    _compiled(monkeypatch, False)
    return tmp_path


def _compiled(monkeypatch, yes: bool) -> None:
    """Whether int8_forward has compiled G in this process, as pick_precision and int8_notes see it."""
    monkeypatch.setattr(tuning, "is_compiled", lambda G, *a: yes)
    monkeypatch.setattr(agan.accel, "is_compiled", lambda G, *a: yes)


def _record(G, **kw):
    entry = {"base": BASE, "size": [240, 360], "base_s_per_mpx": 2.0, "int8_s_per_mpx": 1.0, "warmup_s": 40.0,
             "psnr_worst": 40.0, "iou_worst": 0.99, "faster": True, "eligible": True, "keep_float": ["arn"],
             **kw}
    path = records.cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({records.record_key(G): entry}))


def test_without_a_record_auto_is_the_float_path(G, cache):
    assert records.lookup(G) is None
    assert tuning.pick_precision(G, "cpu", 1e12) == BASE


def test_record_int8_only_when_the_job_repays_the_warmup(G, cache):
    _record(G)  # saves 1 s per Mpx, warm-up 40 s
    assert tuning.pick_precision(G, "cpu", 30e6) == BASE  # 30 s saved < 40 s warm-up
    assert tuning.pick_precision(G, "cpu", 50e6) == "int8"
    assert tuning.pick_precision(G, "cpu", 50e6, precision="fp32") == "fp32"  # explicit choice kept
    assert tuning.pick_precision(torch.nn.Conv2d(3, 3, 3), "cpu", 1e12) == BASE  # not an attentive G


@pytest.mark.parametrize("damage", [{"warmup_s": None}, {"int8_s_per_mpx": "fast"}, {"keep_float": None}])
def test_a_damaged_record_is_as_if_there_were_none(G, cache, damage):
    _record(G, **damage)
    assert tuning.pick_precision(G, "cpu", 1e12) == BASE
    records.cache_path().write_text("{not json")
    assert records.lookup(G) is None and tuning.pick_precision(G, "cpu", 1e12) == BASE


def test_a_record_without_the_int8_toolchain_keeps_the_float_path(G, cache, monkeypatch):
    _record(G)
    monkeypatch.setattr(toolchain, "unavailable_reason", lambda: "the int8 path needs torchao: pip install x")
    assert tuning.pick_precision(G, "cpu", 1e12) == BASE
    assert pick_forward(G, "auto", "cpu", 1e12).func is fast_forward  # the float path's forward
    with pytest.raises(ValueError, match="needs torchao"):
        pick_forward(G, "int8", "cpu")


def test_a_saved_package_costs_only_its_load(G, cache):
    """agan tune's ahead-of-time package (agan.accel.aoti): the warm-up left is its load, while it exists."""
    _record(G, load_s=1.0)  # saves 1 s per Mpx; compiling 40 s, loading 1 s
    assert tuning.pick_precision(G, "cpu", 5e6) == BASE  # no package file: the compile must be repaid
    path = aoti.package_path(G, ("arn",))
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    assert tuning.pick_precision(G, "cpu", 5e6) == "int8"  # 5 s saved > 1 s load
    assert tuning.pick_precision(G, "cpu", 0.5e6) == BASE


def test_already_compiled_int8_costs_no_warmup(G, cache, monkeypatch):
    _record(G)
    _compiled(monkeypatch, True)
    assert tuning.pick_precision(G, "cpu", 0.1e6) == "int8"


@pytest.mark.parametrize("why", [{"eligible": False, "faster": False}, {"eligible": False, "iou_worst": 0.8},
                                 {"base": "other"}])
def test_ineligible_or_stale_record_keeps_the_float_path(G, cache, why):
    _record(G, **why)
    assert tuning.pick_precision(G, "cpu", 1e12) == BASE


def test_int8_runs_the_recorded_split(G, cache):
    """--precision int8 (and auto) run the split agan tune chose for these weights, else the default."""
    assert records.recorded_keep_float(G) == records.DEFAULT_KEEP_FLOAT
    _record(G, keep_float=[])
    assert records.recorded_keep_float(G) == ()  # all int8 passed the bounds and was fastest
    _record(G, keep_float=[], eligible=False)
    assert records.recorded_keep_float(G) == records.DEFAULT_KEEP_FLOAT


def test_record_is_per_weights(G, cache):
    _record(G)
    other, _ = load_generator(default_weights(), "cpu")
    with torch.no_grad():
        other.autoencoder.head_O.bias.add_(1e-3)  # other weights: another fingerprint
    assert records.lookup(other) is None and tuning.pick_precision(other, "cpu", 1e12) == BASE


def test_cuda_auto_stays_fp16(G, cache):
    _record(G)
    if torch.cuda.is_available():
        assert tuning.pick_precision(G.cuda(), "cuda", 1e12) == "fp16"
    with pytest.raises(ValueError, match="int8 is for inference on the CPU"):
        tuning.pick_precision(G, "cuda", 1.0, precision="int8")


def test_run_pixels_follows_the_derain_scale(tmp_path):
    """The job's pixels at G's scale (what the saving is counted on): derain's reduction to settings.size."""
    from PIL import Image

    assert tuning.run_pixels(DerainSettings(size=0), (480, 720)) == 480 * 720
    assert tuning.run_pixels(DerainSettings(size=240), (480, 720)) == 160 * 240
    assert tuning.run_pixels(DerainSettings(size=240), (100, 120)) == 100 * 120  # smaller: as it is
    Image.new("RGB", (720, 480)).save(tmp_path / "a.png")  # W x H
    Image.new("RGB", (120, 100)).save(tmp_path / "b.png")
    (tmp_path / "c.png").write_bytes(b"not an image")  # counted 0 here, reported when it is read
    files = [tmp_path / n for n in ("a.png", "b.png", "c.png", "missing.png")]
    assert tuning.file_pixels(DerainSettings(size=240), files) == 160 * 240 + 100 * 120
    assert tuning.file_pixels(DerainSettings(), files) == 480 * 720 + 100 * 120


def test_pick_forward_runs_what_pick_precision_picks(G, cache):
    """agan.accel.pick_forward: the int8 forward where the record says int8 repays this job, else the fast
    float path at the precision auto resolves to; an explicit precision is kept."""
    _record(G)  # saves 1 s per Mpx, warm-up 40 s
    assert pick_forward(G, "auto", "cpu", 50e6) is int8_forward
    assert pick_forward(G, "int8", "cpu") is int8_forward
    for precision, pixels, want in (("auto", 30e6, BASE), ("auto", 0.0, BASE), ("fp32", 50e6, "fp32")):
        f = pick_forward(G, precision, "cpu", pixels)
        assert f.func is fast_forward and f.keywords == {"precision": want}
    with pytest.raises(ValueError, match="attentive GAN generator only"):
        pick_forward(torch.nn.Conv2d(3, 3, 3), "int8", "cpu")


def _images(folder, n=2):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(n):
        files.append(folder / f"{i}.png")
        Image.new("RGB", (64, 48)).save(files[-1])
    return files


def test_agan_derain_reports_an_auto_int8_choice(G, cache, tmp_path, monkeypatch, capsys):
    """agan derain --precision auto: one choice per job, from the files' sizes, said on stderr with what
    the first int8 image costs; every file runs the chosen forward. The batch itself picks nothing."""
    from agan.cli import main
    from agan.infer import batch

    _record(G, warmup_s=0.0)  # the CLI loads the same weights (the kit's model): the same record
    seen = []
    monkeypatch.setattr(batch, "_derain_one", lambda f, t, o, m, s, kw: seen.append(kw.get("forward")))
    files = _images(tmp_path / "in")
    assert main(["derain", *map(str, files), "--out", str(tmp_path / "out"), "--device", "cpu"]) == 0
    assert seen == [int8_forward, int8_forward]
    out = capsys.readouterr()
    assert "derained 2 of 2" in out.out
    # no package saved: the first image quantizes and compiles
    assert "precision auto: int8" in out.err and "the first image quantizes and compiles" in out.err
    path = aoti.package_path(G, ("arn",))
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    seen.clear()
    assert main(["derain", *map(str, files), "--out", str(tmp_path / "out2"), "--device", "cpu",
                 "--precision", "int8"]) == 0
    err = capsys.readouterr().err
    assert seen == [int8_forward] * 2 and "compiles" not in err  # a saved package: loaded, nothing to warn of
    assert "precision auto" not in err  # int8 asked for: nothing chosen
    seen.clear()  # derain_files runs the forward it is given, whatever the record says
    report = batch.derain_files(files, tmp_path / "out3", G, progress=False)
    assert report.done == 2 and seen == [None, None] and capsys.readouterr().err == ""


def test_int8_says_in_one_line_when_tune_measured_it_slower(G, cache, tmp_path, capsys):
    """``agan derain --precision int8`` where ``agan tune`` found int8 slower than the float path on this CPU
    for these weights: one line says so (and that auto runs the faster one); a record that found it faster
    says nothing of the kind."""
    slower = (f"int8: agan tune measured it slower than {BASE} on this CPU for these weights; "
              "--precision auto runs the faster one")
    _record(G, faster=False, eligible=False, int8_s_per_mpx=3.0)
    assert [n for n in int8_notes(G) if "slower" in n] == [slower]
    from agan.cli import main
    from agan.infer import batch

    files = _images(tmp_path / "in", 1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(batch, "_derain_one", lambda *a: None)
        assert main(["derain", str(files[0]), "--out", str(tmp_path / "out"), "--device", "cpu",
                     "--precision", "int8"]) == 0
    assert [ln for ln in capsys.readouterr().err.splitlines() if "slower" in ln] == [slower]
    _record(G)
    assert not any("slower" in n for n in int8_notes(G))
    assert int8_notes(torch.nn.Conv2d(3, 3, 3)) == []  # not the attentive generator: nothing to say


def test_the_record_is_kept_per_cpu_capability(G, cache, monkeypatch):
    """The same weights on the same machine acting as an AVX2-only CPU (agan.cpu) have their own record:
    int8's speed and its activation range depend on what the CPU can do."""
    for var in ("AGAN_CPU_CAP", "ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY"):  # set in make test-avx2
        monkeypatch.delenv(var, raising=False)
    _record(G)
    assert records.lookup(G) is not None
    monkeypatch.setenv("AGAN_CPU_CAP", "avx2")
    assert "capped avx2" in records.record_key(G) and records.lookup(G) is None
