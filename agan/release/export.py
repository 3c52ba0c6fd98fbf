"""Export a run's generator as a release: fp16 safetensors + a JSON sidecar (the format ``agan.infer.shipped``
reads and checks).

    from agan.release import export_release
    path = export_release("runs/x/checkpoints/generator.pt", "agan/weights", {"seed": 0})
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from agan.checkpoint import KIT_FORMATS, CheckpointError, atomic_write_text, safe_load
from agan.infer.shipped import DEFAULT_NAME, RELEASE_FORMAT, RELEASE_VERSION, sha256_file
from agan.models import generator_from_saved

__all__ = ["MAX_BYTES", "export_release"]

MAX_BYTES = 15 * 1024 * 1024  # what the repository accepts for the shipped weights file
_RESERVED = ("format", "version", "weights", "sha256", "bytes", "parameters", "dtype", "config")


def _checkpoint_parts(path: Path) -> tuple[dict, dict, dict]:
    """A kit checkpoint -> (config dict, generator state dict, the checkpoint itself)."""
    ckpt = safe_load(path, map_location="cpu")
    fmt = ckpt.get("format") if isinstance(ckpt, dict) else None
    if fmt not in KIT_FORMATS:
        raise CheckpointError(f"{path}: not a kit checkpoint (format {fmt!r}; expected one of "
                              f"{KIT_FORMATS}); export_release takes a run's checkpoints/generator.pt")
    if "G" not in ckpt or "config" not in ckpt:
        raise CheckpointError(f"{path}: {fmt} checkpoint without 'G' weights or 'config'")
    return ckpt["config"], ckpt["G"], ckpt


def _fp16_tensors(model: torch.nn.Module, path: Path) -> dict[str, torch.Tensor]:
    """The model's tensors, floats as float16 (ValueError for one that does not fit), contiguous copies."""
    tensors = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu()
        if v.is_floating_point():
            v = v.to(torch.float16)
            if not torch.isfinite(v).all():
                raise ValueError(f"{path}: {k} does not fit in float16 (|value| > 65504 or not finite)")
        tensors[k] = v.contiguous().clone()  # safetensors refuses shared or strided storage
    return tensors


def export_release(checkpoint_path: str | os.PathLike, out_dir: str | os.PathLike,
                   card_fields: dict | None = None, name: str = DEFAULT_NAME,
                   overwrite: bool = False) -> Path:
    """Write ``out_dir/<name>.safetensors`` (the generator of a kit checkpoint, float tensors as fp16) and
    ``out_dir/<name>.json`` (config, sha256, size, parameter count + ``card_fields``) -> the .safetensors
    path.

    ``checkpoint_path``: a run's ``checkpoints/generator.pt`` (format agan-generator: the G validation
    scored, its moving average when ema > 0) or ``last.pt`` (agan-checkpoint: its "G", as ``load_generator``
    reads it). Existing files are never replaced unless ``overwrite=True``.
    """
    from safetensors.torch import save

    from agan.atomic import atomic_path

    checkpoint_path, out_dir = Path(checkpoint_path), Path(out_dir)
    card_fields = dict(card_fields or {})
    clash = sorted(set(card_fields) & set(_RESERVED))
    if clash:
        raise ValueError(f"card_fields may not set {clash}: export_release writes them")
    weights, sidecar = out_dir / f"{name}.safetensors", out_dir / f"{name}.json"
    for p in (weights, sidecar):
        if p.exists() and not overwrite:
            raise FileExistsError(f"{p}: exists (pass overwrite=True / --overwrite to replace it)")
    cfg_dict, sd, ckpt = _checkpoint_parts(checkpoint_path)
    cfg, model = generator_from_saved(cfg_dict, sd, checkpoint_path)  # the weights must fit their config
    tensors = _fp16_tensors(model, checkpoint_path)
    config_json = json.dumps(cfg.to_dict(), sort_keys=True)
    blob = save(tensors, metadata={"format": RELEASE_FORMAT, "version": str(RELEASE_VERSION),
                                   "config": config_json})
    with atomic_path(weights) as tmp:
        tmp.write_bytes(blob)
    info = {"format": RELEASE_FORMAT, "version": RELEASE_VERSION, "weights": weights.name,
            "sha256": sha256_file(weights), "bytes": weights.stat().st_size,
            "parameters": sum(p.numel() for p in model.parameters()), "dtype": "float16",
            "config": cfg.to_dict()}
    if "step" in ckpt and "step" not in card_fields:
        card_fields["step"] = ckpt["step"]
    info.update(card_fields)
    atomic_write_text(sidecar, json.dumps(info, indent=2, sort_keys=False, default=str) + "\n")
    return weights
