"""The int8 path of G (agan.accel.quantize, run and cached by agan.accel.int8, saved by agan.accel.aoti,
measured by agan.accel.tune): PT2E static quantization of the shipped model, on small images.

Bounds (the issue's): int8 O vs fp32 O >= 35 dB PSNR per image, IoU of A_N >= 0.5 between int8 and fp32
>= 0.9 (0.5: the threshold ``derain``'s attention blend and the figures use for "drop here"), and quantizing
leaves the float model's weights and outputs unchanged. The first int8 call compiles with inductor (tens of
seconds cold, a few with a warm /tmp/torchinductor cache).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import agan.accel.tune as tuning
from agan.accel import aoti, int8, quantize, records, toolchain
from agan.accel.quantize import calibration_images
from agan.infer.load import load_generator
from agan.infer.shipped import default_weights

pytestmark = pytest.mark.skipif(not toolchain.available(), reason=str(toolchain.unavailable_reason()))


def _shipped():
    return load_generator(default_weights(), "cpu").model


def psnr(a, b) -> float:
    mse = float(((a.clamp(0, 1) - b.clamp(0, 1)) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def iou(a, b, t=0.5) -> float:
    a, b = a >= t, b >= t
    union = int((a | b).sum())
    return 1.0 if union == 0 else int((a & b).sum()) / union


@pytest.fixture(scope="module")
def shipped():
    torch.manual_seed(0)
    return _shipped()


def _unrolled_matches(G, x, atol=1e-5):
    """_Unrolled(G) (float, before quantization) gives G's outputs (A_1..A_N, S1, S2, O) within ``atol``."""
    from agan.infer import plain_forward

    ref = plain_forward(G, x)  # G's own forward, fp32
    with torch.inference_mode():
        out = quantize._Unrolled(G).eval()(x)
    want = (*ref.attention, ref.S1, ref.S2, ref.O)
    assert len(out) == len(want)
    for a, b in zip(want, out):
        assert a.shape == b.shape and b.dtype == torch.float32
        assert torch.allclose(a, b, rtol=0, atol=atol), (a - b).abs().max().item()
    return out


def test_unrolled_is_exact(shipped):
    """The export-friendly unrolled G (per-step module copies, fused gates (i, f, o, 2g), step 1
    specialised to (i, o, 2g) on X_1) is G's function: in float, before quantization, within 1e-5."""
    _unrolled_matches(shipped, calibration_images(1, (32, 48), seed=3000)[0])


@pytest.mark.parametrize("kw", [dict(width=0.25, steps=1), dict(width=0.25, steps=2),
                                dict(width=0.5, arn_width=0.25, steps=4), dict(width=0.25, attentive=False)])
def test_unrolled_is_exact_for_every_generator_shape(kw):
    """The same for one step only (the specialised first step alone), two steps, a narrower ARN and the
    autoencoder-only variant (no ARN to unroll)."""
    from agan.models import Generator

    torch.manual_seed(0)
    G = Generator(**kw).eval()
    out = _unrolled_matches(G, torch.rand(2, 3, 24, 36))
    assert len(out) == (kw.get("steps", 4) if kw.get("attentive", True) else 0) + 3


def test_the_exported_float_graph_is_g(shipped):
    """What prepare_pt2e receives: _Unrolled exported with H, W symbolic; at another size than the example
    it still computes G within 1e-5."""
    model = quantize._Unrolled(shipped).eval()
    x0 = calibration_images(1, (32, 48), seed=3000)[0].contiguous(memory_format=torch.channels_last)
    h = torch.export.Dim("h", min=quantize.MIN_SIDE // 4, max=4096)
    w = torch.export.Dim("w", min=quantize.MIN_SIDE // 4, max=4096)
    with torch.no_grad():
        gm = torch.export.export(model, (x0,), dynamic_shapes={"x": {2: 4 * h, 3: 4 * w}}).module()
        x = calibration_images(1, (40, 56), seed=3001)[0]
        ref = shipped(x)
        out = gm(x.contiguous(memory_format=torch.channels_last))
    for a, b in zip((*ref.attention, ref.S1, ref.S2, ref.O), out):
        assert a.shape == b.shape and torch.allclose(a, b, rtol=0, atol=1e-5)


def test_int8_quality_and_float_model_untouched(shipped):
    G = shipped
    before = {k: v.clone() for k, v in G.state_dict().items()}
    test = calibration_images(2, (64, 96), seed=3000)  # not the calibration images (seed 1000)
    with torch.inference_mode():
        ref = [G(x) for x in test]
    q = quantize.quantize_generator(G, calibration_images(4, (64, 96)))
    assert isinstance(q, quantize.Int8Generator) and q.runner is None and not q.ready  # compiled on first use
    for x, r in zip(test, ref):
        out = q(x)
        assert type(out) is type(r) and len(out.attention) == len(r.attention)
        assert out.O.shape == r.O.shape and out.O.dtype == torch.float32
        p, j = psnr(out.O, r.O), iou(out.attention[-1], r.attention[-1])
        assert p >= 35.0, f"int8 vs fp32 PSNR {p:.2f} dB < 35"
        assert j >= 0.9, f"attention IoU {j:.3f} < 0.9"
    assert q.ready and q.runner is not None
    # another size, same compiled graph (H, W symbolic)
    x = calibration_images(1, (56, 96), seed=3001)[0]  # > 5120 px: no recompile (a guard H*W > 5120)
    with torch.inference_mode():
        r = G(x)
    assert psnr(q(x).O, r.O) >= 35.0
    # the float model: same weights, same outputs
    after = G.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    with torch.inference_mode():
        assert torch.equal(G(test[0]).O, ref[0].O)


def test_rejects_cuda_and_tiny():
    q = quantize.Int8Generator(graph=None, n_steps=4, keep_float=())
    assert not q.ready
    with pytest.raises(ValueError, match="H, W >= 8"):
        q(torch.zeros(1, 3, 4, 8))
    with pytest.raises(ValueError, match="runs on CPU"):
        q(torch.zeros(1, 3, 8, 8, device="meta"))  # any device but the CPU


def test_float_dtype_of():
    from agan.cpu import cpu_caps

    assert quantize.float_dtype_of("fp32") == torch.float32
    assert quantize.float_dtype_of("bf16") == torch.bfloat16
    assert quantize.float_dtype_of("auto") == (torch.bfloat16 if cpu_caps().bf16_native else torch.float32)
    with pytest.raises(ValueError, match="float_dtype must be auto, bf16 or fp32"):
        quantize.float_dtype_of("fp16")


def test_derain_precision_int8_is_the_int8_path(shipped):
    """``agan derain --precision int8`` / ``derain(..., forward=agan.accel.pick_forward(G, "int8", "cpu"))``:
    the image derained through the int8 generator, within the quality bound of the fp32 result; the plain
    path's ``precision="int8"`` says where int8 is."""
    from agan.accel import pick_forward
    from agan.infer import derain

    image = calibration_images(1, (64, 96), seed=3002)[0][0].permute(1, 2, 0).numpy()  # (H, W, 3)
    forward = pick_forward(shipped, "int8", "cpu")
    assert forward is int8.int8_forward
    o32, maps32 = derain(image, model=shipped, precision="fp32", clip=False)
    o8, maps8 = derain(image, model=shipped, forward=forward, clip=False)
    assert o8.shape == o32.shape and len(maps8) == len(maps32)
    assert psnr(torch.from_numpy(o8), torch.from_numpy(o32)) >= 35.0
    assert shipped in int8._INT8 and int8.is_compiled(shipped)  # quantized once, cached for the next image
    with pytest.raises(ValueError, match="agan.accel"):
        derain(image, model=shipped, precision="int8")


def test_int8_is_a_cpu_inference_precision_auto_never_picks():
    from agan.precision import resolve_precision

    assert resolve_precision("int8", "cpu") == "int8"
    assert resolve_precision("auto", "cpu") in ("bf16", "fp32")  # only agan.accel.tune picks int8
    with pytest.raises(ValueError, match="int8 is for inference on the CPU"):
        resolve_precision("int8", "cuda")
    with pytest.raises(ValueError, match="int8 is for inference on the CPU"):
        resolve_precision("int8", "cpu", training=True)


def test_tune_records_what_auto_reads(shipped, tmp_path, monkeypatch):
    """``agan tune``: times the float path and two int8 splits (ARN float; all int8) through derain's own
    forward, checks each against fp32, and records the fastest within the bounds, which ``--precision auto``
    and ``int8`` then use (agan.accel.tune, agan.accel.records)."""
    monkeypatch.setenv("AGAN_CACHE_DIR", str(tmp_path))
    e = tuning.tune(shipped, size=(64, 96), repeats=1, n_quality=2)
    assert e["base"] in ("bf16", "fp32") and e["base_s_per_mpx"] > 0
    assert [t["keep_float"] for t in e["splits"]] == [list(records.DEFAULT_KEEP_FLOAT), []]
    for t in e["splits"]:
        assert t["ok"] == (t["psnr_worst"] >= tuning.MIN_PSNR and t["iou_worst"] >= tuning.MIN_IOU)
    default = e["splits"][0]
    assert default["ok"]  # the default split holds the bounds on the shipped model (as test_int8_quality)
    ok = [t for t in e["splits"] if t["ok"]]
    best = min(ok, key=lambda t: t["int8_s_per_mpx"])
    assert e["keep_float"] == best["keep_float"] and e["int8_s_per_mpx"] == best["int8_s_per_mpx"]
    assert e["eligible"] == e["faster"] == (e["int8_s_per_mpx"] < e["base_s_per_mpx"])
    assert records.lookup(shipped) == e and (tmp_path / "precision.json").is_file()
    assert records.recorded_keep_float(shipped) == (tuple(e["keep_float"]) if e["eligible"]
                                                    else records.DEFAULT_KEEP_FLOAT)
    # a 1e12-pixel job repays any warm-up: int8 exactly when the record allows it
    assert tuning.pick_precision(shipped, "cpu", 1e12) == ("int8" if e["eligible"] else e["base"])
    # the compiled int8 G saved ahead of time (agan.accel.aoti): a new process loads it instead of compiling.
    # tune saves it for an eligible split; where int8 was not faster on this machine, save it here, so that
    # the package path is tested on every machine
    keep = tuple(e["keep_float"])
    if not e["eligible"]:
        e = {**e, **tuning._save_package(shipped, keep, calibration_images(1, (64, 96))[0], print)}
    assert Path(e["package"]).is_file() and 0 <= e["load_s"] < e["warmup_s"]
    int8._INT8.pop(shipped, None)  # as in a fresh process
    monkeypatch.setattr(int8, "quantize_generator", lambda *a, **k: pytest.fail("compiled again"))
    assert not int8.is_compiled(shipped, keep)
    x = calibration_images(1, (64, 96), seed=3005)[0]
    with torch.inference_mode():
        r = shipped(x)
    out = int8.int8_forward(shipped, x, keep_float=keep)
    assert psnr(out.O, r.O) >= 35.0 and iou(out.attention[-1], r.attention[-1]) >= 0.9
    assert int8.is_compiled(shipped, keep)
    if e["eligible"]:  # loaded already: no warm-up left, so even one small image goes int8
        assert tuning.pick_precision(shipped, "cpu", 64 * 96) == "int8"
    # a damaged package: one line on stderr, and the caller quantizes and compiles instead
    Path(e["package"]).write_bytes(b"not a package")
    assert aoti.load_cached(shipped, keep) is None


def test_cell_tanh_is_tanh():
    """The int8 graph's ConvLSTM cell writes tanh(x) as 2 sigmoid(2x) - 1 (inductor's tanh costs ~3x its
    sigmoid): the same function in fp32, saturating at +-1 without overflow."""
    x = torch.cat([torch.linspace(-30, 30, 10001), torch.tensor([-1e30, 1e30, 0.0])])
    assert (quantize._tanh(x) - torch.tanh(x)).abs().max() <= 5e-7


def test_keep_float_names_whole_modules():
    """keep_float "autoencoder.conv1" keeps conv1 float, not conv10 (names match by whole components)."""
    from agan.config import Config
    from agan.models import build_generator

    model = quantize._Unrolled(build_generator(Config.preset("cpu"))).eval()
    floats = set(quantize._float_parts(model, ("autoencoder.conv1", "arn.lstm")))
    assert "autoencoder.conv1" in floats and "autoencoder.conv10" not in floats
    assert {f"arn.{t}.gates" for t in range(model.n_steps)} <= floats
    assert not any("res_blocks" in n for n in floats)


def test_int8_call_keeps_its_heap(monkeypatch):
    """An int8 call tunes glibc's heap and does not trim it afterwards: the next call reuses the freed
    full-resolution blocks instead of faulting them in again (docs/int8.md). Runs a stand-in compiled
    function (no quantization needed)."""
    import agan.accel.malloc as malloc

    calls = []

    class Libc:
        def mallopt(self, what, value):
            calls.append(("mallopt", what))

        def malloc_trim(self, pad):
            calls.append(("trim", pad))

    monkeypatch.setattr(malloc, "_libc", lambda: Libc())
    x = torch.rand(2, 3, 16, 24)

    def runner(x1):  # (1, 3, H, W) -> (A_1, S1, S2, O)
        return x1[:, :1], x1[..., ::4, ::4], x1[..., ::2, ::2], x1

    q = quantize.Int8Generator(None, 1, ("arn",), runner=runner)
    assert q.ready  # a runner given ready (an ahead-of-time package): no compile
    out = q(x)
    assert torch.equal(out.O, x) and out.S1.shape == (2, 3, 4, 6) and len(out.attention) == 1
    assert ("mallopt", malloc._M_MMAP_THRESHOLD) in calls and not any(c[0] == "trim" for c in calls)
