"""agan.accel.fast (FastGenerator, fast_forward, fused_gates), agan.accel.malloc, the precision helpers and
``agan bench --quick --json``.

Exactness only (speed is measured by ``agan bench``, never tested): the fp32 fast path equals the plain
Generator within 1e-4 max-abs on every output; bf16 is >= 40 dB PSNR from fp32 on a natural photo.
"""

import json

import numpy as np
import pytest
import torch

from agan.accel.fast import FastGenerator, channels_last, fast_forward, fused_gates, use_channels_last
from agan.accel.malloc import keep_freed_memory, trim_heap
from agan.config import Config
from agan.cpu import cpu_caps
from agan.infer import plain_forward
from agan.models import Generator
from agan.models.authors import import_authors_state_dict
from agan.precision import autocast, resolve_precision
from agan.train.step import amp_dtype
from tests.conftest import closed_form_authors_state_dict


def _outputs(out):
    return [*out.attention, out.S1, out.S2, out.O]


def _max_err(ref, out):
    a, b = _outputs(ref), _outputs(out)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.shape == y.shape and y.dtype == torch.float32
    return max((x - y).abs().max().item() for x, y in zip(a, b))


def _photo(h=64, w=96):
    """A natural photo (skimage's astronaut), centre crop resized to h x w: (1, 3, h, w) in [0, 1]."""
    skd = pytest.importorskip("skimage.data")
    from skimage.transform import resize

    img = skd.astronaut()[:384, 64:640]
    img = resize(img, (h, w), anti_aliasing=True)
    return torch.from_numpy(img).permute(2, 0, 1)[None].float().contiguous()


def _psnr(ref, x):
    peak = (ref.max() - ref.min()).item()  # the reference output's range (random-init G is not in [0, 1])
    return 10 * np.log10(peak**2 / ((ref - x) ** 2).mean().item())


@pytest.mark.parametrize("width,steps,attentive,batch", [
    (1.0, 4, True, 1),  # paper generator
    (0.25, 4, True, 2),
    (0.25, 1, True, 1),  # only the specialised first ConvLSTM step
    (0.25, 2, True, 1),
    (1.0, 4, False, 1),  # autoencoder-only variant (ablation A)
    ((0.5, 0.25), 4, True, 1),  # the cpu preset's narrower ARN (width, arn_width)
])
def test_fp32_matches_plain(width, steps, attentive, batch):
    width, arn_width = width if isinstance(width, tuple) else (width, None)
    G = Generator(width=width, steps=steps, attentive=attentive, arn_width=arn_width).eval()
    x = torch.rand(batch, 3, 32, 48)
    with torch.no_grad():
        ref = G(x)
    out = FastGenerator(G, precision="fp32")(x)
    assert len(out.attention) == (steps if attentive else 0)
    assert _max_err(ref, out) <= 1e-4


def test_fp32_matches_plain_authors_weights(authors_sd):
    """Closed-form weights of the authors' layout (larger activations than the default init)."""
    G = Generator().eval()
    G.load_state_dict(import_authors_state_dict(authors_sd))
    x = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        ref = G(x)
    err = _max_err(ref, FastGenerator(G, precision="fp32")(x))
    assert err <= 1e-4 * max(1.0, ref.O.abs().max().item())


@pytest.mark.parametrize("batch", [1, 2])
def test_fp32_row_bands(batch):
    """The ConvLSTM gates in bands of 3 rows (the last one partial): same result as the plain path."""
    G = Generator(width=0.25).eval()
    x = torch.rand(batch, 3, 40, 48)
    with torch.no_grad():
        ref = G(x)
    fast = FastGenerator(G, precision="fp32")
    fast.band_elements = batch * 48 * 4 * G.arn.channels * 3
    assert _max_err(ref, fast(x)) <= 1e-4


def test_fp32_without_channels_last():
    G = Generator(width=0.25).eval()
    x = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        ref = G(x)
    assert _max_err(ref, FastGenerator(G, precision="fp32", channels_last=False)(x)) <= 1e-4


@pytest.mark.parametrize("weights", ["default", "authors"])
def test_bf16_psnr_on_a_photo(weights):
    if not torch.backends.mkldnn.is_available():
        pytest.skip("bf16 convolutions need oneDNN")
    if cpu_caps().why_no_bf16():  # refused in one line there: tests/test_cpu.py
        pytest.skip(cpu_caps().why_no_bf16())
    torch.manual_seed(0)
    G = Generator().eval()
    if weights == "authors":
        G.load_state_dict(import_authors_state_dict(closed_form_authors_state_dict()))
    x = _photo()
    ref = FastGenerator(G, precision="fp32")(x)
    out = FastGenerator(G, precision="bf16")(x)
    assert _psnr(ref.O, out.O) >= 40
    assert _psnr(ref.attention[-1], out.attention[-1]) >= 40
    assert out.O.dtype == torch.float32 and out.O.is_contiguous()


def test_weights_follow_the_generator():
    """The cached weight copies are rebuilt when G's parameters change in place (e.g. an optimiser step)."""
    G = Generator(width=0.25).eval()
    fast = FastGenerator(G, precision="fp32")
    x = torch.rand(1, 3, 32, 48)
    before = fast(x).O
    with torch.no_grad():
        for p in G.parameters():
            p.mul_(1.1)
        ref = G(x)
    after = fast(x)
    assert (after.O - before).abs().max().item() > 1e-4
    assert _max_err(ref, after) <= 1e-4
    assert all(not p.is_inference() for p in G.parameters())  # G untouched by inference mode


def test_fast_forward_and_size_errors():
    G = Generator(width=0.25).eval()
    x = torch.rand(1, 3, 32, 48)
    ref = plain_forward(G, x)  # what agan.infer.derain runs by default: G's own forward
    assert _max_err(ref, fast_forward(G, x, "fp32")) <= 1e-4
    assert fast_forward(G, x, "fp32") is not None  # cached FastGenerator reused
    conv = torch.nn.Conv2d(3, 3, 3, padding=1)  # any other model: plain call under inference_mode
    y = fast_forward(conv, x, "fp32")
    assert torch.allclose(y, conv(x).detach())
    with pytest.raises(ValueError, match="divisible by 4"):
        FastGenerator(G, precision="fp32")(torch.rand(1, 3, 30, 48))
    with pytest.raises(ValueError, match="precision"):
        FastGenerator(G, precision="fp8")(x)


def test_inference_layout_is_nchw_for_16_bit_on_cuda_only():
    assert use_channels_last("cpu", torch.float32) and use_channels_last("cpu", torch.bfloat16)
    assert use_channels_last("cuda", torch.float32) and use_channels_last("cuda")
    assert not use_channels_last("cuda", torch.float16) and not use_channels_last("cuda:1", torch.bfloat16)
    # FastGenerator's default (None) resolves per call: NHWC weights on the CPU; an explicit False is kept
    G = Generator(width=0.25, steps=2).eval()
    x = torch.rand(1, 3, 16, 20)
    auto, nchw = FastGenerator(G, precision="fp32"), FastGenerator(G, precision="fp32", channels_last=False)
    torch.testing.assert_close(auto(x).O, nchw(x).O, rtol=0, atol=1e-5)
    assert auto._w["arn.head_in"][0].is_contiguous(memory_format=torch.channels_last)
    assert not nchw._w["autoencoder.conv1"][0].is_contiguous(memory_format=torch.channels_last)


def test_precision_helpers():
    assert resolve_precision("auto", "cuda") == "fp16"
    assert resolve_precision("auto", "cpu") == ("bf16" if cpu_caps().bf16_native else "fp32")
    assert resolve_precision("fp32", "cpu") == "fp32"
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("half", "cpu")
    with autocast("cpu", "fp32"):
        assert not torch.is_autocast_enabled("cpu")
    if cpu_caps().bf16_ok:
        with autocast("cpu", "bf16"):
            assert torch.is_autocast_enabled("cpu")
        # the training step autocasts in bf16, and needs no gradient scaler for it
        assert amp_dtype(Config(precision="bf16"), torch.device("cpu")) == torch.bfloat16
    else:  # one line naming what the CPU lacks (tests/test_cpu.py)
        with pytest.raises(ValueError, match="precision bf16 needs a CPU"):
            autocast("cpu", "bf16")
    m = torch.nn.Conv2d(3, 4, 3)
    channels_last(m, None)
    assert m.weight.is_contiguous(memory_format=torch.channels_last)
    assert trim_heap() in (True, False) and keep_freed_memory() in (True, False)


def test_bench_quick_json(capsys):
    from agan.cli import main

    assert main(["bench", "--quick", "--json", "--device", "cpu", "--paths", "plain,fast32,bf16"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert {"device", "torch", "threads", "inference", "train_step", "synth"} <= set(r)
    inf = r["inference"]
    assert {"size", "parameters", "gflops", "conv3x3_gflop_per_s", "paths", "skipped"} <= set(inf)
    assert inf["gflops"] > 0 and inf["parameters"] > 0
    bf16 = cpu_caps().bf16_ok  # where oneDNN has no bf16 conv, bench skips it and says why
    assert set(inf["paths"]) == {"plain", "fast32"} | ({"bf16"} if bf16 else set())
    assert set(inf["skipped"]) == (set() if bf16 else {"bf16"})
    for row in inf["paths"].values():
        assert ({"precision", "seconds", "gflop_per_s", "conv_fraction", "peak_memory_mb", "speedup"}
                <= set(row))
        assert row["seconds"] > 0 and row["speedup"] > 0
    assert inf["paths"]["plain"]["speedup"] == pytest.approx(1.0)
    assert set(inf["ceiling"]) == set(inf["matmul_gflop_per_s"]) == {"fp32"} | ({"bf16"} if bf16 else set())
    plain = inf["paths"]["plain"]["seconds"]
    for prec, c in inf["ceiling"].items():  # every FLOP at the best measured rate, and plain's time over that
        rate = max(inf["matmul_gflop_per_s"][prec], inf["conv3x3_gflop_per_s"][prec])
        assert rate > 0 and c["gflop_per_s"] == rate and c["seconds"] == pytest.approx(inf["gflops"] / rate)
        assert c["speedup"] == pytest.approx(plain / c["seconds"])
    t = r["train_step"]
    assert t["plain_seconds"] > 0 and t["fast_seconds"] > 0
    assert r["synth"]["pairs_per_s"] is None or r["synth"]["pairs_per_s"] > 0


def test_bench_rejects_bad_arguments(capsys):
    from agan.cli import main

    assert main(["bench", "--quick", "--paths", "plain,turbo", "--device", "cpu"]) == 2
    assert "turbo" in capsys.readouterr().err


def test_malloc_tuning_never_fixes_the_threshold_back(monkeypatch):
    """glibc's default mmap threshold is dynamic; a mallopt back to 128 KiB would make every later tensor an
    mmap (training after a derain ran at half speed). Leaving the block only trims."""
    import agan.accel.malloc as fast

    calls = []

    class Libc:
        def mallopt(self, what, value):
            calls.append(("mallopt", what, value))

        def malloc_trim(self, pad):
            calls.append(("trim", pad))

    monkeypatch.setattr(fast, "_libc", lambda: Libc())
    with fast.malloc_tuning():
        pass
    assert calls == [("mallopt", fast._M_MMAP_THRESHOLD, 1 << 30),
                     ("mallopt", fast._M_TRIM_THRESHOLD, 1 << 30), ("trim", 0)]
    calls.clear()  # the two halves, on their own: raise the thresholds (never lower them); trim
    assert fast.keep_freed_memory() is True and fast.trim_heap() is True
    assert calls == [("mallopt", fast._M_MMAP_THRESHOLD, 1 << 30),
                     ("mallopt", fast._M_TRIM_THRESHOLD, 1 << 30), ("trim", 0)]
    calls.clear()
    fast.trim_if_tuned()  # outside malloc_tuning: nothing
    with fast.malloc_tuning(), fast.malloc_tuning():  # re-entrant: tuned once, trimmed once at the end
        fast.trim_if_tuned()
    assert [c[0] for c in calls] == ["mallopt", "mallopt", "trim", "trim"]
    monkeypatch.setattr(fast, "_libc", lambda: None)  # no glibc: nothing to tune, said by the result
    assert fast.keep_freed_memory() is False and fast.trim_heap() is False


def test_fused_gates_are_the_convlstm_gates():
    """fused_gates: the gate conv reordered (i, f, o, 2g), so that one sigmoid gives i, f, o and
    tanh(g) = 2 sigmoid(2g) - 1; step 1's (i, o, 2g) conv reads X_1 alone (H_0 = 0)."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    C = 4
    gates = torch.nn.Conv2d(2 * C, 4 * C, 3, padding=1)
    (w, b), (w1, b1) = fused_gates(gates)
    assert w.shape == (4 * C, 2 * C, 3, 3) and w1.shape == (3 * C, C, 3, 3) and b1.shape == (3 * C,)
    assert not w.requires_grad and not w1.requires_grad
    X, H = torch.randn(1, C, 6, 7), torch.randn(1, C, 6, 7)
    with torch.no_grad():
        i, f, g, o = gates(torch.cat([X, H], 1)).chunk(4, 1)  # the plain ConvLSTM's order
        s = F.conv2d(torch.cat([X, H], 1), w, b, padding=1).sigmoid()
        ref = (i.sigmoid(), f.sigmoid(), o.sigmoid(), g.tanh())
        got = (*s[:, : 3 * C].chunk(3, 1), 2 * s[:, 3 * C:] - 1)
        for a, z in zip(ref, got):
            torch.testing.assert_close(z, a, rtol=0, atol=1e-6)
        i0, _, g0, o0 = gates(torch.cat([X, torch.zeros_like(H)], 1)).chunk(4, 1)  # step 1: H_0 = 0
        s1 = F.conv2d(X, w1, b1, padding=1).sigmoid()
        got1 = (s1[:, :C], s1[:, C: 2 * C], 2 * s1[:, 2 * C:] - 1)
        for a, z in zip((i0.sigmoid(), o0.sigmoid(), g0.tanh()), got1):
            torch.testing.assert_close(z, a, rtol=0, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_conv_with_fused_relu_is_bit_identical(dtype):
    """On the CPU the fast path runs conv + ReLU as one oneDNN call (post-op): the same values, bit for bit,
    as the conv followed by a separate ReLU, also with the padding of the banded gate conv."""
    import torch.nn.functional as F

    from agan.accel import fast

    if dtype == torch.bfloat16 and cpu_caps().why_no_bf16():
        pytest.skip(cpu_caps().why_no_bf16())

    assert fast._FUSED == torch.backends.mkldnn.is_available()  # the fused op is what runs on this build
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(8, 16, 3, padding=1)
    x = torch.randn(1, 8, 12, 20).to(dtype).contiguous(memory_format=torch.channels_last)
    wb = (conv.weight.detach().to(dtype).contiguous(memory_format=torch.channels_last),
          conv.bias.detach().to(dtype))
    for padding in ((1, 1), (0, 1)):
        ref = F.conv2d(x, *wb, padding=padding)
        assert torch.equal(fast._conv(x, wb, conv, "relu", padding), ref.relu())
        assert torch.equal(fast._conv(x, wb, conv, "none", padding), ref)
