"""Inference: derain images of any size (``pipeline``), the fast fp32/bf16 generator (``fast``) and the kit's
shipped model (``release``)."""

from agan.infer.pipeline import derain, derain_tensor, load_generator

__all__ = ["derain", "derain_tensor", "load_generator"]
