"""Networks: the generator, the discriminators, the authors' checkpoint layout."""

from agan.checkpoint import CheckpointError, config_from_saved, strip_module_prefix
from agan.config import Config
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
           "build_discriminator", "build_generator", "count_parameters", "generator_from_saved"]


def build_generator(cfg, model: str | None = None) -> Generator:
    """The generator a config asks for: Attentive GAN's for ``cfg``'s widths, N and variant (AA variants:
    attentive; A variants: autoencoder only), or for cfg.model "eigen13" / "pix2pix" the baselines of
    ``agan.models.baselines``. ``model`` overrides cfg.model (a recipe's own kind)."""
    if (model or getattr(cfg, "model", "agan")) != "agan":
        from agan.models.baselines import build_baseline_generator

        return build_baseline_generator(cfg)
    return Generator(width=cfg.width, steps=cfg.steps, attentive=cfg.attentive_generator,
                     arn_width=cfg.arn_width)


def build_discriminator(cfg, model: str | None = None):
    """The discriminator a config asks for: Attentive GAN's for ``cfg``'s variant (attentive or plain) and
    widths, a baseline's (cfg.model "pix2pix"), or None (variant A, Eigen13). ``model`` overrides
    cfg.model."""
    if (model or getattr(cfg, "model", "agan")) != "agan":
        from agan.models.baselines import build_baseline_discriminator

        return build_baseline_discriminator(cfg)
    kind = cfg.discriminator
    if kind is None:
        return None
    cls = AttentiveDiscriminator if kind == "attentive" else PlainDiscriminator
    return cls(width=cfg.disc_width, pool=cfg.disc_pool)


def generator_from_saved(cfg_dict: dict, state_dict: dict, where) -> tuple[Config, Generator]:
    """A saved kit generator -> (its config, G built from it with ``state_dict`` loaded strictly); a one-line
    CheckpointError naming ``where`` when the config is invalid or the weights do not fit it."""
    try:
        cfg = config_from_saved(cfg_dict)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{where}: its config is invalid: {e}") from None
    model = build_generator(cfg)
    try:
        model.load_state_dict(strip_module_prefix(state_dict))
    except RuntimeError as e:
        raise CheckpointError(f"{where}: weights do not match the config's generator (width {cfg.width}, "
                              f"steps {cfg.steps}, variant {cfg.variant})") from e
    return cfg, model

