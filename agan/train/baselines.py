"""Training recipes of the two baselines of Table 1, in the same trainer as Attentive GAN.

    agan train --model eigen13 ...   L_G = MSE(O, T)                                (Eigen et al. 2013)
    agan train --model pix2pix ...   L_G = BCE(D(I, O), 1) + 100 |O - T|_1          (Isola et al. 2017, Eq. 4)
                                     L_D = (BCE(D(I, R), 1) + BCE(D(I, O), 0)) / 2

I is the rainy input, O = G(I) the output, T = R the clean image. D is conditional: it sees
cat[I, image] (6 channels) and returns a grid of patch logits (70x70 PatchGAN); BCE is
``binary_cross_entropy_with_logits`` averaged over the patches. The generator term is the
non-saturating -log D(I, O) of the pix2pix paper (Sec. 3.3, "maximise log D(x, G(x))").

The models (``agan.models.baselines``) and the optimiser (cfg.optimizer, lr_g, lr_d, betas) come
from the config like every other run, so Table 1 rows share data, steps, seeds and optimiser; the
pix2pix paper itself used Adam 2e-4, betas (0.5, 0.999), which ``--set lr_g=2e-4 --set lr_d=2e-4
--set betas=[0.5,0.999]`` reproduces.

``agan.train.registry`` maps "eigen13" and "pix2pix" to these recipes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from agan.train.recipes import Recipe, d_means, logit_range

__all__ = ["Eigen13Recipe", "Pix2PixRecipe"]



class Eigen13Recipe(Recipe):
    """Eigen13: the network regresses the clean image; L_MSE = MSE(O, T). No discriminator."""

    loss_names = ("L_MSE",)

    def build(self):
        from agan.models.baselines import build_baseline_generator

        return build_baseline_generator(self.cfg), None

    def d_loss(self, D, batch, out):  # pragma: no cover - the trainer never calls it (no D)
        raise RuntimeError("Eigen13 has no discriminator")

    def g_loss(self, D, batch, out: Tensor, adversarial: bool) -> tuple[Tensor, dict[str, Tensor]]:
        L = F.mse_loss(out.float(), batch["clean"].float())
        return L, {"L_MSE": L}


class Pix2PixRecipe(Recipe):
    """Pix2Pix: U-Net G, conditional 70x70 PatchGAN D, L_G = L_GAN + 100 L_L1."""

    loss_names = ("L_GAN", "L_L1", "L_G", "L_D")

    def __init__(self, cfg, device, log=print):
        super().__init__(cfg, device, log)
        self.l1_weight = cfg.l1_weight

    def build(self):
        from agan.models.baselines import build_baseline_discriminator, build_baseline_generator

        return build_baseline_generator(self.cfg), build_baseline_discriminator(self.cfg)

    def d_loss(self, D, batch, out: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        I, R, O = batch["rain"], batch["clean"], out.detach()  # (B, 3, H, W) each
        pairs = torch.cat([torch.cat([I, R], 1), torch.cat([I, O], 1)], 0)  # (2B, 6, H, W): real then fake
        logits = D(pairs).float()  # (2B, 1, h, w) patch logits
        logit_real, logit_fake = logits.chunk(2, dim=0)
        L_D = 0.5 * (F.binary_cross_entropy_with_logits(logit_real, torch.ones_like(logit_real))
                     + F.binary_cross_entropy_with_logits(logit_fake, torch.zeros_like(logit_fake)))
        return L_D, {"L_D": L_D, "D_range": logit_range(logits), **d_means(logit_real, logit_fake)}

    def g_loss(self, D, batch, out: Tensor, adversarial: bool) -> tuple[Tensor, dict[str, Tensor]]:
        I, T = batch["rain"], batch["clean"]
        L_L1 = F.l1_loss(out.float(), T.float())
        if adversarial:
            logit = D(torch.cat([I, out], 1)).float()  # (B, 1, h, w)
            L_GAN = F.binary_cross_entropy_with_logits(logit, torch.ones_like(logit))  # -log D(I, O)
        else:  # generator pre-training (cfg.pretrain_steps): L1 only, D not run
            L_GAN = L_L1.detach() * 0
        L_G = L_GAN + self.l1_weight * L_L1
        return L_G, {"L_GAN": L_GAN, "L_L1": L_L1, "L_G": L_G}
