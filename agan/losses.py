"""The four losses of Attentive GAN (paper Sec. 4, Eqs. 4-9; docs/paper.md#losses), one small module each.

    L_G = 10^-2 L_GAN(O) + L_ATT({A}, M) + L_M({S}, {T}) + L_P(O, T)          (paper Eq. 7)
    L_D = -log D(R) - log(1 - D(O)) + gamma L_map(O, R, A_N)                  (paper Eqs. 8-9)

Names used by logging and plots: ``LOSS_NAMES``.  Constants are the paper's; variants seen in
other recipes (theta = 0.6, map target = mask M, VGG layer weights 1/0.6/0.4/0.2) are options.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["LOSS_NAMES", "AttentionLoss", "MultiScaleLoss", "KeepLoss", "PerceptualLoss", "VGGFeatures",
           "GeneratorAdversarialLoss", "DiscriminatorLoss", "VGGWeightsUnavailable"]

# declared loss names (logging columns, plot legends)
LOSS_NAMES = ("L_GAN", "L_ATT", "L_M", "L_keep", "L_P", "L_G", "L_D", "L_map")


class AttentionLoss(nn.Module):
    """L_ATT({A}, M) = sum_{t=1}^{N} theta^{N-t} L_MSE(A_t, M)     (paper Eq. 4; theta = 0.8, N = 4)

    Later steps weigh more: A_N has weight 1, A_1 has theta^{N-1}.
    """

    def __init__(self, theta: float = 0.8):
        super().__init__()
        self.theta = theta

    def forward(self, attention: Sequence[Tensor], M: Tensor) -> Tensor:
        N = len(attention)
        return sum(self.theta ** (N - t) * F.mse_loss(A_t, M) for t, A_t in enumerate(attention, start=1))


class MultiScaleLoss(nn.Module):
    """L_M({S}, {T}) = sum_i lambda_i L_MSE(S_i, T_i)     (paper Eq. 5; lambda = 0.6, 0.8, 1.0)

    S_i are the autoencoder's outputs at 1/4, 1/2 and full size (S1, S2, O); T_i is the clean
    image T resized to the same size (area averaging: the mean of each 2x2 or 4x4 block).
    """

    def __init__(self, lambdas: Sequence[float] = (0.6, 0.8, 1.0)):
        super().__init__()
        self.lambdas = tuple(lambdas)

    def forward(self, S: Sequence[Tensor], T: Tensor) -> Tensor:
        if len(S) != len(self.lambdas):
            raise ValueError(f"expected {len(self.lambdas)} scales, got {len(S)}")
        total = T.new_zeros(())
        for lam, S_i in zip(self.lambdas, S):
            T_i = T if S_i.shape[-2:] == T.shape[-2:] else F.interpolate(T, size=S_i.shape[-2:], mode="area")
            total = total + lam * F.mse_loss(S_i, T_i)
        return total


class KeepLoss(nn.Module):
    """L_keep(O, I, T) = sum_p K_p |O_p - T_p| / (3 B H W),   K_p = 1 where max_c |I_p - T_p| < 1/255

    Not in the paper: "do no harm". K marks the pixels that the drops left as they were (the input already
    is the target there), so L_keep is an L1 distance on the drop-free part of the image only. Why L1: for a
    pixel that may or may not be a drop, MSE (L_M) is smallest at the *mean* change, a hedge (bright drops
    make it a darkening of every uncertain pixel), while L1 on the drop-free case adds a pull of constant
    size towards no change, so G changes a pixel only where it is confident of a drop. With a weight w,
    a drop of contrast |delta| is still removed where p(drop) > 1 / (1 + 2|delta|/w).
    """

    def forward(self, O: Tensor, I: Tensor, T: Tensor) -> Tensor:
        # (B, 1, H, W): 1 where rain == clean in every colour
        K = ((I.float() - T.float()).abs().amax(1, keepdim=True) < 1 / 255).float()
        return ((O.float() - T.float()).abs() * K).mean()


class VGGWeightsUnavailable(RuntimeError):
    """ImageNet VGG16 weights were asked for but cannot be loaded; the message lists the options."""


# VGG16 ``features`` indices of relu1_1, relu1_2, relu2_1, relu2_2
VGG_LAYERS = {"relu1_1": 1, "relu1_2": 3, "relu2_1": 6, "relu2_2": 8}


def _vgg16_features(weights: str) -> nn.Sequential:
    """VGG16 ``features`` with ImageNet weights ("imagenet"), a local file (path), or "random"."""
    from torchvision.models import VGG16_Weights, vgg16

    if weights == "random":
        return vgg16(weights=None).features
    if weights == "imagenet":
        try:
            return vgg16(weights=VGG16_Weights.IMAGENET1K_V1).features
        except Exception as e:  # no network, no cache
            hub = os.path.join(torch.hub.get_dir(), "checkpoints")
            raise VGGWeightsUnavailable(
                "the perceptual loss L_P needs ImageNet VGG16 weights, which could not be downloaded "
                f"({type(e).__name__}: {str(e).splitlines()[0][:120]}). Options: (1) run once with internet "
                f"(e.g. on Colab) so torchvision caches vgg16-397923af.pth in {hub}; (2) put that file "
                "there yourself or pass its path with --vgg-weights PATH (config vgg_weights); "
                "(3) set vgg_weights='random' to train with random-init features (not the paper)"
            ) from None
    if not os.path.isfile(weights):
        raise VGGWeightsUnavailable(f"{weights}: VGG16 weights file not found (vgg_weights must be "
                                    "'imagenet', 'random' or the path of vgg16-397923af.pth)")
    from agan.checkpoint import safe_load

    sd = safe_load(weights)
    model = vgg16(weights=None)
    if any(k.startswith("features.") for k in sd):
        model.load_state_dict(sd)
    else:
        model.features.load_state_dict(sd)
    return model.features


class VGGFeatures(nn.Module):
    """Frozen VGG16 trunk returning the activations at the chosen ReLU layers (no mean/std normalisation,
    as in the authors' helper)."""

    def __init__(self, layers: Sequence[str] = ("relu1_1", "relu1_2", "relu2_1", "relu2_2"),
                 weights: str = "imagenet"):
        super().__init__()
        self.indices = [VGG_LAYERS[name] for name in layers]
        self.body = _vgg16_features(weights)[: max(self.indices) + 1].eval()
        self.weights_source = weights
        for p in self.body.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True):  # always eval: no dropout/bn anyway, keep it explicit
        return super().train(False)

    def forward(self, x: Tensor) -> list[Tensor]:
        feats = []
        for i, layer in enumerate(self.body):
            x = layer(x)
            if i in self.indices:
                feats.append(x)
        return feats


class PerceptualLoss(nn.Module):
    """L_P(O, T) = sum_l w_l L_MSE(VGG_l(O), VGG_l(T))     (paper Eq. 6; VGG16 pretrained on ImageNet)

    Default layers relu1_1, relu1_2, relu2_1, relu2_2 with equal weights 1; the weights 1/0.6/0.4/0.2
    of some recipes are an option (``layer_weights``).
    """

    def __init__(self, features: VGGFeatures | None = None, layer_weights: Sequence[float] | None = None,
                 weights: str = "imagenet"):
        super().__init__()
        self.vgg = features if features is not None else VGGFeatures(weights=weights)
        n = len(self.vgg.indices)
        self.layer_weights = tuple(layer_weights) if layer_weights is not None else (1.0,) * n
        if len(self.layer_weights) != n:
            raise ValueError(f"{n} VGG layers but {len(self.layer_weights)} layer weights")

    def forward(self, O: Tensor, T: Tensor) -> Tensor:
        with torch.no_grad():
            target = self.vgg(T)
        return sum(w * F.mse_loss(a, b) for w, a, b in zip(self.layer_weights, self.vgg(O), target))


class GeneratorAdversarialLoss(nn.Module):
    """The generator's GAN term of paper Eq. 7: weight * log(1 - D(O)), weight = 10^-2.

    Computed from D's logit z: log(1 - sigmoid(z)) = -softplus(z), stable for any z.
    ``non_saturating=True`` gives the common -weight * log D(O) instead (not the paper).
    """

    def __init__(self, weight: float = 0.01, non_saturating: bool = False):
        super().__init__()
        self.weight = weight
        self.non_saturating = non_saturating

    def forward(self, logit_fake: Tensor) -> Tensor:
        if self.non_saturating:
            return self.weight * F.softplus(-logit_fake).mean()  # -log D(O)
        return -self.weight * F.softplus(logit_fake).mean()  # log(1 - D(O))


class DiscriminatorLoss(nn.Module):
    """L_D = -log D(R) - log(1 - D(O)) + gamma L_map     (paper Eqs. 8-9; gamma = 0.05)

        L_map(O, R, A_N) = L_MSE(D_map(O), A_N) + L_MSE(D_map(R), 0)

    R is a clean (real) image, O the generator's output; A_N the generator's last attention map
    (detached: D's loss never updates G). ``map_target="mask"`` uses the mask M instead of A_N.
    For the plain discriminator (no D_map) the map term is 0.
    Returns (L_D, L_map).
    """

    def __init__(self, gamma: float = 0.05):
        super().__init__()
        self.gamma = gamma

    def forward(self, logit_real: Tensor, logit_fake: Tensor, map_real: Tensor | None = None,
                map_fake: Tensor | None = None, map_target: Tensor | None = None) -> tuple[Tensor, Tensor]:
        # -log sigmoid(z) = softplus(-z);  -log(1 - sigmoid(z)) = softplus(z)
        adv = F.softplus(-logit_real).mean() + F.softplus(logit_fake).mean()
        if map_real is None or map_fake is None:
            L_map = adv.new_zeros(())
        else:
            if map_target is None:
                raise ValueError("the attentive discriminator needs a map target (A_N or M)")
            L_map = (F.mse_loss(map_fake, map_target.detach())
                     + F.mse_loss(map_real, torch.zeros_like(map_real)))
        return adv + self.gamma * L_map, L_map
