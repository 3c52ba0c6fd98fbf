"""The two baselines of Table 1: Eigen13 (three-layer CNN) and Pix2Pix (U-Net + 70x70 PatchGAN).

References
    D. Eigen, D. Krishnan, R. Fergus, "Restoring an image taken through a window covered with dirt
    or rain", ICCV 2013.  Sec. 3: a network of three convolutional layers that maps a corrupted
    patch to the clean patch: 512 filters of 16x16 with tanh, a 1x1 layer 512 -> 512 with tanh,
    and a last 8x8 layer -> 3 channels that predicts the clean image.
    P. Isola, J.-Y. Zhu, T. Zhou, A. A. Efros, "Image-to-Image Translation with Conditional
    Adversarial Networks", CVPR 2017.  Appendix 6.1: U-Net generator (encoder C64-C128-C256-C512-
    C512-C512-C512-C512, 4x4 stride-2 convs, LeakyReLU 0.2, BatchNorm except on the first layer;
    decoder CD512-CD512-CD512-C512-C256-C128-C64 with ReLU, skip connections by concatenation,
    Tanh output) and the 70x70 PatchGAN discriminator (C64-C128-C256-C512, a last conv to 1 channel).

Both generators take and return RGB images in [0, 1], like the Attentive GAN generator, so the
same trainer and evaluator drive them; they return a plain tensor O (B, 3, H, W), not a tuple.

Choices the papers leave open (or that differ from the originals), stated here once:
    Eigen13   fully convolutional with "same" replicate padding (the original trained on 64x64 patches
              with valid convolutions and tiled at test time); the input is centred (x - 0.5) and
              0.5 is added back to the prediction; ``width`` scales the 512 hidden channels.
    Pix2Pix   images are mapped to [-1, 1] inside and the Tanh output back to [0, 1]; inputs whose
              H or W are not multiples of 2**depth are reflection-padded inside and the output
              cropped back.  The innermost encoder layer has no normalisation (a 1x1 bottleneck
              cannot be batch- or instance-normalised); convs followed by a norm have no bias
              (the norm's shift replaces it).  Dropout (p = 0.5) sits in the three decoder
              layers next to the bottleneck and, unlike the paper, is off in eval mode, so
              evaluation is deterministic.  Weights start from N(0, 0.02) (norm scales N(1, 0.02)).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["BASELINES", "Eigen13", "PatchDiscriminator", "UNetGenerator", "build_baseline_discriminator",
           "build_baseline_generator", "init_pix2pix_weights", "unet_depth_for"]


def _ch(base: int, width: float) -> int:
    return max(1, round(base * width))


# ----------------------------------------------------------------------------------------------
# Eigen et al. 2013
# ----------------------------------------------------------------------------------------------


class _SamePad(nn.Module):
    """Replicate padding that keeps H x W through a stride-1 k x k conv (k even: one more on the far side)."""

    def __init__(self, k: int):
        super().__init__()
        lo = (k - 1) // 2
        self.pad = (lo, k - 1 - lo, lo, k - 1 - lo)  # (left, right, top, bottom)

    def forward(self, x: Tensor) -> Tensor:
        return F.pad(x, self.pad, mode="replicate")


class Eigen13(nn.Module):
    """Three-layer CNN of Eigen et al. (ICCV 2013) predicting the clean image O from the rainy image I.

        h1 = tanh(W1 * I + b1)     W1: 16x16, 3 -> 512
        h2 = tanh(W2 * h1 + b2)    W2: 1x1, 512 -> 512
        O  = W3 * h2 + b3          W3: 8x8, 512 -> 3

    ``width`` scales the 512 hidden channels (1.0 = paper, 754,691 parameters).
    forward: (B, 3, H, W) in [0, 1] -> O (B, 3, H, W); any H, W >= 1.
    """

    def __init__(self, width: float = 1.0, hidden: int = 512):
        super().__init__()
        c = _ch(hidden, width)
        self.width = width
        self.pad1, self.conv1 = _SamePad(16), nn.Conv2d(3, c, 16)
        self.conv2 = nn.Conv2d(c, c, 1)
        self.pad3, self.conv3 = _SamePad(8), nn.Conv2d(c, 3, 8)

    def forward(self, image: Tensor) -> Tensor:
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"Eigen13 expects an image batch of shape (B, 3, H, W), "
                             f"got {tuple(image.shape)}")
        x = torch.tanh(self.conv1(self.pad1(image - 0.5)))  # (B, 512, H, W)
        x = torch.tanh(self.conv2(x))  # (B, 512, H, W)
        return self.conv3(self.pad3(x)) + 0.5  # O: (B, 3, H, W)


# ----------------------------------------------------------------------------------------------
# Pix2Pix: U-Net generator
# ----------------------------------------------------------------------------------------------


def _norm(kind: str, c: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(c)
    if kind == "instance":
        return nn.InstanceNorm2d(c, affine=True)
    raise ValueError(f"norm must be 'batch' or 'instance', got {kind!r}")


def unet_depth_for(crop_size: int, max_depth: int = 8) -> int:
    """U-Net depth whose bottleneck is 1x1 on a crop of this size (8 for 256, the paper's), at most
    ``max_depth``."""
    return max(1, min(max_depth, math.ceil(math.log2(max(2, crop_size)))))


class UNetGenerator(nn.Module):
    """Pix2Pix U-Net: ``depth`` stride-2 4x4 convs down, ``depth`` stride-2 4x4 transposed convs up,
    encoder features e_i concatenated to the decoder input at the same scale.

    Channels at level i (0 = full size / 2): ngf * min(2**i, 8)  ->  64, 128, 256, 512, 512, ...
        down_0:  Conv(3 -> c_0)                        (no norm)
        down_i:  LeakyReLU(0.2), Conv(c_{i-1} -> c_i), Norm   (innermost: no norm)
        up_{d-1}: ReLU, ConvT(c_{d-1} -> c_{d-2}), Norm (+ Dropout)
        up_i:    ReLU, ConvT(2 c_i -> c_{i-1}), Norm (+ Dropout for the 3 levels next to the bottleneck)
        up_0:    ReLU, ConvT(2 c_0 -> 3), Tanh
    depth = 8, ngf = 64 is the paper's "U-Net 256": 54,414,531 parameters (the bias-free reading
    of "a conv before a norm has no bias"; the innermost and first convs keep their biases).
    forward: (B, 3, H, W) in [0, 1] -> O (B, 3, H, W) in [0, 1]; H, W that are not multiples of
    2**depth are reflection-padded inside (replicate when the image is too small) and cropped back.
    """

    def __init__(self, depth: int = 8, ngf: int = 64, norm: str = "batch", dropout: float = 0.5,
                 in_channels: int = 3, out_channels: int = 3):
        super().__init__()
        if depth < 2:
            raise ValueError(f"UNetGenerator depth must be >= 2, got {depth}")
        self.depth = depth
        c = [ngf * min(2 ** i, 8) for i in range(depth)]
        self.down = nn.ModuleList()
        self.up = nn.ModuleList()
        for i in range(depth):
            cin = in_channels if i == 0 else c[i - 1]
            layers: list[nn.Module] = [] if i == 0 else [nn.LeakyReLU(0.2)]
            normed = 0 < i < depth - 1
            layers.append(nn.Conv2d(cin, c[i], 4, stride=2, padding=1, bias=not normed))
            if normed:
                layers.append(_norm(norm, c[i]))
            self.down.append(nn.Sequential(*layers))
        for i in range(depth):  # up[i] produces the features of level i - 1 (or the image for i = 0)
            cin = c[i] if i == depth - 1 else 2 * c[i]
            if i == 0:
                layers = [nn.ReLU(), nn.ConvTranspose2d(cin, out_channels, 4, stride=2, padding=1), nn.Tanh()]
            else:
                layers = [nn.ReLU(), nn.ConvTranspose2d(cin, c[i - 1], 4, stride=2, padding=1, bias=False),
                          _norm(norm, c[i - 1])]
                if i >= depth - 3 and dropout > 0:
                    layers.append(nn.Dropout(dropout))
            self.up.append(nn.Sequential(*layers))
        init_pix2pix_weights(self)

    def forward(self, image: Tensor) -> Tensor:
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"UNetGenerator expects an image batch of shape (B, 3, H, W), "
                             f"got {tuple(image.shape)}")
        h, w = image.shape[-2:]
        m = 2 ** self.depth
        ph, pw = (-h) % m, (-w) % m
        x = image * 2 - 1  # [0, 1] -> [-1, 1]
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), mode=mode)
        skips = []
        for down in self.down:
            x = down(x)  # e_i: (B, c_i, H / 2^(i+1), W / 2^(i+1))
            skips.append(x)
        x = self.up[-1](skips[-1])  # (B, c_{d-2}, H / 2^(d-1), ...)
        for i in range(self.depth - 2, -1, -1):
            x = self.up[i](torch.cat([skips[i], x], dim=1))  # (B, c_{i-1}, H / 2^i, ...)
        x = x[..., ph // 2: ph // 2 + h, pw // 2: pw // 2 + w]
        return (x + 1) / 2  # O: (B, 3, H, W) in [0, 1]


# ----------------------------------------------------------------------------------------------
# Pix2Pix: 70x70 PatchGAN discriminator
# ----------------------------------------------------------------------------------------------


class PatchDiscriminator(nn.Module):
    """70x70 PatchGAN: C64-C128-C256-C512 (4x4 convs, stride 2, 2, 2, 1; LeakyReLU 0.2; norm except
    on the first layer) then a 4x4 stride-1 conv to one logit per patch.

    Conditional: the input is cat[I, image] with I the rainy image (``in_channels`` = 6), image the
    clean image R or the output O, both in [0, 1] (mapped to [-1, 1] inside).
    forward: (B, 6, H, W) -> logits (B, 1, H/8 - 2, W/8 - 2), no sigmoid; H, W >= 32.
    With ndf = 64 it has 2,768,705 parameters.
    """

    def __init__(self, in_channels: int = 6, ndf: int = 64, n_layers: int = 3, norm: str = "batch"):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        cin = ndf
        for i in range(1, n_layers + 1):
            cout = ndf * min(2 ** i, 8)
            stride = 2 if i < n_layers else 1
            layers += [nn.Conv2d(cin, cout, 4, stride=stride, padding=1, bias=False), _norm(norm, cout),
                       nn.LeakyReLU(0.2)]
            cin = cout
        layers.append(nn.Conv2d(cin, 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*layers)
        self.min_size = 2 ** (n_layers + 2)
        init_pix2pix_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or min(x.shape[-2:]) < self.min_size:
            raise ValueError(f"PatchDiscriminator needs (B, C, H, W) with H, W >= {self.min_size}, "
                             f"got {tuple(x.shape)}")
        return self.net(x * 2 - 1)  # (B, 1, h, w) patch logits


def init_pix2pix_weights(module: nn.Module, std: float = 0.02) -> None:
    """Pix2Pix initialisation: conv weights N(0, std), biases 0; norm scales N(1, std), shifts 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)


# ----------------------------------------------------------------------------------------------
# Built from a config (cfg.model = "eigen13" | "pix2pix"); agan.models.build_generator dispatches here
# ----------------------------------------------------------------------------------------------

BASELINES = ("eigen13", "pix2pix")


def build_baseline_generator(cfg) -> nn.Module:
    """Eigen13(width=cfg.width), or the U-Net with ngf = 64 * cfg.width and depth
    ``cfg.unet_depth`` (0, the default: a 1x1 bottleneck on the training crop, 8 at 224/256).
    Pix2Pix normalisation ``cfg.pix2pix_norm``: "instance" by default, which is what the
    paper's BatchNorm at batch size 1 (train and test) computes; "batch" for true BatchNorm."""
    if cfg.model == "eigen13":
        return Eigen13(width=cfg.width)
    if cfg.model == "pix2pix":
        depth = cfg.unet_depth or unet_depth_for(cfg.crop_size)
        return UNetGenerator(depth=depth, ngf=_ch(64, cfg.width),
                             norm=cfg.pix2pix_norm)
    raise ValueError(f"model must be one of {BASELINES} here, got {cfg.model!r}")


def build_baseline_discriminator(cfg) -> nn.Module | None:
    """None for Eigen13 (no adversarial term); the 70x70 PatchGAN with ndf = 64 * cfg.disc_width for
    Pix2Pix."""
    if cfg.model == "eigen13":
        return None
    if cfg.model == "pix2pix":
        return PatchDiscriminator(in_channels=6, ndf=_ch(64, cfg.disc_width),
                                  norm=cfg.pix2pix_norm)
    raise ValueError(f"model must be one of {BASELINES} here, got {cfg.model!r}")
