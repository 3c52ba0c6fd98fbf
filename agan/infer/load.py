"""Load a generator from any weights file the kit meets, safely (``weights_only=True``: nothing in a file
runs).

Accepted: a kit checkpoint (``checkpoints/last.pt``: format "agan-checkpoint"), a kit generator
(``generator.pt``: "agan-generator"), a released ``.safetensors`` (``agan.infer.shipped``), the authors'
``gen.pkl`` (its legacy PyTorch format and layout, imported by ``agan.models.authors``) or a plain state dict.
The generator's widths are read from the stored config, or inferred from the tensors' shapes.

    G, settings = load_generator("runs/cpu/checkpoints/generator.pt")   # on CUDA when present
    out, maps = derain(photo, model=G, settings=settings)                # settings: agan.infer.settings
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from agan import pick_device
from agan.checkpoint import KIT_FORMATS, CheckpointError, safe_load, strip_module_prefix
from agan.infer.settings import PAPER, DerainSettings
from agan.infer.shipped import Loaded, load_release
from agan.models import generator_from_saved
from agan.models.authors import import_authors_state_dict, is_authors_state_dict
from agan.models.generator import Generator

__all__ = ["Loaded", "load_generator"]


def _generator_from_state_dict(sd: dict, path) -> Generator:
    """A bare state dict of our Generator: widths read from the tensor shapes, N = 4 (paper) steps."""
    attentive = "arn.head_in.weight" in sd
    c1 = sd["autoencoder.conv1.weight"].shape[0]  # round(64 * width) channels
    width = c1 / 64
    arn_width = sd["arn.head_in.weight"].shape[0] / 32 if attentive else None  # round(32 * arn_width)
    model = Generator(width=width, steps=4, attentive=attentive, arn_width=arn_width)
    try:
        model.load_state_dict(sd)
    except RuntimeError as e:
        raise CheckpointError(
            f"{path}: state dict does not fit a Generator of width {width:g}: "
            f"{str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else e}") from None
    return model


def load_generator(path: str | os.PathLike, device: str | torch.device = "auto") -> Loaded:
    """Build the generator stored in ``path`` (loaded safely, weights only), in eval mode on ``device``, and
    read the derain settings saved with it (``DerainSettings.of(config)``; the paper's ``PAPER`` for weights
    without a kit config).

    Accepts (a) kit checkpoints: ``{"format": "agan-checkpoint" | "agan-generator", "config": {...},
    "G": state_dict, ...}``; (b) the authors' ``gen.pkl`` (BGR layout, converted by
    ``agan.models.authors``); (c) a bare state dict of ``agan.models.Generator`` (N = 4 steps assumed);
    (d) a kit release ``*.safetensors`` (+ its ``.json``; ``agan.infer.shipped.load_release``: sha256
    checked).
    """
    path = Path(path)
    device = pick_device(device) if isinstance(device, str) else device
    settings = PAPER
    if path.suffix.lower() == ".safetensors":  # a release (agan.infer.shipped: fp16 weights + JSON sidecar)
        return load_release(path, device=device)
    ckpt = safe_load(path, map_location="cpu")
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: not a generator checkpoint (holds a {type(ckpt).__name__}, "
                              "expected a dict)")
    fmt = ckpt.get("format")
    if fmt is not None and fmt not in KIT_FORMATS:
        raise CheckpointError(f"{path}: unknown checkpoint format {fmt!r} (expected one of {KIT_FORMATS})")
    if fmt in KIT_FORMATS:
        if "G" not in ckpt or "config" not in ckpt:
            raise CheckpointError(f"{path}: {fmt} checkpoint without 'G' weights or 'config'")
        cfg, model = generator_from_saved(ckpt["config"], ckpt["G"], path)
        settings = DerainSettings.of(cfg)
    elif is_authors_state_dict(ckpt):
        model = Generator()
        try:
            model.load_state_dict(import_authors_state_dict(ckpt))
        except (KeyError, RuntimeError) as e:
            raise CheckpointError(f"{path}: the authors' layout does not fit: "
                                  f"{str(e).splitlines()[0]}") from None
    elif "autoencoder.conv1.weight" in strip_module_prefix(ckpt):
        model = _generator_from_state_dict(strip_module_prefix(ckpt), path)
    else:
        keys = ", ".join(map(str, list(ckpt)[:5]))
        raise CheckpointError(f"{path}: not a generator checkpoint (expected a kit checkpoint, the authors' "
                              f"gen.pkl or a Generator state dict; found keys {keys})")
    return Loaded(model.to(device).eval(), settings)
