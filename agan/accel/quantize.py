"""int8 G, built by PyTorch 2 export (PT2E) post-training static quantization (run: ``agan.accel.int8``).

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
      calibrated separately (its own activation ranges), the float G is never modified. The gate convs are
      the fused ones of ``agan.accel.fast.fused_gates`` (one sigmoid for all gates; step 1 reads only X_1).
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
    * the compile happens on the first call (its cost: docs/performance.md; faster with a warm inductor
      cache in /tmp/torchinductor_$USER) and serves all later sizes; ``agan tune`` saves it ahead of time
      (``agan.accel.aoti``).

Reference: the PyTorch tutorial "PyTorch 2 Export Quantization with X86 Backend through Inductor";
torchao.quantization.pt2e.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from agan.accel.fast import fused_gates
from agan.accel.malloc import keep_freed_memory
from agan.accel.records import DEFAULT_KEEP_FLOAT
from agan.accel.toolchain import available, require, torchao_pt2e, unavailable_reason
from agan.cpu import cpu_caps
from agan.models.generator import Generator, GeneratorOutput, check_size

__all__ = ["DEFAULT_KEEP_FLOAT", "Int8Generator", "available", "calibration_images",
           "float_dtype_of", "quantize_generator", "require", "torchao_pt2e", "unavailable_reason"]

GRAPH_VERSION = 3  # in agan tune's package key: bump when the exported graph changes
MIN_SIDE = 8  # H, W >= 8 (the exported graph's symbolic sizes are 4 * s with s >= 2)


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
    """The ConvLSTM gate arithmetic (Eq. 3) on the fused gate conv's output z (``fused_gates``), as a module
    so that the quantizer can be told to leave it float: C_t, the gates and H_t are never quantized.
    first step (C_0 = 0): z = (i, o, 2g); later steps: z = (i, f, o, 2g); tanh(g) = 2 sigmoid(2g) - 1."""

    def __init__(self, first: bool):
        super().__init__()
        self.first = first

    def forward(self, z: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:  # z: (B, 3C | 4C, H, W)
        s = torch.sigmoid(z)
        if self.first:
            i, o, g2 = s.chunk(3, 1)
            c = i * (2 * g2 - 1)  # C_1 = i g
        else:
            i, f, o, g2 = s.chunk(4, 1)
            c = f * c + i * (2 * g2 - 1)
        return o * _tanh(c), c  # H_t, C_t


def _tanh(x: Tensor) -> Tensor:
    """tanh(x) = 2 sigmoid(2x) - 1 (fp32: within 5e-7 of torch.tanh): inductor's vectorized tanh is dearer
    than its sigmoid, and the cell loop is the graph's largest fused loop (docs/int8.md, Approach)."""
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
            fused = fused_gates(arn.lstm.gates)  # ((W, b) for t > 1, (W_1, b_1) for step 1)
            self.arn = nn.ModuleList(nn.ModuleDict(dict(
                head_in=copy.deepcopy(arn.head_in), res_blocks=copy.deepcopy(arn.res_blocks),
                gates=_conv3x3(*fused[t == 0]), cell=_Cell(first=t == 0),
                attention_head=copy.deepcopy(arn.attention_head)))
                for t in range(arn.steps)).float()
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


def _conv3x3(weight: Tensor, bias: Tensor) -> nn.Conv2d:
    """A 3x3 conv (padding 1) holding copies of ``weight`` (Cout, Cin, 3, 3) and ``bias``."""
    conv = nn.Conv2d(weight.shape[1], weight.shape[0], 3, padding=1)
    with torch.no_grad():
        conv.weight.copy_(weight)
        conv.bias.copy_(bias)
    return conv


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


def float_dtype_of(float_dtype: str) -> torch.dtype:
    """"auto" | "bf16" | "fp32" -> the dtype the parts kept out of int8 run in ("auto": bf16 on CPUs with
    native bf16 dot products, else fp32)."""
    if float_dtype not in ("auto", "bf16", "fp32"):
        raise ValueError(f"float_dtype must be auto, bf16 or fp32, got {float_dtype!r}")
    if float_dtype == "auto":
        float_dtype = "bf16" if cpu_caps().bf16_native else "fp32"
    return torch.bfloat16 if float_dtype == "bf16" else torch.float32


class Int8Generator:
    """The quantized G: ``__call__(I)`` -> :class:`GeneratorOutput` (float32, NCHW), like ``G(I)``.

    ``graph`` is the converted (Q/DQ) fx module, runnable eagerly (slow: simulated quantization);
    ``runner`` the compiled function that runs it with the fast int8 kernels: inductor's compile of ``graph``,
    made on the first call, or given ready (an ahead-of-time package, ``agan.accel.aoti``).
    ``compile=False`` runs ``graph`` eagerly, for debugging.
    """

    def __init__(self, graph: nn.Module | None, n_steps: int, keep_float: tuple[str, ...],
                 compile: bool = True, runner=None):
        self.graph, self.n_steps, self.keep_float = graph, n_steps, keep_float
        self.compile = compile
        self.runner = runner

    @property
    def ready(self) -> bool:
        """True once the fast int8 kernels exist: a call costs no compile."""
        return self.runner is not None

    def _run(self, x: Tensor) -> tuple[Tensor, ...]:  # x: (1, 3, H, W) channels-last
        if self.graph is None:  # an ahead-of-time package
            return self.runner(x)
        if not self.compile:
            return self.graph(x)
        import torch._inductor.config as inductor_config  # noqa: PLC0415 (loads inductor: only when used)

        if self.runner is None:
            self.runner = torch.compile(self.graph, dynamic=True)
        with inductor_config.patch(freezing=True):  # constant-fold, pre-pack the int8 weights (at compile)
            return self.runner(x)

    def __call__(self, image: Tensor) -> GeneratorOutput:
        check_size(image)
        if image.device.type != "cpu":
            raise ValueError("the int8 path runs on CPU (on CUDA use fp16)")
        if min(image.shape[-2:]) < MIN_SIDE:
            raise ValueError(f"the int8 path needs H, W >= {MIN_SIDE}, got {tuple(image.shape[-2:])}")
        outs = []
        # the tuned glibc heap (agan.accel.malloc), its freed blocks kept for the next call (no trim, unlike
        # the bf16 path): the graph's full-resolution buffers (the ARN's 4C-channel gate tensor) would
        # otherwise be an mmap or a fresh page fault per 4 KiB on every call (docs/int8.md, Memory);
        # trim_heap() hands the memory back.
        keep_freed_memory()
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
    if float_dtype_of(float_dtype) == torch.bfloat16:
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
