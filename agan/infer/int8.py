"""int8 inference path of the generator G: PyTorch 2 export (PT2E) post-training static quantization.

    G (fp32) --unroll ARN--> _Unrolled --torch.export (H, W dynamic)--> prepare_pt2e(X86InductorQuantizer)
      --calibrate on synthetic rainy images--> convert_pt2e
      --torch.compile(inductor, freezing, dynamic H, W)--> int8 G

    * toolchain: torchao's PT2E flow with the x86 inductor quantizer: weights int8 symmetric per output
      channel, activations uint8 per tensor (static: min/max observed on calibration images). Inductor's
      freezing passes pre-pack the weights and lower each quantize -> conv -> (add) -> relu -> quantize
      chain to one oneDNN ``qconv_pointwise`` call (u8 x s8 dot products: AVX512-VNNI / AVX-VNNI / AMX).
    * CPUs without VNNI (AVX2-only, AVX-512 before Cascade Lake; ``agan.cpu``): oneDNN multiplies u8 x s8 with
      vpmaddubsw, which adds pairs of products into 16 bits with saturation (2 * 255 * 127 > 32767), so
      activations are quantized to 7 bits there (0..127, the quantizer's ``reduce_range``): 2 * 127 * 127
      fits.
    * the attentive-recurrent network calls its modules N times (shared weights); PT2E partitions group nodes
      by call site, so ``_Unrolled`` gives every step its own copy of the (small) ARN modules. Each step is
      calibrated separately (its own activation ranges), the float G is never modified. Step 1 is specialised
      exactly (H_0 = C_0 = 0: its gate conv reads only X_1 and has no forget gate), as in agan.infer.fast.
    * what stays float (inside the same compiled graph): the ConvLSTM gate arithmetic (``_Cell``: sigmoid,
      tanh, the cell state C_t, in fp32, never quantized), the two transposed convs of the autoencoder (the
      x86 quantizer has no conv_transpose pattern) and the convs under ``keep_float`` (module names of
      G: "arn" by default, or e.g. "arn.lstm", "arn.attention_head", "autoencoder.head_O"). The float convs
      run in bf16 on CPUs with native bf16 dot products (``float_dtype="auto"``), else fp32. docs/int8.md
      measures each choice.
    * shapes: the graph is exported and compiled with H and W symbolic (multiples of 4, >= 8), so one compile
      serves every image size (inductor adds one size guard, H*W > 5120: smaller images get a second compile);
      the batch runs one image at a time (B = 1 graph). Inputs are channels-last (NHWC): with NCHW input the
      int8 convs ran 2-3x slower (inductor inserted layout conversions around every conv).
    * caching: ``int8_forward(G, x)`` keeps one quantized model per G (weak reference), rebuilt when G's
      parameters or the split change. It loads the package ``agan tune`` compiled ahead of time for G on this
      machine (``agan.infer.aoti``, ~1 s) where there is one; else compilation happens on the first call (tens
      of seconds, faster with a warm inductor cache in /tmp/torchinductor_$USER), reused for all later sizes.

Reference: the PyTorch tutorial "PyTorch 2 Export Quantization with X86 Backend through Inductor";
torchao.quantization.pt2e.
"""

from __future__ import annotations

import copy
import logging
import shutil
import weakref
from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from agan.cpu import cpu_caps
from agan.infer.malloc import tune_malloc
from agan.models.generator import Generator, GeneratorOutput, check_size

__all__ = ["DEFAULT_KEEP_FLOAT", "Int8Generator", "available", "calibration_images",
           "int8_forward", "is_compiled", "quantize_generator", "require", "torchao_pt2e",
           "unavailable_reason"]

DEFAULT_KEEP_FLOAT = ("arn",)  # int8 ARN: A_N IoU down to 0.82 (docs/int8.md); the autoencoder is int8
GRAPH_VERSION = 2  # in agan tune's package key: bump when the exported graph changes (2: tanh via sigmoid)
MIN_SIDE = 8  # H, W >= 8 (the exported graph's symbolic sizes are 4 * s with s >= 2)


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
    import importlib.metadata
    import importlib.util

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


def calibration_images(n: int = 8, size: int | tuple[int, int] = (240, 360),
                       seed: int = 1000) -> list[Tensor]:
    """n synthetic rainy images I (1, 3, H, W) in [0, 1], rendered from the bundled backgrounds by
    ``agan.synth.make_pair(seed, i, size)`` (indices 0..n-1;
    seed 1000 is not a training seed)."""
    from agan.synth import make_pair

    out = []
    for i in range(n):
        rain = make_pair(seed, i, size).rain  # (H, W, 3) uint8
        out.append(torch.from_numpy(np.ascontiguousarray(rain)).permute(2, 0, 1)[None].float() / 255.0)
    return out


class _Bf16(nn.Module):
    """``module`` in bf16 inside the int8 graph: float32 in, float32 out, bf16 weights and arithmetic (oneDNN
    bf16 kernels after inductor's freezing); for the parts kept out of int8."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = copy.deepcopy(module).to(torch.bfloat16)

    def forward(self, x: Tensor) -> Tensor:
        return self.module(x.to(torch.bfloat16)).float()


class _Cell(nn.Module):
    """The ConvLSTM gate arithmetic (Eq. 3) on the gate conv's output z, as a module so that the quantizer
    can be told to leave it float: C_t, the gates and H_t are never quantized.
    first step (C_0 = 0): z = (i, o, g); later steps: z = (i, f, g, o)."""

    def __init__(self, first: bool):
        super().__init__()
        self.first = first

    def forward(self, z: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:  # z: (B, 3C | 4C, H, W)
        if self.first:
            i, o, g = z.chunk(3, 1)
            c = torch.sigmoid(i) * _tanh(g)  # C_1 = i g
        else:
            i, f, g, o = z.chunk(4, 1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * _tanh(g)
        return torch.sigmoid(o) * _tanh(c), c  # H_t, C_t


def _tanh(x: Tensor) -> Tensor:
    """tanh(x) = 2 sigmoid(2x) - 1 (fp32: within 5e-7 of torch.tanh): inductor's vectorized tanh costs about
    three of its sigmoids, and the cell loop is the graph's largest fused loop (docs/int8.md, Approach)."""
    return 2 * torch.sigmoid(2 * x) - 1


class _Unrolled(nn.Module):
    """G with the ARN unrolled: step t has its own copies of head_in, res_blocks, lstm.gates, attention_head.
    forward(I) -> (A_1, .., A_N, S1, S2, O), the same function as G (flat tuple: torch.export friendly)."""

    def __init__(self, G: Generator):
        super().__init__()
        arn = G.arn
        self.n_steps = arn.steps if arn is not None else 0
        if arn is not None:
            self.C, self.a0 = arn.channels, arn.initial_attention
            self.arn = nn.ModuleList(nn.ModuleDict(dict(
                head_in=copy.deepcopy(arn.head_in), res_blocks=copy.deepcopy(arn.res_blocks),
                gates=copy.deepcopy(arn.lstm.gates), cell=_Cell(first=t == 0),
                attention_head=copy.deepcopy(arn.attention_head)))
                for t in range(arn.steps)).float()
            # step 1 exactly: H_0 = C_0 = 0, so its gate conv needs only X_1's channels and no forget gate
            gates, C = arn.lstm.gates, arn.channels
            gates0 = nn.Conv2d(C, 3 * C, 3, padding=1)  # (i, o, g) rows, X input channels
            rows = torch.cat([torch.arange(0, C), torch.arange(3 * C, 4 * C), torch.arange(2 * C, 3 * C)])
            with torch.no_grad():
                gates0.weight.copy_(gates.weight[rows, :C])
                gates0.bias.copy_(gates.bias[rows])
            self.arn[0]["gates"] = gates0
        self.autoencoder = copy.deepcopy(G.autoencoder).float()
        self.arn_dtype = torch.float32

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        maps: list[Tensor] = []
        inp = x
        if self.n_steps:
            b, _, h, w = x.shape
            dt = self.arn_dtype  # the ARN's convs: float32, or bf16 when it is kept float on a bf16 CPU
            xa = x.to(dt)
            A = torch.full((b, 1, h, w), self.a0, dtype=dt, device=x.device)  # A_0: (B, 1, H, W)
            H = c = xa  # h_t, c_t: (B, C, H, W), set by step 1
            for t, step in enumerate(self.arn):
                y = F.relu(step["head_in"](torch.cat([xa, A], 1)))  # (B, C, H, W)
                for block in step["res_blocks"]:
                    y = block(y)
                z = step["gates"](y if t == 0 else torch.cat([y, H], 1))  # (B, 3C | 4C, H, W)
                H, c = step["cell"](z.float(), c)  # H_t, C_t: fp32, never quantized
                H = H.to(dt)
                A = step["attention_head"](H)  # A_t: (B, 1, H, W)
                maps.append(A.float())
            inp = torch.cat([x, maps[-1]], 1)  # (B, 4, H, W)
        return (*maps, *self.autoencoder(inp))


def _g_name(name: str) -> str:
    """_Unrolled module name -> G's ("arn.2.gates" -> "arn.lstm.gates", "arn.0.res_blocks.1.conv2" -> ...)."""
    parts = name.split(".")
    if parts[0] == "arn" and len(parts) > 2:
        rest = ".".join(parts[2:])
        return "arn." + ("lstm.gates" if rest == "gates" else rest)
    return name


def _float_parts(model: _Unrolled, keep: tuple[str, ...]) -> list[str]:
    """Names (in ``model``) of the convs that stay float: those under a ``keep`` prefix of G's module names,
    and the autoencoder's two transposed convs (the x86 quantizer has no conv_transpose pattern)."""
    return [name for name, m in model.named_modules()
            if isinstance(m, nn.ConvTranspose2d)
            or (isinstance(m, nn.Conv2d) and _under(_g_name(name), keep))]


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    """``name`` is one of ``prefixes`` or inside one, by whole name components ("autoencoder.conv1" names
    conv1, not conv10)."""
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _float_dtype(float_dtype: str) -> torch.dtype:
    if float_dtype not in ("auto", "bf16", "fp32"):
        raise ValueError(f"float_dtype must be auto, bf16 or fp32, got {float_dtype!r}")
    if float_dtype == "auto":
        float_dtype = "bf16" if cpu_caps().bf16_native else "fp32"
    return torch.bfloat16 if float_dtype == "bf16" else torch.float32


class Int8Generator:
    """The quantized G: ``__call__(I)`` -> :class:`GeneratorOutput` (float32, NCHW), like ``G(I)``.

    ``graph`` is the converted (Q/DQ) fx module, runnable eagerly (slow: simulated quantization);
    ``compiled`` its inductor compile (the fast int8 kernels), built on the first call; ``runner``: a
    ready compiled function instead (an ahead-of-time package, ``agan.infer.aoti``).
    """

    def __init__(self, graph: nn.Module | None, n_steps: int, keep_float: tuple[str, ...],
                 compile: bool = True, runner=None):
        self.graph, self.n_steps, self.keep_float = graph, n_steps, keep_float
        self.compile = compile
        self.compiled = runner

    def _run(self, x: Tensor) -> tuple[Tensor, ...]:  # x: (1, 3, H, W) channels-last
        if self.graph is None:  # an ahead-of-time package
            return self.compiled(x)
        if not self.compile:
            return self.graph(x)
        import torch._inductor.config as inductor_config

        if self.compiled is None:
            self.compiled = torch.compile(self.graph, dynamic=True)
        with inductor_config.patch(freezing=True):  # constant-fold, pre-pack the int8 weights (at compile)
            return self.compiled(x)

    def __call__(self, image: Tensor) -> GeneratorOutput:
        check_size(image)
        if image.device.type != "cpu":
            raise ValueError("the int8 path runs on CPU (on CUDA use fp16)")
        if min(image.shape[-2:]) < MIN_SIDE:
            raise ValueError(f"the int8 path needs H, W >= {MIN_SIDE}, got {tuple(image.shape[-2:])}")
        outs = []
        # the tuned glibc heap (agan.infer.malloc), its freed blocks kept for the next call (no trim, unlike
        # the bf16 path): the graph's full-resolution buffers (the ARN's 128-channel gate tensor: 88 MB at
        # 480x720 in bf16, ~360 MB in all) would otherwise be an mmap or a fresh page fault per 4 KiB on every
        # call (docs/int8.md, Memory). tune_malloc(keep=False) hands the memory back.
        tune_malloc(True)
        with torch.no_grad():
            for k in range(image.shape[0]):  # (1, 3, H, W) at a time: the graph's batch is 1
                x = image[k: k + 1].float().contiguous(memory_format=torch.channels_last)
                outs.append([t.float().contiguous() for t in self._run(x)])
        cols = [torch.cat(ts) for ts in zip(*outs)]  # per output: (B, ., ., .)
        n = self.n_steps
        return GeneratorOutput(cols[:n], cols[n], cols[n + 1], cols[n + 2])


def quantize_generator(G: Generator, calib: Tensor | list[Tensor] | None = None, *,
                       keep_float: str | Iterable[str] = DEFAULT_KEEP_FLOAT,
                       compile: bool = True, float_dtype: str = "auto") -> Int8Generator:
    """Post-training static int8 quantization of G (PT2E, x86 inductor quantizer, per-channel weights).

    Args:
        G: the float generator (read only: its weights and outputs are unchanged afterwards).
        calib: calibration images, (B, 3, H, W) or a list of them, in [0, 1], H and W multiples of 4 (>= 8);
            sizes may differ. None = :func:`calibration_images` (8 synthetic rainy images, 240x360).
        keep_float: G's module names whose convs (their own, or their sub-modules') stay float, e.g.
            "arn" (the whole attentive-recurrent network), "arn.lstm" (the ConvLSTM gate convs),
            "arn.attention_head", "autoencoder.conv1" (not conv10); () = every conv but the two transposed
            ones in int8.
        float_dtype: what the parts kept out of int8 (the ``keep_float`` convs, the two transposed convs) run
            in: "bf16", "fp32", or "auto" (bf16 on CPUs with native bf16 dot products, else fp32).
        compile: False = run the fx graph eagerly (simulated int8, for debugging; slow).
    """
    prepare_pt2e, convert_pt2e, xiq = torchao_pt2e()
    if not isinstance(G, Generator):
        raise TypeError(f"quantize_generator needs an agan.models.Generator, got {type(G).__name__}")
    keep = (keep_float,) if isinstance(keep_float, str) else tuple(keep_float)
    calib = calibration_images() if calib is None else calib
    calib = [calib] if isinstance(calib, Tensor) else list(calib)
    calib = [c[k: k + 1] for c in calib for k in range(c.shape[0])]  # (1, 3, H, W) each
    for c in calib:
        check_size(c)
    reduce_range = not cpu_caps().vnni
    model = _Unrolled(G).cpu().eval()
    floats = _float_parts(model, keep)  # names of the convs that stay float
    if _float_dtype(float_dtype) == torch.bfloat16:
        if "arn" in keep and model.n_steps:  # the whole ARN in bf16 (no casts between its convs)
            model.arn.to(torch.bfloat16)
            model.arn_dtype = torch.bfloat16
        for name in floats:  # the rest cast in and out (inside a bf16 ARN there is nothing to cast)
            if model.arn_dtype != torch.bfloat16 or not name.startswith("arn."):
                parent, _, attr = name.rpartition(".")
                setattr(model.get_submodule(parent), attr, _Bf16(model.get_submodule(name)))
    x0 = calib[0].cpu().float().contiguous(memory_format=torch.channels_last)
    h = torch.export.Dim("h", min=MIN_SIDE // 4, max=4096)  # H = 4 h
    w = torch.export.Dim("w", min=MIN_SIDE // 4, max=4096)  # W = 4 w
    with torch.no_grad():
        gm = torch.export.export(model, (x0,), dynamic_shapes={"x": {2: 4 * h, 3: 4 * w}}).module()
        quantizer = xiq.X86InductorQuantizer()
        # s8 per-channel weights, u8 static activations; 7-bit activations (0..127) on CPUs without VNNI,
        # whose u8 x s8 products are summed in pairs into saturating 16 bits (255 * 127 * 2 > 32767)
        quantizer.set_global(xiq.get_default_x86_inductor_quantization_config(reduce_range=reduce_range))
        for name, m in model.named_modules():
            if name in floats or isinstance(m, _Cell):
                quantizer.set_module_name_qconfig(name, None)  # stays float: the LSTM cell, the kept convs
        prepared = prepare_pt2e(gm, quantizer)  # observers on every quantizable tensor
        for c in calib:  # calibration: record activation min/max
            prepared(c.cpu().float().contiguous(memory_format=torch.channels_last))
        graph = convert_pt2e(prepared)  # observers -> quantize/dequantize pairs with the observed scales
    return Int8Generator(graph, model.n_steps, keep, compile=compile)


# ----------------------------------------------------------------------------------------------
# one-call entry point for agan.infer (precision "int8")
# ----------------------------------------------------------------------------------------------

_INT8: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _params_key(G: nn.Module):
    return tuple((p.data_ptr(), p._version) for p in G.parameters())


def _split(G: Generator, keep_float: str | Iterable[str] | None) -> tuple[str, ...]:
    """keep_float, or for None the split ``agan tune`` chose for G on this machine (agan.infer.choose), else
    DEFAULT_KEEP_FLOAT."""
    if keep_float is None:
        from agan.infer.choose import recorded_keep_float

        keep_float = recorded_keep_float(G)
    return (keep_float,) if isinstance(keep_float, str) else tuple(keep_float)


def int8_forward(G: Generator, x: Tensor, calib: list[Tensor] | None = None,
                 keep_float: str | Iterable[str] | None = None) -> GeneratorOutput:
    """G(x) by the int8 path: quantizes G on first use (calibration on ``calib`` or the default synthetic
    images) and caches the result per G (rebuilt when its parameters or the split change); any H, W
    (multiples of 4, >= 8). ``keep_float`` None: the split ``agan tune`` recorded for G here, else the
    default."""
    key = (_params_key(G), _split(G, keep_float))
    cached = _INT8.get(G)
    if cached is None or cached[0] != key:
        from agan.infer import aoti

        q = aoti.load_cached(G, key[1]) if calib is None else None  # built by agan tune: no compile
        cached = (key, q or quantize_generator(G, calib, keep_float=key[1]))
        _INT8[G] = cached
    return cached[1](x)


def is_compiled(G: Generator, keep_float: str | Iterable[str] | None = None) -> bool:
    """True when :func:`int8_forward` has already quantized and compiled G (its current weights, this split)
    in this process: a further int8 call costs no warm-up."""
    cached = _INT8.get(G)
    return (cached is not None and cached[0] == (_params_key(G), _split(G, keep_float))
            and cached[1].compiled is not None)
