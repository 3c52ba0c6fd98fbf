"""Networks: the generator, the discriminators, the authors' checkpoint layout."""

from agan.models.discriminator import AttentiveDiscriminator, DiscriminatorOutput, PlainDiscriminator
from agan.models.generator import (
    AttentiveRecurrentNetwork,
    ContextualAutoencoder,
    ConvLSTMCell,
    Generator,
    GeneratorOutput,
    ResidualBlock,
    count_parameters,
)

__all__ = ["AttentiveDiscriminator", "AttentiveRecurrentNetwork", "ContextualAutoencoder", "ConvLSTMCell",
           "DiscriminatorOutput", "Generator", "GeneratorOutput", "PlainDiscriminator", "ResidualBlock",
           "agan_discriminator", "agan_generator", "build_discriminator", "build_generator",
           "count_parameters"]


def build_generator(cfg) -> Generator:
    """The generator a config asks for (AA variants: attentive; A variants: autoencoder only;
    cfg.model "eigen13" / "pix2pix": the baselines of ``agan.models.baselines``)."""
    if getattr(cfg, "model", "agan") != "agan":
        from agan.models.baselines import build_baseline_generator

        return build_baseline_generator(cfg)
    return agan_generator(cfg)


def agan_generator(cfg) -> Generator:
    """Attentive GAN's generator for ``cfg``'s widths, N and variant (also used by
    ``agan.train.recipes``)."""
    return Generator(width=cfg.width, steps=cfg.steps, attentive=cfg.attentive_generator,
                     arn_width=cfg.arn_width)


def build_discriminator(cfg):
    """The discriminator a config asks for, or None (variant A, Eigen13)."""
    if getattr(cfg, "model", "agan") != "agan":
        from agan.models.baselines import build_baseline_discriminator

        return build_baseline_discriminator(cfg)
    return agan_discriminator(cfg)


def agan_discriminator(cfg):
    """Attentive GAN's discriminator for ``cfg``'s variant (attentive, plain or None) and widths."""
    kind = cfg.discriminator
    if kind is None:
        return None
    cls = AttentiveDiscriminator if kind == "attentive" else PlainDiscriminator
    return cls(width=cfg.disc_width, pool=cfg.disc_pool)
