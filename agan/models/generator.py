"""The Attentive GAN generator: attentive-recurrent network + contextual autoencoder.

Reference: R. Qian, R. T. Tan, W. Yang, J. Su, J. Liu, "Attentive Generative Adversarial Network
for Raindrop Removal from A Single Image", CVPR 2018 (arXiv 1711.10098), Sec. 4.1 and Figs. 2-4.
Layer tables: docs/paper.md#attentive-recurrent-network and docs/paper.md#contextual-autoencoder.

Code <-> paper names
    I      input image with raindrops              ``image``      (B, 3, H, W), RGB in [0, 1]
    A_t    attention map after recurrent step t    ``attention``  list of N tensors (B, 1, H, W)
    A_0    initial attention map = 0.5             ``initial_attention``
    h, c   ConvLSTM hidden / cell state            (B, 32, H, W)
    S_1    autoencoder output at 1/4 scale         ``S1``         (B, 3, H/4, W/4)
    S_2    autoencoder output at 1/2 scale         ``S2``         (B, 3, H/2, W/2)
    O      restored image (S_3 in Eq. 5)           ``O``          (B, 3, H, W)

The model works in RGB.  The authors' released weights work in BGR; ``agan.models.authors``
converts on import/export.  With ``width=1`` and ``steps=4`` the generator has exactly
6,244,362 parameters, like the authors' ``gen.pkl``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "GeneratorOutput",
    "ResidualBlock",
    "ConvLSTMCell",
    "AttentiveRecurrentNetwork",
    "ContextualAutoencoder",
    "Generator",
    "check_size",
]


class GeneratorOutput(NamedTuple):
    """What the generator returns (paper names)."""

    attention: list[Tensor]  # [A_1 .. A_N], each (B, 1, H, W); empty for the autoencoder-only variant
    S1: Tensor  # (B, 3, H/4, W/4)
    S2: Tensor  # (B, 3, H/2, W/2)
    O: Tensor  # (B, 3, H, W)


def check_size(x: Tensor, multiple: int = 4) -> None:
    """Raise a clear error unless ``x`` is (B, 3, H, W) with H and W divisible by ``multiple``."""
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"expected an image batch of shape (B, 3, H, W), got {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if h % multiple or w % multiple:
        raise ValueError(
            f"image height and width must be divisible by {multiple}, got {h}x{w}; "
            f"crop or pad first (agan.infer.pipeline pads automatically)"
        )


def _ch(base: int, width: float) -> int:
    return max(1, int(round(base * width)))


def conv3x3(cin: int, cout: int, dilation: int = 1, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation)


# ----------------------------------------------------------------------------------------------
# Attentive-recurrent network (paper Sec. 4.1, "Attentive-Recurrent Network")
# ----------------------------------------------------------------------------------------------


class ResidualBlock(nn.Module):
    """x <- ReLU(body(x) + x), body = conv3x3, ReLU, conv3x3, ReLU."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = conv3x3(channels, channels)
        self.conv2 = conv3x3(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        body = F.relu(self.conv2(F.relu(self.conv1(x))))
        return F.relu(body + x)


class ConvLSTMCell(nn.Module):
    """Convolutional LSTM without peepholes (paper Eq. 3 without the W_c* peephole terms).

        i_t = sigma(W_i * [X_t, H_{t-1}] + b_i)      f_t = sigma(W_f * [X_t, H_{t-1}] + b_f)
        g_t = tanh(W_g * [X_t, H_{t-1}] + b_g)       o_t = sigma(W_o * [X_t, H_{t-1}] + b_o)
        C_t = f_t C_{t-1} + i_t g_t                  H_t = o_t tanh(C_t)

    The four gate convolutions are fused into one conv with 4*hidden outputs in the order
    (i, f, g, o); the authors' checkpoint keeps them as four convs (see ``authors.py``).
    """

    def __init__(self, in_channels: int, hidden: int):
        super().__init__()
        self.hidden = hidden
        self.gates = conv3x3(in_channels + hidden, 4 * hidden)

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        h, c = state  # (B, hidden, H, W) each
        z = self.gates(torch.cat([x, h], dim=1))  # (B, 4*hidden, H, W)
        i, f, g, o = z.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


class AttentiveRecurrentNetwork(nn.Module):
    """N recurrent steps sharing one set of weights; each step refines the attention map A_t.

    step t:  x = ReLU(conv(cat[I, A_{t-1}]));  x = ResBlock^5(x);  (h, c) = ConvLSTM(x, (h, c));
             A_t = conv(h)   (no activation: A_t is not squashed to [0, 1])
    """

    def __init__(self, steps: int = 4, width: float = 1.0, n_res: int = 5, initial_attention: float = 0.5):
        super().__init__()
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        c = _ch(32, width)
        self.steps = steps
        self.channels = c
        self.initial_attention = initial_attention
        self.head_in = conv3x3(3 + 1, c)
        self.res_blocks = nn.ModuleList(ResidualBlock(c) for _ in range(n_res))
        self.lstm = ConvLSTMCell(c, c)
        self.attention_head = conv3x3(c, 1)

    def forward(self, image: Tensor) -> list[Tensor]:
        b, _, h, w = image.shape
        A = image.new_full((b, 1, h, w), self.initial_attention)  # A_0: (B, 1, H, W)
        hidden = image.new_zeros((b, self.channels, h, w))  # h_0: (B, C, H, W)
        cell = torch.zeros_like(hidden)  # c_0
        maps: list[Tensor] = []
        for _ in range(self.steps):
            x = F.relu(self.head_in(torch.cat([image, A], dim=1)))  # (B, C, H, W)
            for block in self.res_blocks:
                x = block(x)
            hidden, cell = self.lstm(x, (hidden, cell))
            A = self.attention_head(hidden)  # A_t: (B, 1, H, W)
            maps.append(A)
        return maps


# ----------------------------------------------------------------------------------------------
# Contextual autoencoder (paper Sec. 4.1, Fig. 4)
# ----------------------------------------------------------------------------------------------


class UpBlock(nn.Module):
    """Transposed conv (k4, s2, p1) -> reflection pad (l1, r0, t1, b0) -> 2x2 avg pool (s1) -> ReLU."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.deconv = nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.deconv(x)  # (B, cout, 2h, 2w)
        x = F.pad(x, (1, 0, 1, 0), mode="reflect")  # (B, cout, 2h+1, 2w+1)
        return F.relu(F.avg_pool2d(x, 2, stride=1))  # (B, cout, 2h, 2w)


class ContextualAutoencoder(nn.Module):
    """16 conv-ReLU blocks with skips and multi-scale heads (S1 at 1/4, S2 at 1/2, O at 1).

    ``in_channels`` is 4 (image + A_N) in the full model and 3 in the ablation "A".
    """

    def __init__(self, in_channels: int = 4, width: float = 1.0):
        super().__init__()
        c1, c2, c3 = _ch(64, width), _ch(128, width), _ch(256, width)
        self.in_channels = in_channels
        self.conv1 = nn.Conv2d(in_channels, c1, 5, padding=2)  # 1     -> skip s1
        self.conv2 = conv3x3(c1, c2, stride=2)  # 1/2
        self.conv3 = conv3x3(c2, c2)  # 1/2   -> skip s2
        self.conv4 = conv3x3(c2, c3, stride=2)  # 1/4
        self.conv5 = conv3x3(c3, c3)
        self.conv6 = conv3x3(c3, c3)
        self.dilated = nn.ModuleList(conv3x3(c3, c3, dilation=d) for d in (2, 4, 8, 16))
        self.conv7 = conv3x3(c3, c3)
        self.conv8 = conv3x3(c3, c3)
        self.up1 = UpBlock(c3, c2)  # 1/4 -> 1/2
        self.conv9 = conv3x3(c2, c2)
        self.up2 = UpBlock(c2, c1)  # 1/2 -> 1
        self.conv10 = conv3x3(c1, _ch(32, width))
        self.head_S1 = conv3x3(c3, 3)
        self.head_S2 = conv3x3(c2, 3)
        self.head_O = conv3x3(_ch(32, width), 3)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x = F.relu(self.conv1(x))  # (B, 64, H, W)
        s1 = x
        x = F.relu(self.conv2(x))  # (B, 128, H/2, W/2)
        x = F.relu(self.conv3(x))
        s2 = x
        x = F.relu(self.conv4(x))  # (B, 256, H/4, W/4)
        x = F.relu(self.conv5(x))
        x = F.relu(self.conv6(x))
        for conv in self.dilated:
            x = F.relu(conv(x))
        x = F.relu(self.conv7(x))
        x = F.relu(self.conv8(x))
        S1 = F.relu(self.head_S1(x))  # (B, 3, H/4, W/4)
        x = self.up1(x) + s2  # (B, 128, H/2, W/2); no activation after the add
        x = F.relu(self.conv9(x))
        S2 = F.relu(self.head_S2(x))  # (B, 3, H/2, W/2)
        x = self.up2(x) + s1  # (B, 64, H, W)
        x = F.relu(self.conv10(x))  # (B, 32, H, W)
        O = self.head_O(x)  # (B, 3, H, W), no activation
        return S1, S2, O


class Generator(nn.Module):
    """G: I -> (A_1..A_N, S1, S2, O).

    Args:
        width: channel multiplier (1.0 = paper); topology is unchanged.
        arn_width: the attentive-recurrent network's own multiplier (None = ``width``).
        steps: N, the number of recurrent attention steps (4 = paper).
        attentive: False gives the autoencoder-only generator of ablation "A"
            (3-channel input, no attentive-recurrent network).
    """

    def __init__(self, width: float = 1.0, steps: int = 4, attentive: bool = True,
                 arn_width: float | None = None):
        super().__init__()
        self.width = width
        self.arn_width = width if arn_width is None else arn_width
        self.steps = steps if attentive else 0
        self.attentive = attentive
        self.arn = AttentiveRecurrentNetwork(steps=steps, width=self.arn_width) if attentive else None
        self.autoencoder = ContextualAutoencoder(in_channels=4 if attentive else 3, width=width)

    def forward(self, image: Tensor) -> GeneratorOutput:
        check_size(image)
        if self.arn is not None:
            maps = self.arn(image)
            x = torch.cat([image, maps[-1]], dim=1)  # (B, 4, H, W): [I, A_N]
        else:
            maps, x = [], image
        S1, S2, O = self.autoencoder(x)
        return GeneratorOutput(maps, S1, S2, O)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
