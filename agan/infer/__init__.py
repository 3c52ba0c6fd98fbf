"""Inference, the plain path: load any weights (``load``; the kit's shipped model: ``shipped``), derain
images of any size (``pipeline``) with the settings saved beside the weights (``settings``), or many files
(``batch``). G runs by its own ``forward``; faster forwards live in ``agan.accel``, which nothing here
imports."""

from agan.infer.load import Loaded, load_generator
from agan.infer.pipeline import derain, derain_tensor, plain_forward
from agan.infer.settings import PAPER, DerainSettings

__all__ = ["PAPER", "DerainSettings", "Loaded", "derain", "derain_tensor", "load_generator", "plain_forward"]
