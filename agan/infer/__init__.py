"""Inference: load any weights (``load``), derain images of any size (``pipeline``) or many files
(``batch``); the fast fp32/bf16 generator (``fast``, ``malloc``), the int8 CPU path (``int8``), and the kit's
shipped model (``release``, ``model_card``)."""

from agan.infer.load import load_generator
from agan.infer.pipeline import derain, derain_tensor

__all__ = ["derain", "derain_tensor", "load_generator"]
