"""The attentive discriminator (paper Sec. 4.2) and the plain variant used by ablation "A+D".

Which description the kit follows (docs/paper.md#discriminator): the **authors' released code as they
meant it**, not the paper's text. The paper says "7 conv layers of 3x3, features from the third-last layer
multiplied by the attention map"; the released file has six 5x5 conv+ReLU layers, an attention
head D_map, the features multiplied by D_map, two stride-4 convs and two fully connected layers
(its forward calls one layer twice and cannot run as released; we run the intended graph).

Code <-> paper names
    D(.)     probability that the input is a clean image   ``prob``  (B, 1)
    D_map    the discriminator's attention map            ``map``   (B, 1, H, W), no activation

Layout at 224x224 is identical to the authors': six conv5x5 (3->8->16->64->128->128->128), D_map
conv5x5(128->1), conv5x5/s4/p1 (128->64), conv5x5/s4/p1 (64->32), Linear(32*14*14 -> 1024),
Linear(1024 -> 1), sigmoid.  For other crop sizes the 32-channel features are adaptively
average-pooled to ``pool`` x ``pool`` (14 -> identity at 224), so the FC layer keeps its shape.
``width`` scales every layer's channels (the cpu preset's 1/8: 4, 4, 8, 16, 16, 16), never below
``MIN_CHANNELS``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["DiscriminatorOutput", "AttentiveDiscriminator", "PlainDiscriminator"]


# Narrow discriminators keep at least this many channels per layer (the first layer's 8 would round below 4
# under width 0.44): a 1- or 2-channel conv+ReLU layer can die (every unit negative everywhere), leaving D a
# constant that passes no gradient.
MIN_CHANNELS = 4


class DiscriminatorOutput(NamedTuple):
    prob: Tensor  # D(x) = sigmoid(logit), (B, 1)
    logit: Tensor  # (B, 1): losses use it for numerically stable logs
    map: Tensor | None  # D_map(x), (B, 1, H, W); None for the plain discriminator


class _DiscriminatorBase(nn.Module):
    attentive = True

    def __init__(self, width: float = 1.0, pool: int = 14, fc: int = 1024):
        super().__init__()
        def ch(c: int) -> int:  # the paper's c channels at this width
            return max(MIN_CHANNELS, round(c * width))

        chans = [3] + [ch(c) for c in (8, 16, 64, 128, 128, 128)]
        self.features = nn.ModuleList(nn.Conv2d(a, b, 5, padding=2) for a, b in zip(chans[:-1], chans[1:]))
        c = chans[-1]
        c64, c32 = ch(64), ch(32)
        self.map_head = nn.Conv2d(c, 1, 5, padding=2) if self.attentive else None  # D_map
        self.down1 = nn.Conv2d(c, c64, 5, stride=4, padding=1)
        self.down2 = nn.Conv2d(c64, c32, 5, stride=4, padding=1)
        self.pool = pool
        self.fc1 = nn.Linear(c32 * pool * pool, fc)
        self.fc2 = nn.Linear(fc, 1)

    def forward(self, x: Tensor) -> DiscriminatorOutput:
        for conv in self.features:
            x = F.relu(conv(x))  # (B, 128, H, W)
        d_map = None
        if self.map_head is not None:
            d_map = self.map_head(x)  # D_map: (B, 1, H, W)
            x = x * d_map
        x = F.relu(self.down1(x))  # (B, 64, ~H/4, ~W/4)
        x = F.relu(self.down2(x))  # (B, 32, ~H/16, ~W/16) = 14x14 at 224
        if x.shape[-2:] != (self.pool, self.pool):
            x = F.adaptive_avg_pool2d(x, self.pool)
        logit = self.fc2(self.fc1(x.flatten(1)))  # (B, 1); no activation between the FCs, as released
        return DiscriminatorOutput(logit.sigmoid(), logit, d_map)


class AttentiveDiscriminator(_DiscriminatorBase):
    """Discriminator whose features are multiplied by its own attention map D_map (A+AD, AA+AD)."""

    attentive = True


class PlainDiscriminator(_DiscriminatorBase):
    """The same network without D_map and without the map loss (ablation A+D)."""

    attentive = False
