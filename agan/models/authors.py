"""Import and export of the authors' generator checkpoint layout (``gen.pkl``, 70 keys).

The authors released generator weights (PyTorch 0.3.1, Python 2.7, legacy serialisation) but no
licence: the kit never bundles them. A user who has the file loads it with
``load_authors_generator(path)`` or ``agan derain --weights gen.pkl``.

Two differences between their layout and ours (docs/paper.md#checkpoint-layout):
1. Names: ``det_conv0`` ... ``output`` (see ``KEY_MAP``); their four LSTM gate convs
   ``conv_i/f/g/o`` are one fused conv ``arn.lstm.gates`` here (gate order i, f, g, o).
2. Colour order: their network works in **BGR** (images read with OpenCV), ours in RGB. On import
   the image input channels of the first conv of each sub-network (det_conv0, conv1) and the
   output channels of the three heads (outframe1, outframe2, output) are reversed; export
   reverses them back, so ``export(import(sd)) == sd`` exactly.
"""

from __future__ import annotations

import os

import torch
from torch import Tensor

from agan.checkpoint import CheckpointError, safe_load, strip_module_prefix
from agan.models.generator import Generator

__all__ = ["KEY_MAP", "AUTHORS_KEYS", "import_authors_state_dict", "export_authors_state_dict",
           "load_authors_generator", "is_authors_state_dict"]

_GATES = ("conv_i", "conv_f", "conv_g", "conv_o")

# authors' module prefix -> our module prefix (gates handled separately)
KEY_MAP: dict[str, str] = {
    "det_conv0.0": "arn.head_in",
    **{f"det_conv{k}.{j}": f"arn.res_blocks.{k - 1}.conv{1 if j == 0 else 2}"
       for k in range(1, 6) for j in (0, 2)},
    "det_conv_mask.0": "arn.attention_head",
    **{f"conv{k}.0": f"autoencoder.conv{k}" for k in range(1, 11)},
    **{f"diconv{k}.0": f"autoencoder.dilated.{k - 1}" for k in range(1, 5)},
    "deconv1.0": "autoencoder.up1.deconv",
    "deconv2.0": "autoencoder.up2.deconv",
    "outframe1.0": "autoencoder.head_S1",
    "outframe2.0": "autoencoder.head_S2",
    "output.0": "autoencoder.head_O",
}

# The 70 keys of gen.pkl in the order the authors' module defines them.
AUTHORS_KEYS: list[str] = [
    f"{m}.{p}"
    for m in (["det_conv0.0"] + [f"det_conv{k}.{j}" for k in range(1, 6) for j in (0, 2)]
              + [f"{g}.0" for g in _GATES] + ["det_conv_mask.0"]
              + [f"conv{k}.0" for k in range(1, 7)] + [f"diconv{k}.0" for k in range(1, 5)]
              + ["conv7.0", "conv8.0", "deconv1.0", "conv9.0", "deconv2.0", "conv10.0",
                 "outframe1.0", "outframe2.0", "output.0"])
    for p in ("weight", "bias")
]

_INPUT_CONVS = ("det_conv0.0", "conv1.0")  # image channels 0:3 are the BGR input
_HEADS = ("outframe1.0", "outframe2.0", "output.0")  # output channels are B, G, R


def _flip_colour(key: str, t: Tensor) -> Tensor:
    """Reverse the colour axis of a tensor where it touches the image (self-inverse)."""
    module = key.rsplit(".", 1)[0]
    if module in _INPUT_CONVS and key.endswith("weight"):
        t = t.clone()
        t[:, :3] = t[:, :3].flip(1)
    elif module in _HEADS:
        t = t.flip(0)
    return t


def is_authors_state_dict(sd: dict) -> bool:
    return isinstance(sd, dict) and "det_conv0.0.weight" in strip_module_prefix(dict(sd))


def import_authors_state_dict(sd: dict[str, Tensor]) -> dict[str, Tensor]:
    """Authors' BGR layout (70 keys) -> our RGB ``Generator`` state dict (58 keys)."""
    sd = strip_module_prefix(dict(sd))
    missing = [k for k in AUTHORS_KEYS if k not in sd]
    extra = [k for k in sd if k not in AUTHORS_KEYS]
    if missing or extra:
        raise KeyError(f"not the authors' generator layout: missing {missing[:5]}, unexpected {extra[:5]}")
    out: dict[str, Tensor] = {}
    for key in AUTHORS_KEYS:
        module, param = key.rsplit(".", 1)
        if module.split(".")[0] in _GATES:
            continue
        out[f"{KEY_MAP[module]}.{param}"] = _flip_colour(key, sd[key])
    for param in ("weight", "bias"):
        out[f"arn.lstm.gates.{param}"] = torch.cat([sd[f"{g}.0.{param}"] for g in _GATES], dim=0)
    return out


def export_authors_state_dict(model_or_sd: Generator | dict[str, Tensor]) -> dict[str, Tensor]:
    """Our RGB ``Generator`` (paper width, 4 steps) -> the authors' BGR layout, keys in their order."""
    sd = model_or_sd.state_dict() if isinstance(model_or_sd, torch.nn.Module) else model_or_sd
    inverse = {v: k for k, v in KEY_MAP.items()}
    out: dict[str, Tensor] = {}
    for param in ("weight", "bias"):
        for g, chunk in zip(_GATES, sd[f"arn.lstm.gates.{param}"].chunk(4, dim=0)):
            out[f"{g}.0.{param}"] = chunk.clone()
    for key, value in sd.items():
        module, param = key.rsplit(".", 1)
        if module == "arn.lstm.gates":
            continue
        theirs = f"{inverse[module]}.{param}"
        out[theirs] = _flip_colour(theirs, value.detach())
    return {k: out[k] for k in AUTHORS_KEYS}


def load_authors_generator(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Generator:
    """Build a paper-sized RGB ``Generator`` from the authors' ``gen.pkl`` (loaded with weights_only=True)."""
    sd = safe_load(path, map_location=map_location)
    if not is_authors_state_dict(sd):
        raise CheckpointError(f"{path}: not the authors' generator state dict (no 'det_conv0.0.weight' key)")
    model = Generator()
    try:
        model.load_state_dict(import_authors_state_dict(sd))
    except (KeyError, RuntimeError) as e:
        raise CheckpointError(f"{path}: {str(e).splitlines()[0]}") from None
    return model
