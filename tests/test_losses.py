"""Every loss term against hand-computed values, and gradients reaching only the right module."""

import math

import pytest
import torch

from agan.losses import (
    AttentionLoss,
    DiscriminatorLoss,
    GeneratorAdversarialLoss,
    KeepLoss,
    MultiScaleLoss,
    PerceptualLoss,
    VGGFeatures,
    VGGWeightsUnavailable,
)
from agan.models import AttentiveDiscriminator, Generator


def test_attention_loss_hand_value():
    M = torch.zeros(1, 1, 2, 2)
    A = [torch.full((1, 1, 2, 2), 1.0), torch.full((1, 1, 2, 2), 0.5)]
    # theta^(N-t): t=1 -> 0.8 * 1.0, t=2 -> 1 * 0.25
    assert AttentionLoss(0.8)(A, M).item() == pytest.approx(0.8 * 1.0 + 0.25)
    A4 = [torch.ones(1, 1, 2, 2)] * 4
    assert AttentionLoss()(A4, M).item() == pytest.approx(0.8**3 + 0.8**2 + 0.8 + 1)
    assert AttentionLoss(0.6)(A4, M).item() == pytest.approx(0.6**3 + 0.6**2 + 0.6 + 1)


def test_multiscale_loss_hand_value():
    T = torch.zeros(1, 3, 4, 4)
    T[..., :2, :2] = 1.0  # one bright 2x2 block
    T[..., 2:, 2:] = 1.0
    S1 = torch.zeros(1, 3, 1, 1)  # T_1 = mean of T = 0.5      -> MSE 0.25
    S2 = torch.zeros(1, 3, 2, 2)  # T_2 = [[1,0],[0,1]]        -> MSE 0.5
    O = T.clone()  # exact                                       -> MSE 0
    assert MultiScaleLoss()((S1, S2, O), T).item() == pytest.approx(0.6 * 0.25 + 0.8 * 0.5)


def test_keep_loss_hand_value_counts_only_pixels_the_drops_left_alone():
    T = torch.zeros(1, 3, 2, 2)
    I = T.clone()
    I[..., 0, 0] = 0.5  # a drop on one pixel (of 4)
    O = torch.full((1, 3, 2, 2), 0.1)  # G changed every pixel by 0.1
    # the drop pixel is not counted: 3 pixels x 3 colours of |0.1| over 12 values
    assert KeepLoss()(O, I, T).item() == pytest.approx(3 * 3 * 0.1 / 12)
    assert KeepLoss()(T, I, T).item() == 0.0  # O = T: nothing to keep
    I[..., 1, 1] = T[..., 1, 1] + 0.5 / 255  # below 1/255 in every colour: still counted as drop-free
    assert KeepLoss()(O, I, T).item() == pytest.approx(3 * 3 * 0.1 / 12)


def test_keep_loss_is_logged_only_when_weighted():
    from agan.config import Config
    from agan.train.recipes import AganRecipe

    kw = dict(width=0.125, arn_width=0.125, steps=2, disc_width=0.125, disc_pool=2, crop_size=16,
              perceptual_weight=0.0)
    off = AganRecipe(Config.preset("paper", **kw), torch.device("cpu"), log=lambda *a: None)  # paper: none
    on = AganRecipe(Config.preset("paper", **kw, keep_weight=2.0), torch.device("cpu"), log=lambda *a: None)
    assert "L_keep" not in off.loss_names and "L_keep" in on.loss_names
    G, D = on.build()
    clean = torch.rand(2, 3, 16, 16)
    batch = {"rain": clean.clone(), "clean": clean, "mask": torch.zeros(2, 1, 16, 16)}  # no drop at all
    out = on.generate(G, batch)
    L_on, terms = on.g_loss(D, batch, out, adversarial=True)
    L_off, _ = off.g_loss(D, batch, out, adversarial=True)
    assert terms["L_keep"].item() == pytest.approx(2.0 * (out.O - clean).abs().mean().item(), rel=1e-5)
    assert L_on.item() == pytest.approx(L_off.item() + terms["L_keep"].item(), rel=1e-5)


class _Twice(torch.nn.Module):
    indices = [0, 1]

    def forward(self, x):
        return [x, 2 * x]


def test_perceptual_loss_hand_value():
    loss = PerceptualLoss(features=_Twice(), layer_weights=(1.0, 0.5))
    O, T = torch.ones(1, 3, 2, 2), torch.zeros(1, 3, 2, 2)
    assert loss(O, T).item() == pytest.approx(1.0 + 0.5 * 4.0)


def test_vgg_features_layers_and_random_weights_are_explicit():
    vgg = VGGFeatures(weights="random")
    feats = vgg(torch.rand(1, 3, 16, 16))
    assert [tuple(f.shape[1:]) for f in feats] == [(64, 16, 16), (64, 16, 16), (128, 8, 8), (128, 8, 8)]
    assert all((f >= 0).all() for f in feats)  # ReLU outputs
    assert not any(p.requires_grad for p in vgg.parameters())
    assert vgg.weights_source == "random"


def test_vgg_imagenet_offline_refuses_with_options(monkeypatch):
    import torchvision.models as tvm

    def offline(*a, **k):
        raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(tvm, "vgg16", offline)
    with pytest.raises(VGGWeightsUnavailable, match="--vgg-weights.*random"):
        VGGFeatures(weights="imagenet")
    with pytest.raises(VGGWeightsUnavailable, match="not found"):
        VGGFeatures(weights="/nonexistent/vgg16.pth")


def test_vgg_weights_from_local_file(tmp_path):
    import torchvision

    sd = torchvision.models.vgg16(weights=None).state_dict()
    torch.save(sd, tmp_path / "vgg16.pth")
    vgg = VGGFeatures(weights=str(tmp_path / "vgg16.pth"))
    torch.testing.assert_close(vgg.body[0].weight, sd["features.0.weight"])


def test_generator_adversarial_term_hand_value():
    z = torch.zeros(2, 1)  # D(O) = 0.5
    assert GeneratorAdversarialLoss()(z).item() == pytest.approx(0.01 * math.log(0.5))
    assert GeneratorAdversarialLoss(non_saturating=True)(z).item() == pytest.approx(-0.01 * math.log(0.5))
    z = torch.tensor([[2.0]])
    assert GeneratorAdversarialLoss()(z).item() == pytest.approx(0.01 * math.log(1 - 1 / (1 + math.exp(-2))))


def test_discriminator_loss_hand_value():
    zr, zf = torch.tensor([[1.0]]), torch.tensor([[-0.5]])
    map_fake, map_real = torch.ones(1, 1, 2, 2), torch.full((1, 1, 2, 2), 0.5)
    A_N = torch.zeros(1, 1, 2, 2)
    L_D, L_map = DiscriminatorLoss(gamma=0.05)(zr, zf, map_real, map_fake, A_N)
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    adv = -math.log(sig(1.0)) - math.log(1 - sig(-0.5))
    assert L_map.item() == pytest.approx(1.0 + 0.25)
    assert L_D.item() == pytest.approx(adv + 0.05 * 1.25)
    L_D_plain, L_map_plain = DiscriminatorLoss()(zr, zf)
    assert L_D_plain.item() == pytest.approx(adv) and L_map_plain.item() == 0


def _grads(module):
    return [p.grad for p in module.parameters() if p.grad is not None and p.grad.abs().sum() > 0]


def test_discriminator_loss_does_not_update_generator():
    G, D = Generator(width=0.125, steps=2), AttentiveDiscriminator(width=0.25, pool=2)
    x, clean = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    out = G(x)
    fake, real = D(out.O.detach()), D(clean)
    # A_N is passed un-detached: the loss itself must stop gradients into G
    L_D, _ = DiscriminatorLoss()(real.logit, fake.logit, real.map, fake.map, out.attention[-1])
    L_D.backward()
    assert _grads(D) and not _grads(G)


def test_generator_losses_reach_generator_only():
    G, D = Generator(width=0.125, steps=2), AttentiveDiscriminator(width=0.25, pool=2)
    vgg = VGGFeatures(weights="random")
    x, clean = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    M = (x - clean).abs().amax(1, keepdim=True).gt(0.5).float()
    out = G(x)
    for p in D.parameters():
        p.requires_grad_(False)
    L_G = (GeneratorAdversarialLoss()(D(out.O).logit) + AttentionLoss()(out.attention, M)
           + MultiScaleLoss()((out.S1, out.S2, out.O), clean) + PerceptualLoss(vgg)(out.O, clean))
    L_G.backward()
    assert _grads(G) and not _grads(D) and not _grads(vgg)
    # the attention loss alone reaches the attentive-recurrent network
    G.zero_grad()
    AttentionLoss()(G(x).attention, M).backward()
    assert _grads(G.arn) and not _grads(G.autoencoder)
