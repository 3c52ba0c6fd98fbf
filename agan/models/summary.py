"""Parameter counts and FLOPs (torch's flop counter) of the kit's models."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["count_flops", "model_summary", "parse_size"]


def parse_size(text: str, min_side: int = 1) -> tuple[int, int]:
    """"480x720" -> (480, 720) (height x width); "224" -> (224, 224); sides must be >= ``min_side``."""
    try:
        parts = [int(v) for v in text.lower().replace("×", "x").split("x")]
    except ValueError:
        raise ValueError(f"size {text!r} is not HxW (e.g. 480x720)") from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) < min_side:
        raise ValueError(f"size {text!r} is not HxW (e.g. 480x720) with sides >= {min_side}")
    return parts[0], parts[1]


def count_flops(model: nn.Module, x: torch.Tensor) -> int:
    """FLOPs of one forward pass (a multiply-add counts 2), by torch.utils.flop_counter."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return counter.get_total_flops()


def model_summary(cfg, sizes: list[tuple[int, int]]) -> dict:
    from agan.models import build_discriminator, build_generator, count_parameters

    G = build_generator(cfg).eval()
    params = {"generator": count_parameters(G)}
    baseline = getattr(cfg, "model", "agan") != "agan"  # eigen13 | pix2pix: no sub-networks
    if not baseline and G.arn is not None:
        params["  attentive-recurrent network"] = count_parameters(G.arn)
    if not baseline:
        params["  contextual autoencoder"] = count_parameters(G.autoencoder)
    D = build_discriminator(cfg)
    if D is not None:
        params[f"discriminator ({'PatchGAN' if baseline else cfg.discriminator})"] = count_parameters(D)
    gflops = {}
    for h, w in sizes:
        h4, w4 = h - h % 4, w - w % 4
        with torch.device("meta"):
            Gm = build_generator(cfg)
        gflops[f"{h4}x{w4}"] = count_flops(Gm, torch.empty(1, 3, h4, w4, device="meta")) / 1e9
    return {"preset": cfg.name, "model": getattr(cfg, "model", "agan"), "variant": cfg.variant,
            "parameters": params, "gflops": gflops}
