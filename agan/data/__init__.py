"""Training and validation pairs: the Raindrop folder layout and synthetic drops rendered on the fly."""

from agan.data.datasets import RaindropPairs, SyntheticRaindrops, build_dataset

__all__ = ["RaindropPairs", "SyntheticRaindrops", "build_dataset"]
