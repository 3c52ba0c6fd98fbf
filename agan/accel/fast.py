"""Fast inference path of the generator G (precision policy: ``agan.precision``).

The plain ``agan.models.Generator.forward`` stays the reference (and the baseline of ``agan bench``).
``FastGenerator(G)`` computes the same function with the same weights, organised for speed:

    * channels-last (NHWC) activations and weights: oneDNN's direct 3x3 kernels run 2-4x faster on NHWC
      than on NCHW for the 32-channel full-resolution maps of the attentive-recurrent network;
    * no ``torch.cat`` in the recurrent loop: the inputs of head_in, [I, A_{t-1}], and of the ConvLSTM,
      [X_t, H_{t-1}], live in pre-allocated buffers that each step writes into (``out=`` / in-place);
    * the ConvLSTM gate conv is re-ordered from (i, f, g, o) to (i, f, o, 2g) (:func:`fused_gates`), so one
      in-place sigmoid covers all four gates, since tanh(g) = 2 sigmoid(2g) - 1 (paper Eq. 3 without
      peepholes);
    * each Conv2d and its ReLU one oneDNN call on the CPU (an eltwise post-op: no separate pass over the
      output), in-place residual adds (no new full-resolution tensor per activation);
    * reduced precision: bf16 on CPUs with native bf16 dot products (avx512_bf16 / AMX), fp16 on CUDA;
      weights are cast once and cached (re-cast automatically when G's parameters change).

Exactness (tests/test_fast.py): fp32 within 1e-4 max-abs of the plain path; bf16/fp16 >= 40 dB PSNR.

References: oneDNN memory formats (https://oneapi-src.github.io/oneDNN/dev_guide_understanding_memory_formats.html),
PyTorch channels-last tutorial, torch.autocast; Qian et al. CVPR 2018 Sec. 4.1 for the network.
Speed-ups measured per trick: docs/performance.md.
"""

from __future__ import annotations

import contextlib
import functools
import weakref

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from agan.accel.malloc import malloc_tuning, trim_if_tuned
from agan.models.generator import Generator, GeneratorOutput, check_size
from agan.precision import autocast, precision_dtype, resolve_precision

__all__ = ["FastGenerator", "channels_last", "fast_forward", "fused_gates", "use_channels_last"]
CL = torch.channels_last


# ----------------------------------------------------------------------------------------------
# memory format (channels-last models and inputs)
# ----------------------------------------------------------------------------------------------


def channels_last(*modules: nn.Module) -> None:
    """Convert every 4-D parameter/buffer of the modules to channels-last, in place (same values)."""
    for m in modules:
        if m is not None:
            m.to(memory_format=CL)


def use_channels_last(device: torch.device | str, dtype: torch.dtype | None = None) -> bool:
    """Inference layout: NHWC activations and weights, except 16-bit on CUDA. NHWC is the main speed-up on the
    CPU (oneDNN) and helps fp32 on CUDA a little, but with cuDNN's heuristic kernel choice (no autotuning,
    which inference of images of any size cannot afford) a 16-bit NHWC conv of G falls to a slow direct kernel
    (H100 timings: docs/performance.md). Training autotunes (cudnn.benchmark) and stays NHWC."""
    return torch.device(device).type != "cuda" or dtype not in (torch.float16, torch.bfloat16)


# ----------------------------------------------------------------------------------------------
# the fast generator
# ----------------------------------------------------------------------------------------------


def _fused_conv_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")


_FUSED = _fused_conv_available()


def _conv(x: Tensor, wb: tuple[Tensor, Tensor], conv: nn.Conv2d | nn.ConvTranspose2d, act: str = "none",
          padding: tuple[int, int] | None = None) -> Tensor:
    """conv(x) then ``act`` ("none" | "relu"); ``padding`` overrides the conv's.

    On the CPU a Conv2d and its ReLU are one oneDNN call (an eltwise post-op, applied to each output before
    it is stored), which saves a full pass over the output (a full-resolution 32-channel map: 32 x H x W
    values; the saving is measured in docs/performance.md).
    The result is the same bit for bit: the ReLU sees the same rounded values either way."""
    w, b = wb
    if isinstance(conv, nn.ConvTranspose2d):
        y = F.conv_transpose2d(x, w, b, conv.stride, conv.padding, conv.output_padding, 1, conv.dilation)
        return y if act == "none" else getattr(y, act + "_")()
    padding = tuple(conv.padding) if padding is None else padding
    if _FUSED and x.device.type == "cpu":
        return torch.ops.mkldnn._convolution_pointwise(x, w, b, list(padding), list(conv.stride),
                                                       list(conv.dilation), 1, act, [], "")
    y = F.conv2d(x, w, b, conv.stride, padding, conv.dilation)
    return y if act == "none" else getattr(y, act + "_")()


def fused_gates(gates: nn.Conv2d) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """The ConvLSTM gate conv (weights (4C, 2C, 3, 3) in the order (i, f, g, o), input [X_t, H_{t-1}]) ->
    ((W, b) for steps t > 1, (W_1, b_1) for step 1), both (detached) in the order that lets one sigmoid cover
    every gate:
        t > 1: (i, f, o, 2g) on [X_t, H_{t-1}]: tanh(g) = 2 sigmoid(2g) - 1;
        t = 1: (i, o, 2g) on X_1 alone: H_0 = C_0 = 0, so C_1 = i g needs no forget gate and no H input.
    Doubling a weight is exact in floating point, so sigmoid(conv(2W)) equals sigmoid(2 conv(W))."""
    weight, bias = gates.weight.detach(), gates.bias.detach()
    n = weight.shape[0] // 4  # C
    i, f, g, o = (slice(k * n, (k + 1) * n) for k in range(4))
    w = torch.cat([weight[i], weight[f], weight[o], 2 * weight[g]])  # (4C, 2C, 3, 3)
    b = torch.cat([bias[i], bias[f], bias[o], 2 * bias[g]])
    w1 = torch.cat([w[:n], w[2 * n:]])[:, : w.shape[1] - n]  # (3C, C, 3, 3): rows (i, o, 2g), X columns
    b1 = torch.cat([b[:n], b[2 * n:]])
    return (w, b), (w1, b1)


class FastGenerator(nn.Module):
    """Inference-only G with the plain generator's weights: same ``GeneratorOutput``, faster.

    Args:
        G: the plain :class:`agan.models.Generator` (its parameters are read, never modified).
        precision: "fp32" | "bf16" | "fp16" | "auto" (bf16 on CPUs with native bf16, fp16 on CUDA, else fp32).
        channels_last: NHWC activations/weights; None (default) = :func:`use_channels_last` for the input's
            device and precision (NHWC except 16-bit on CUDA).

    Weights are cast/re-laid-out once and cached; the cache is rebuilt when any parameter of G is
    updated (parameter versions/pointers change) or moved. Outputs are float32, NCHW-contiguous.
    """

    def __init__(self, G: Generator, precision: str = "auto", channels_last: bool | None = None):
        super().__init__()
        if not isinstance(G, Generator):
            raise TypeError(f"FastGenerator needs an agan.models.Generator, got {type(G).__name__}")
        object.__setattr__(self, "G", G)  # not a sub-module: G's parameters stay G's own
        self.precision = precision
        self.channels_last = channels_last
        self._cl = channels_last is not False  # this call's layout (resolved per device and dtype in forward)
        self.band_elements = 1 << 21  # ConvLSTM gate tensor per band: ~2M values (8 MB fp32)
        self._cache_key = None
        self._w: dict[str, tuple[Tensor, Tensor]] = {}

    # -- weights --------------------------------------------------------------------------------
    def _key(self, device: torch.device, dtype: torch.dtype):
        return (device, dtype, self._cl, tuple((p.data_ptr(), p._version) for p in self.G.parameters()))

    def _weights(self, device: torch.device, dtype: torch.dtype) -> dict[str, tuple[Tensor, Tensor]]:
        key = self._key(device, dtype)
        if key == self._cache_key:
            return self._w
        w = {}
        for name, m in self.G.named_modules():
            if name.endswith("lstm.gates"):  # (i, f, o, 2g), and "gates0" for step 1: (i, o, 2g) on X_1
                wb, wb1 = fused_gates(m)
                w[name], w[name + "0"] = self._cast(*wb, device, dtype), self._cast(*wb1, device, dtype)
            elif isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                w[name] = self._cast(m.weight.detach(), m.bias.detach(), device, dtype)
        self._w, self._cache_key = w, key
        return w

    def _cast(self, weight: Tensor, bias: Tensor, device, dtype) -> tuple[Tensor, Tensor]:
        return (weight.to(device=device, dtype=dtype).contiguous(memory_format=self._fmt()),
                bias.to(device=device, dtype=dtype))

    # -- forward --------------------------------------------------------------------------------
    def forward(self, image: Tensor) -> GeneratorOutput:
        check_size(image)
        precision = resolve_precision(self.precision, image.device)
        dtype = precision_dtype(precision)
        cpu = image.device.type == "cpu"
        cl = self.channels_last
        self._cl = use_channels_last(image.device, dtype) if cl is None else cl
        with torch.inference_mode(), (malloc_tuning() if cpu else contextlib.nullcontext()):
            w = self._weights(image.device, dtype)
            x = image.to(dtype=dtype, memory_format=self._fmt())
            maps, S1, S2, O = self._forward_impl(x, w)
            out = [t.float().contiguous() for t in (*maps, S1, S2, O)]
        n = len(maps)
        return GeneratorOutput(out[:n], out[n], out[n + 1], out[n + 2])

    def _forward_impl(self, x: Tensor, w: dict) -> tuple[list[Tensor], Tensor, Tensor, Tensor]:
        G = self.G
        if G.arn is not None:
            maps, inp = self._arn(x, w)  # inp = [I, A_N]: (B, 4, H, W)
            if x.device.type == "cpu":  # hand the ARN's freed blocks back before the AE (bounds heap
                trim_if_tuned()  # fragmentation: peak RSS = max(ARN, AE), not their sum)
        else:
            maps, inp = [], x
        return (maps, *self._autoencoder(inp, w))

    def _fmt(self):
        return CL if self._cl else torch.contiguous_format

    def _arn(self, image: Tensor, w: dict) -> tuple[list[Tensor], Tensor]:
        """Attentive-recurrent network: N steps of head_in -> 5 res blocks -> ConvLSTM -> A_t.

        Step 1 is specialised exactly: H_0 = 0 and C_0 = 0, so its gate conv only needs the X half of
        the input channels and no forget gate (C_1 = i g). The gate conv and the gate arithmetic run in
        bands of rows (the (B, 4C, rows, W) gate tensor stays small and in cache; memory stays low), on
        two [X, H] buffers with a zero row above and below (the conv's padding), one read, one written.
        """
        arn = self.G.arn
        b, _, h, wd = image.shape
        C = arn.channels
        new = functools.partial(torch.empty, dtype=image.dtype, device=image.device,
                                memory_format=self._fmt())
        inp = new((b, 4, h, wd))  # [I, A_{t-1}]
        inp[:, :3].copy_(image)  # I
        inp[:, 3:].fill_(arn.initial_attention)  # A_0
        bufs = [new((b, 2 * C, h + 2, wd)) for _ in range(2)]  # [X_t, H_{t-1}], rows 0 and h+1 are zero
        for buf in bufs:
            buf[:, :, 0].zero_()
            buf[:, :, -1].zero_()
        cell = new((b, C, h, wd))
        rows = max(1, self.band_elements // (b * wd * 4 * C))
        maps: list[Tensor] = []
        n_res = len(arn.res_blocks)
        for t in range(arn.steps):
            cur, nxt = bufs[t % 2], bufs[(t + 1) % 2]
            X, H = cur[:, :C, 1:-1], nxt[:, C:, 1:-1]  # X_t is written here; H_t there
            y = _conv(inp, w["arn.head_in"], arn.head_in, "relu")  # (B, C, H, W), >= 0
            for k, block in enumerate(arn.res_blocks):
                name = f"arn.res_blocks.{k}"
                body = _conv(_conv(y, w[name + ".conv1"], block.conv1, "relu"), w[name + ".conv2"],
                             block.conv2, "relu")
                # ReLU(body + y) = body + y: both are >= 0, so the block's outer ReLU is the identity
                y = torch.add(body, y, out=X) if k == n_res - 1 else body.add_(y)
            if n_res == 0:
                X.copy_(y)
            del y, body
            wg, bg = w["arn.lstm.gates0" if t == 0 else "arn.lstm.gates"]
            src = cur[:, :C] if t == 0 else cur  # step 1: X alone (H_0 = 0)
            for r0 in range(0, h, rows):
                r1 = min(h, r0 + rows)
                # (B, 3C | 4C, r, W). The sigmoid stays a separate op: as a oneDNN post-op it ran slower
                # (docs/performance.md) and differs from torch's sigmoid by one bf16 ulp
                z = _conv(src[:, :, r0: r1 + 2], (wg, bg), arn.lstm.gates, padding=(0, 1)).sigmoid_()
                c = cell[:, :, r0:r1]
                if t == 0:  # gates (i, o, 2g~): C_1 = i g, g = tanh(g~) = 2 sigmoid(2 g~) - 1
                    i, o, g = z[:, :C], z[:, C: 2 * C], z[:, 2 * C:]
                    torch.mul(i, g.mul_(2).sub_(1), out=c)
                else:  # gates (i, f, o, 2g~): C_t = f C_{t-1} + i g
                    i, f, o, g = z[:, :C], z[:, C: 2 * C], z[:, 2 * C: 3 * C], z[:, 3 * C:]
                    c.mul_(f).addcmul_(i, g.mul_(2).sub_(1))
                # H_t = o tanh(C_t); tanh into a contiguous temporary, then one strided write: tanh straight
                # into the strided H view (C channels of every 2C) is slower
                torch.mul(torch.tanh(c), o, out=H[:, :, r0:r1])
            A = _conv(H, w["arn.attention_head"], arn.attention_head)  # A_t: (B, 1, H, W)
            maps.append(A)
            inp[:, 3:].copy_(A)
        return maps, inp

    def _autoencoder(self, x: Tensor, w: dict) -> tuple[Tensor, Tensor, Tensor]:
        """Contextual autoencoder (16 conv-ReLU blocks, skips, heads S1, S2, O)."""
        ae = self.G.autoencoder
        p = "autoencoder."

        def c(name, t, act="relu"):  # conv + ReLU (one oneDNN call on the CPU), or conv alone for head_O
            return _conv(t, w[p + name], getattr(ae, name), act)

        x = c("conv1", x)  # (B, 64, H, W)
        s1 = x
        x = c("conv2", x)  # (B, 128, H/2, W/2)
        s2 = x = c("conv3", x)
        x = c("conv4", x)  # (B, 256, H/4, W/4)
        x = c("conv5", x)
        x = c("conv6", x)
        for k, conv in enumerate(ae.dilated):
            x = _conv(x, w[f"{p}dilated.{k}"], conv, "relu")
        x = c("conv7", x)
        x = c("conv8", x)
        S1 = c("head_S1", x)  # (B, 3, H/4, W/4)
        x = self._up(x, w[p + "up1.deconv"], ae.up1.deconv).add_(s2)  # (B, 128, H/2, W/2)
        x = c("conv9", x)
        S2 = c("head_S2", x)  # (B, 3, H/2, W/2)
        x = self._up(x, w[p + "up2.deconv"], ae.up2.deconv, skip=s1)  # (B, 64, H, W): ReLU(up(x)) + s1
        del s1
        x = c("conv10", x)  # (B, 32, H, W)
        O = c("head_O", x, "none")  # (B, 3, H, W)
        return S1, S2, O

    def _up(self, x: Tensor, wb, deconv: nn.ConvTranspose2d, skip: Tensor | None = None) -> Tensor:
        """Transposed conv -> reflection pad (l1, t1) -> 2x2 average pool (stride 1) -> ReLU [+ skip].

        With ``skip`` the result is accumulated into ``skip`` in place, without the padded tensor:
        reflect-padding the left/top by one then pooling 2x2 equals pooling the unpadded map (one row and
        column fewer) and repeating its first row and column, so out[0, j] = y[0, j-1], out[i, 0] = y[i-1, 0].
        """
        d = _conv(x, wb, deconv)  # (B, cout, 2h, 2w)
        if skip is None:
            return F.avg_pool2d(F.pad(d, (1, 0, 1, 0), mode="reflect"), 2, stride=1).relu_()
        y = F.avg_pool2d(d, 2, stride=1).relu_()  # (B, cout, 2h-1, 2w-1)
        del d
        skip[:, :, 1:, 1:] += y
        skip[:, :, 0, 1:] += y[:, :, 0, :]
        skip[:, :, 1:, 0] += y[:, :, :, 0]
        skip[:, :, 0, 0] += y[:, :, 0, 0]
        return skip


# ----------------------------------------------------------------------------------------------
# one-call entry point: a forward for agan.infer.derain (agan.accel.pick_forward)
# ----------------------------------------------------------------------------------------------

_FAST: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def fast_forward(model: nn.Module, x: Tensor, precision: str = "auto") -> GeneratorOutput | Tensor:
    """G(x) by the fast path (a cached :class:`FastGenerator` per model and precision).

    Models other than :class:`agan.models.Generator` (e.g. baselines) run plainly under inference_mode,
    with autocast for reduced precision.
    """
    if not isinstance(model, Generator) or (precision == "fp16" and x.device.type == "cpu"):
        # other models (baselines), and fp16 on CPU (no fast fp16 kernels there): plain call, autocast
        if precision == "fp16":
            ctx = torch.autocast(device_type=x.device.type, dtype=torch.float16)
        else:
            ctx = autocast(x.device, precision)
        with torch.inference_mode(), ctx:
            return model(x)
    per_model = _FAST.setdefault(model, {})
    if precision not in per_model:
        per_model[precision] = FastGenerator(model, precision=precision)
    return per_model[precision](x)
