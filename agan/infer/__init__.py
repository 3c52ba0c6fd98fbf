"""Inference: derain images of any size (``pipeline``), the fast fp32/bf16 generator (``fast``) and the kit's
shipped model (``release``)."""

from agan.infer.load import load_generator
from agan.infer.pipeline import derain, derain_tensor

__all__ = ["derain", "derain_tensor", "load_generator"]
