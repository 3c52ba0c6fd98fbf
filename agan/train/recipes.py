"""Training recipes: what one model kind builds and which losses its two updates minimise.

The training loop (``agan.train.loop``) is model-agnostic: per step it calls

    out = recipe.generate(G, batch)                       # one generator forward pass
    L_D, terms = recipe.d_loss(D, batch, out)             # discriminator update (D's params only)
    L_G, terms = recipe.g_loss(D_frozen, batch, out, adversarial)   # generator update, D frozen

and logs the returned terms under the names of ``recipe.loss_names``. ``agan.train.registry`` maps each
``cfg.model`` to its recipe ("agan" here; the baselines "eigen13" and "pix2pix" in
``agan.train.baselines``). Rules for ``d_loss``: call D *once* (real and fake concatenated:
DistributedDataParallel expects one forward per backward) and feed it detached fakes.

AganRecipe (paper Sec. 4, Eqs. 4-9; docs/paper.md#losses), variants of Table 1 (``cfg.variant``):
    A       autoencoder only, no D:  L_G = L_M + L_P     (every "+ L_P": unless cfg.perceptual_weight = 0)
    A+D     + plain D:               L_G = 0.01 log(1 - D(O)) + L_M + L_P;  L_D = -log D(R) - log(1 - D(O))
    A+AD    + attentive D:           L_D += gamma L_map, D_map's target for fakes is the mask M (no A_N)
    AA+AD   full:                    L_G = 0.01 log(1 - D(O)) + L_ATT + L_M + L_P;
                                     L_D = -log D(R) - log(1 - D(O)) + gamma L_map,
                                     L_map = MSE(D_map(O), A_N) + MSE(D_map(R), 0)
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor, nn

from agan.config import Config

__all__ = ["AganRecipe", "Recipe", "d_means", "logit_range", "make_perceptual_loss"]

Batch = dict[str, Any]  # {"rain": (B,3,H,W), "clean": (B,3,H,W), "mask": (B,1,H,W), "id": [str]}


class Recipe:
    """Base recipe: subclasses build (G, D) and compute the losses. Terms are 0-dim tensors."""

    loss_names: tuple[str, ...] = ()

    def __init__(self, cfg: Config, device: torch.device, log=print):
        self.cfg, self.device, self.log = cfg, device, log

    def build(self) -> tuple[nn.Module, nn.Module | None]:
        raise NotImplementedError

    def to(self, device: torch.device, memory_format: torch.memory_format = torch.preserve_format) -> Recipe:
        """Move the recipe's own modules (loss networks such as VGG) to the device / memory format."""
        for m in vars(self).values():
            if isinstance(m, nn.Module):
                m.to(device, memory_format=memory_format)
        return self

    def generate(self, G: nn.Module, batch: Batch) -> Any:
        return G(batch["rain"])

    def output(self, out: Any) -> Tensor:
        """The restored image O (B, 3, H, W) from what :meth:`generate` returned."""
        return out

    def d_loss(self, D: nn.Module, batch: Batch, out: Any) -> tuple[Tensor, dict[str, Tensor]]:
        raise NotImplementedError

    def g_loss(self, D: nn.Module | None, batch: Batch, out: Any, adversarial: bool
               ) -> tuple[Tensor, dict[str, Tensor]]:
        raise NotImplementedError

    def panels(self, batch: Batch, out: Any) -> list[Tensor]:
        """Columns of the sample grid, each (B, 3, H, W) in [0, 1]: input, ..., O, clean."""
        return [batch["rain"], self.output(out), batch["clean"]]


def logit_range(logits: Tensor) -> Tensor:
    """max - min of D's logits over a step's real and fake images (logged as ``D_range``). Exactly 0 when D's
    output no longer depends on its input, e.g. a layer whose ReLUs never fire (a dead discriminator: the GAN
    term then gives G nothing, and no gradient brings D back)."""
    logits = logits.detach().float()
    return logits.max() - logits.min()


def d_means(logit_real: Tensor, logit_fake: Tensor) -> dict[str, Tensor]:
    """D's mean output on the clean images R and on G's outputs O (logged as ``D_R`` and ``D_O``): a D that
    tells them apart has D_R - D_O > 0; both at 1/2 is a D that has learnt nothing."""
    prob = lambda logit: logit.detach().float().sigmoid().mean()  # noqa: E731
    return {"D_R": prob(logit_real), "D_O": prob(logit_fake)}


_RANDOM_VGG: dict = {}


def make_perceptual_loss(cfg: Config, log=print) -> nn.Module:
    """L_P with the configured VGG16 features. Random-init features (cpu preset) are drawn from a
    generator seeded by cfg.seed, so they are the same on every rank and after a resume."""
    from agan.losses import PerceptualLoss, VGGFeatures

    if cfg.vgg_weights == "random":
        log("perceptual loss L_P: using RANDOM-INIT VGG16 features (vgg_weights='random'), "
            "not the paper's ImageNet VGG16")
        key = (cfg.seed, tuple(cfg.vgg_layers))
        if key not in _RANDOM_VGG:  # building VGG16 takes seconds: keep one per (seed, layers)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(cfg.seed + 7919)
                _RANDOM_VGG.clear()
                _RANDOM_VGG[key] = VGGFeatures(cfg.vgg_layers, weights="random")
        feats = copy.deepcopy(_RANDOM_VGG[key])
    else:
        feats = VGGFeatures(cfg.vgg_layers, weights=cfg.vgg_weights)
        log(f"perceptual loss L_P: VGG16 features from {cfg.vgg_weights!r}, "
            f"layers {', '.join(cfg.vgg_layers)}")
    return PerceptualLoss(feats, layer_weights=cfg.vgg_layer_weights)


class AganRecipe(Recipe):
    """Attentive GAN and its ablations (cfg.variant)."""

    def __init__(self, cfg: Config, device: torch.device, log=print):
        super().__init__(cfg, device, log)
        from agan.losses import (
            AttentionLoss,
            DiscriminatorLoss,
            GeneratorAdversarialLoss,
            KeepLoss,
            MultiScaleLoss,
        )

        self.attentive = cfg.attentive_generator
        self.disc = cfg.discriminator  # None | "plain" | "attentive"
        self.L_ATT = AttentionLoss(cfg.theta)
        self.L_M = MultiScaleLoss(cfg.lambdas)
        self.L_keep = KeepLoss() if cfg.keep_weight else None  # off: not computed, not logged
        self.perceptual = cfg.perceptual_weight != 0  # off: no VGG is built or run, L_P is not logged
        if self.perceptual:
            self.L_P = make_perceptual_loss(cfg, log)
        else:
            log("perceptual loss L_P: off (perceptual_weight=0): L_G has no L_P term")
        self.L_GAN = GeneratorAdversarialLoss(cfg.adv_weight)
        self.L_D = DiscriminatorLoss(cfg.gamma)
        names = []
        if self.disc:
            names.append("L_GAN")
        if self.attentive:
            names.append("L_ATT")
        names += ["L_M", *(("L_keep",) if self.L_keep else ()), *(("L_P",) if self.perceptual else ()), "L_G"]
        if self.disc:
            names.append("L_D")
        if self.disc == "attentive":
            names.append("L_map")
        self.loss_names = tuple(names)

    def build(self):
        from agan.models import build_discriminator, build_generator  # the builders agan.models' users get

        # Attentive GAN's networks whatever cfg.model says (a subclass may be registered as a kind of its own)
        return build_generator(self.cfg, "agan"), build_discriminator(self.cfg, "agan")

    def output(self, out) -> Tensor:
        return out.O

    def d_loss(self, D, batch, out):
        R, O = batch["clean"], out.O.detach()  # (B, 3, H, W) each
        d = D(torch.cat([R, O], dim=0))  # one forward: real then fake
        logit_real, logit_fake = d.logit.chunk(2, dim=0)
        map_real = map_fake = target = None
        if d.map is not None:
            map_real, map_fake = d.map.chunk(2, dim=0)  # (B, 1, H, W) each
            if out.attention and self.cfg.map_target == "attention":
                target = out.attention[-1].detach()  # A_N
            else:
                target = batch["mask"]  # M (also for A+AD, which has no A_N)
        L_D, L_map = self.L_D(logit_real, logit_fake, map_real, map_fake, target)
        terms = {"L_D": L_D, "D_range": logit_range(d.logit), **d_means(logit_real, logit_fake)}
        if self.disc == "attentive":
            terms["L_map"] = L_map
        return L_D, terms

    def g_loss(self, D, batch, out, adversarial):
        T, M = batch["clean"], batch["mask"]
        terms: dict[str, Tensor] = {}
        L_G = T.new_zeros((), dtype=torch.float32)
        if self.disc and adversarial:  # L_GAN = 0.01 log(1 - D(O)); absent during generator pre-training
            terms["L_GAN"] = self.L_GAN(D(out.O).logit)
            L_G = L_G + terms["L_GAN"]
        if self.attentive:
            terms["L_ATT"] = self.L_ATT(out.attention, M)
            L_G = L_G + terms["L_ATT"]
        terms["L_M"] = self.L_M([out.S1, out.S2, out.O], T)
        L_G = L_G + terms["L_M"]
        if self.L_keep is not None:  # do no harm: L1 on the pixels without drops (not in the paper)
            terms["L_keep"] = self.cfg.keep_weight * self.L_keep(out.O, batch["rain"], T)
            L_G = L_G + terms["L_keep"]
        if self.perceptual:
            terms["L_P"] = self.cfg.perceptual_weight * self.L_P(out.O, T)
            L_G = L_G + terms["L_P"]
        terms["L_G"] = L_G
        return L_G, terms

    def panels(self, batch, out):
        maps = [A.clamp(0, 1).expand(-1, 3, -1, -1) for A in out.attention]  # A_1..A_N as grey images
        return [batch["rain"], *maps, out.O, batch["clean"]]
