"""Eigen13 and Pix2Pix baselines (Table 1 rows 1-2): shapes, parameter counts, one training step."""

import pytest
import torch

from agan.models import count_parameters
from agan.models.baselines import Eigen13, PatchDiscriminator, UNetGenerator, unet_depth_for

# ---------------------------------------------------------------------------------------------
# parameter counts: the value the formula gives, and the same count written out by hand
# ---------------------------------------------------------------------------------------------


def eigen13_params_by_hand(c: int) -> int:
    conv1 = 16 * 16 * 3 * c + c  # 16x16, 3 -> c
    conv2 = 1 * 1 * c * c + c  # 1x1, c -> c
    conv3 = 8 * 8 * c * 3 + 3  # 8x8, c -> 3
    return conv1 + conv2 + conv3


def unet_params_by_hand(depth: int, ngf: int) -> int:
    c = [ngf * min(2 ** i, 8) for i in range(depth)]
    k = 4 * 4
    n = k * 3 * c[0] + c[0]  # first conv, bias, no norm
    for i in range(1, depth - 1):
        n += k * c[i - 1] * c[i] + 2 * c[i]  # conv without bias + norm (scale, shift)
    n += k * c[depth - 2] * c[depth - 1] + c[depth - 1]  # innermost conv, bias, no norm
    n += k * c[depth - 1] * c[depth - 2] + 2 * c[depth - 2]  # innermost transposed conv + norm
    for i in range(depth - 2, 0, -1):
        n += k * 2 * c[i] * c[i - 1] + 2 * c[i - 1]  # cat[skip, up] -> c_{i-1}, + norm
    n += k * 2 * c[0] * 3 + 3  # outermost transposed conv to RGB, bias
    return n


def patchgan_params_by_hand(cin: int, ndf: int) -> int:
    k = 4 * 4
    n = k * cin * ndf + ndf  # C64, bias, no norm
    n += k * ndf * 2 * ndf + 2 * 2 * ndf  # C128 + norm
    n += k * 2 * ndf * 4 * ndf + 2 * 4 * ndf  # C256 + norm
    n += k * 4 * ndf * 8 * ndf + 2 * 8 * ndf  # C512 (stride 1) + norm
    n += k * 8 * ndf * 1 + 1  # to one logit per patch
    return n


def test_eigen13_parameter_count():
    assert count_parameters(Eigen13()) == 754_691
    assert count_parameters(Eigen13()) == eigen13_params_by_hand(512)
    assert count_parameters(Eigen13(width=0.25)) == eigen13_params_by_hand(128)


def test_unet_parameter_count():
    assert count_parameters(UNetGenerator(depth=8, ngf=64)) == 54_414_531
    assert count_parameters(UNetGenerator(depth=8, ngf=64)) == unet_params_by_hand(8, 64)
    assert count_parameters(UNetGenerator(depth=6, ngf=16, norm="instance")) == unet_params_by_hand(6, 16)


def test_patchgan_parameter_count():
    assert count_parameters(PatchDiscriminator()) == 2_768_705
    assert count_parameters(PatchDiscriminator()) == patchgan_params_by_hand(6, 64)
    assert count_parameters(PatchDiscriminator(ndf=16)) == patchgan_params_by_hand(6, 16)


def test_patchgan_receptive_field_is_70():
    # receptive field of the stack k4s2, k4s2, k4s2, k4s1, k4s1: r = 1 + sum (k - 1) * prod(previous strides)
    D = PatchDiscriminator(ndf=4)
    convs = [m for m in D.net if isinstance(m, torch.nn.Conv2d)]
    r, jump = 1, 1
    for m in convs:
        r += (m.kernel_size[0] - 1) * jump
        jump *= m.stride[0]
    assert r == 70


# ---------------------------------------------------------------------------------------------
# shapes
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("hw", [(32, 32), (17, 23), (9, 40)])
def test_eigen13_keeps_size(hw):
    x = torch.rand(2, 3, *hw)
    assert Eigen13(width=1 / 32)(x).shape == (2, 3, *hw)


def test_eigen13_layers_are_the_papers():
    m = Eigen13()
    assert (m.conv1.kernel_size, m.conv1.out_channels) == ((16, 16), 512)
    assert (m.conv2.kernel_size, m.conv2.out_channels) == ((1, 1), 512)
    assert (m.conv3.kernel_size, m.conv3.out_channels) == ((8, 8), 3)


@pytest.mark.parametrize("hw", [(32, 32), (64, 48), (36, 52), (20, 100)])
def test_unet_output_size_equals_input_size(hw):
    G = UNetGenerator(depth=5, ngf=4).eval()
    x = torch.rand(1, 3, *hw)
    O = G(x)
    assert O.shape == x.shape
    assert O.min() >= 0 and O.max() <= 1  # Tanh mapped back to [0, 1]


def test_unet_skips_reach_the_output():
    # the outermost decoder layer sees cat[e_0, up]: perturbing one corner pixel changes that corner
    # more than the far corner (a pure bottleneck network would spread it everywhere equally)
    G = UNetGenerator(depth=4, ngf=4).eval()
    x = torch.rand(1, 3, 32, 32)
    y = x.clone()
    y[..., 0, 0] += 0.5
    d = (G(y) - G(x)).abs().sum(1)[0]
    assert d[:2, :2].sum() > 10 * d[-2:, -2:].sum()


def test_unet_bad_input_is_one_clear_error():
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        UNetGenerator(depth=3, ngf=4)(torch.rand(1, 4, 32, 32))
    with pytest.raises(ValueError, match="depth"):
        UNetGenerator(depth=1)


def test_patchgan_shapes_and_conditioning():
    D = PatchDiscriminator(ndf=8)
    assert D(torch.rand(2, 6, 64, 64)).shape == (2, 1, 6, 6)
    assert D(torch.rand(1, 6, 256, 256)).shape == (1, 1, 30, 30)  # the paper's 30x30 patch map at 256
    with pytest.raises(ValueError, match="H, W >= 32"):
        D(torch.rand(1, 6, 16, 16))


def test_unet_depth_for_crop():
    assert unet_depth_for(256) == 8 and unet_depth_for(224) == 8 and unet_depth_for(64) == 6
    assert unet_depth_for(1024) == 8


# ---------------------------------------------------------------------------------------------
# recipes: a few Adam steps on one fixed batch lower the loss
# ---------------------------------------------------------------------------------------------


def _fixed_batch(b=2, size=32):
    g = torch.Generator().manual_seed(1)
    clean = torch.rand(b, 3, size // 4, size // 4, generator=g)
    clean = torch.nn.functional.interpolate(clean, size=(size, size), mode="bilinear", align_corners=False)
    mask = (torch.rand(b, 1, size, size, generator=g) > 0.85).float()
    rain = (clean * (1 - mask) + 0.9 * mask).clamp(0, 1)
    return {"rain": rain, "clean": clean, "mask": mask}


def _recipe(model, **kw):
    from agan.config import Config
    from agan.train.registry import get_recipe

    cfg = Config.preset("cpu", model=model, crop_size=32, **kw)
    return get_recipe(cfg, torch.device("cpu"), log=lambda *a: None)


def test_baseline_recipes_are_registered():
    import agan.train.baselines  # noqa: F401
    from agan.train.registry import RECIPES

    assert {"eigen13", "pix2pix", "agan"} <= set(RECIPES)


def test_eigen13_recipe_steps_lower_mse():
    recipe = _recipe("eigen13", width=1 / 16)
    G, D = recipe.build()
    assert D is None and isinstance(G, Eigen13)
    batch = _fixed_batch()
    opt = torch.optim.Adam(G.parameters(), lr=1e-3)

    def loss():
        with torch.no_grad():
            return recipe.g_loss(None, batch, recipe.generate(G, batch), False)[0].item()

    before = loss()
    for _ in range(5):
        L, terms = recipe.g_loss(None, batch, recipe.generate(G, batch), False)
        assert set(terms) == set(recipe.loss_names)
        torch.testing.assert_close(L, torch.nn.functional.mse_loss(G(batch["rain"]), batch["clean"]))
        opt.zero_grad()
        L.backward()
        opt.step()
    assert loss() < 0.8 * before


def test_pix2pix_recipe_steps_lower_l1_and_d_loss():
    recipe = _recipe("pix2pix", width=1 / 8, disc_width=1 / 8)
    G, D = recipe.build()
    assert isinstance(G, UNetGenerator) and isinstance(D, PatchDiscriminator)
    assert G.depth == 5  # 1x1 bottleneck on 32x32 crops
    batch = _fixed_batch()
    opt_G, opt_D = torch.optim.Adam(G.parameters(), lr=2e-3), torch.optim.Adam(D.parameters(), lr=2e-3)

    @torch.no_grad()
    def measure():
        G.eval()
        out = recipe.generate(G, batch)
        L_G, t = recipe.g_loss(D, batch, out, True)
        L_D, _ = recipe.d_loss(D, batch, out)
        G.train()
        return t["L_L1"].item(), L_D.item(), L_G.item(), t["L_GAN"].item()

    l1_0, d_0, g_0, gan_0 = measure()
    torch.testing.assert_close(torch.tensor(g_0), torch.tensor(gan_0 + 100 * l1_0))  # L_G = L_GAN + 100 L1
    for _ in range(8):
        out = recipe.generate(G, batch)
        L_D, _ = recipe.d_loss(D, batch, out)
        opt_D.zero_grad()
        L_D.backward()
        opt_D.step()
        L_G, _ = recipe.g_loss(D, batch, out, True)
        opt_G.zero_grad()
        L_G.backward()
        opt_G.step()
    l1_1, _, _, _ = measure()
    assert l1_1 < 0.9 * l1_0
    # D alone, G fixed: its loss on the fixed batch goes down
    for _ in range(5):
        with torch.no_grad():
            out = recipe.generate(G, batch)
        L_D, _ = recipe.d_loss(D, batch, out)
        opt_D.zero_grad()
        L_D.backward()
        opt_D.step()
    _, d_2, _, _ = measure()
    assert d_2 < d_0


def test_pix2pix_d_loss_is_half_the_two_bce():
    recipe = _recipe("pix2pix", width=1 / 16, disc_width=1 / 16)
    G, D = recipe.build()
    batch = _fixed_batch()
    with torch.no_grad():
        out = G(batch["rain"])
        L_D, _ = recipe.d_loss(D, batch, out)
        bce = torch.nn.functional.binary_cross_entropy_with_logits
        real = D(torch.cat([batch["rain"], batch["clean"]], 1))
        fake = D(torch.cat([batch["rain"], out], 1))
        expected = (bce(real, torch.ones_like(real)) + bce(fake, torch.zeros_like(fake))) / 2
    torch.testing.assert_close(L_D, expected)


def test_model_summary_reports_baselines():
    from agan.config import Config
    from agan.models.summary import model_summary

    e = model_summary(Config.preset("paper", model="eigen13"), [(32, 48)])
    assert e["parameters"] == {"generator": 754_691}
    # FLOPs: 2 x multiply-adds per pixel of the three convolutions
    assert e["gflops"]["32x48"] * 1e9 == pytest.approx(
        2 * 32 * 48 * (16 * 16 * 3 * 512 + 512 * 512 + 8 * 8 * 512 * 3))
    cfg = Config.preset("cpu", model="pix2pix")
    p = model_summary(cfg, [(64, 64)])
    # ngf = 64 * width, ndf = 64 * disc_width (the cpu preset's widths get tuned; derive, don't hard-code)
    assert p["parameters"]["generator"] == unet_params_by_hand(6, round(64 * cfg.width))
    assert p["parameters"]["discriminator (PatchGAN)"] == patchgan_params_by_hand(
        6, round(64 * cfg.disc_width))
