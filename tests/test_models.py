import pytest
import torch

from agan.config import Config
from agan.models import (
    AttentiveDiscriminator,
    ConvLSTMCell,
    Generator,
    PlainDiscriminator,
    build_discriminator,
    build_generator,
    count_parameters,
)
from agan.models.discriminator import MIN_CHANNELS


def test_generator_parameter_count_is_the_authors():
    assert count_parameters(Generator()) == 6_244_362


def test_generator_outputs_shapes():
    G = Generator(width=0.25, steps=3)
    out = G(torch.rand(2, 3, 32, 44))
    assert len(out.attention) == 3
    assert all(a.shape == (2, 1, 32, 44) for a in out.attention)
    assert out.S1.shape == (2, 3, 8, 11)
    assert out.S2.shape == (2, 3, 16, 22)
    assert out.O.shape == (2, 3, 32, 44)
    assert (out.S1 >= 0).all() and (out.S2 >= 0).all()  # ReLU heads


@pytest.mark.parametrize("shape", [(1, 3, 30, 32), (1, 3, 32, 33), (1, 4, 32, 32), (3, 32, 32)])
def test_generator_rejects_bad_sizes(shape):
    with pytest.raises(ValueError, match="divisible by 4|expected an image batch"):
        Generator(width=0.25)(torch.rand(*shape))


def test_autoencoder_only_variant():
    G = build_generator(Config.preset("cpu", variant="A"))
    assert G.arn is None and G.autoencoder.conv1.in_channels == 3
    out = G(torch.rand(1, 3, 16, 16))
    assert out.attention == [] and out.O.shape == (1, 3, 16, 16)


def test_width_keeps_topology():
    small, full = Generator(width=0.5), Generator()
    assert [n for n, _ in small.named_parameters()] == [n for n, _ in full.named_parameters()]


def test_arn_width_narrows_only_the_attentive_recurrent_network():
    G = build_generator(Config.preset("cpu", width=0.5, arn_width=0.25))
    assert G.arn.channels == 8 and G.arn.lstm.gates.out_channels == 32  # round(32 * 0.25), 4 gates
    assert G.autoencoder.conv1.out_channels == 32  # round(64 * 0.5)
    same = Generator(width=0.5, arn_width=0.5)
    assert count_parameters(same) == count_parameters(Generator(width=0.5))
    assert [n for n, _ in G.named_parameters()] == [n for n, _ in Generator().named_parameters()]
    out = G(torch.rand(1, 3, 16, 16))
    assert len(out.attention) == 4 and out.O.shape == (1, 3, 16, 16)
    with pytest.raises(ValueError, match="arn_width"):
        Config.preset("cpu", arn_width=0)


def test_convlstm_matches_unfused_equations():
    cell = ConvLSTMCell(5, 4)
    x, h, c = torch.randn(1, 5, 6, 6), torch.randn(1, 4, 6, 6), torch.randn(1, 4, 6, 6)
    z = torch.nn.functional.conv2d(torch.cat([x, h], 1), cell.gates.weight, cell.gates.bias, padding=1)
    i, f = torch.sigmoid(z[:, :4]), torch.sigmoid(z[:, 4:8])
    g, o = torch.tanh(z[:, 8:12]), torch.sigmoid(z[:, 12:])
    h2, c2 = cell(x, (h, c))
    torch.testing.assert_close(c2, f * c + i * g)
    torch.testing.assert_close(h2, o * torch.tanh(f * c + i * g))


def test_initial_attention_is_half():
    G = Generator(width=0.25, steps=1)
    seen = {}

    def hook(module, inputs, output):
        seen.setdefault("x", inputs[0])

    G.arn.head_in.register_forward_hook(hook)
    G(torch.rand(1, 3, 8, 8))
    assert torch.all(seen["x"][:, 3] == 0.5)


def test_attentive_discriminator_layout_at_224():
    D = AttentiveDiscriminator()
    shapes = {n: tuple(p.shape) for n, p in D.named_parameters()}
    assert shapes["fc1.weight"] == (1024, 32 * 14 * 14)
    assert shapes["map_head.weight"] == (1, 128, 5, 5)
    assert [shapes[f"features.{i}.weight"][0] for i in range(6)] == [8, 16, 64, 128, 128, 128]
    out = D(torch.rand(2, 3, 224, 224))
    assert out.prob.shape == (2, 1) and out.map.shape == (2, 1, 224, 224)
    assert torch.allclose(out.prob, out.logit.sigmoid())


def test_narrow_discriminator_keeps_min_channels_and_gradients():
    # width 1/8 would round the first layers to 1 and 2 channels: such a D died in a cpu-preset run
    # (L_D stuck at 2 ln 2, |grad D| ~0.005); every layer keeps >= MIN_CHANNELS, wider layers scale.
    torch.manual_seed(0)
    D = AttentiveDiscriminator(width=0.125, pool=4)
    widths = [D.features[i].out_channels for i in range(6)] + [D.down1.out_channels, D.down2.out_channels]
    assert widths == [4, 4, 8, 16, 16, 16, 8, 4]
    assert min(widths) == MIN_CHANNELS
    D_half = AttentiveDiscriminator(width=0.5)
    assert [D_half.features[i].out_channels for i in range(6)] == [4, 8, 32, 64, 64, 64]
    D(torch.rand(2, 3, 64, 64)).logit.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in D.parameters())


@pytest.mark.parametrize("size", [(64, 64), (96, 128), (240, 320)])
def test_discriminators_work_for_other_crop_sizes(size):
    for D in (AttentiveDiscriminator(width=0.5), PlainDiscriminator(width=0.5)):
        out = D(torch.rand(1, 3, *size))
        assert out.prob.shape == (1, 1)
    assert PlainDiscriminator()(torch.rand(1, 3, 64, 64)).map is None


def test_build_discriminator_by_variant():
    assert build_discriminator(Config.preset("cpu", variant="A")) is None
    assert isinstance(build_discriminator(Config.preset("cpu", variant="A+D")), PlainDiscriminator)
    assert isinstance(build_discriminator(Config.preset("cpu", variant="A+AD")), AttentiveDiscriminator)
    assert isinstance(build_discriminator(Config.preset("cpu", variant="AA+AD")), AttentiveDiscriminator)
