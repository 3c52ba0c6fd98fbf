"""Training and validation pairs: the Raindrop folder layout (``agan.data.layout``, shared with
``agan.evaluation``) and synthetic drops rendered on the fly (``agan.data.datasets``).

The datasets (torch, the renderer) load on first use, so that reading a folder of pairs stays light."""

from agan.data.layout import (
    PAIR_LAYOUTS,
    find_split,
    find_splits,
    image_id,
    index_images,
    pair_by_id,
    pair_dirs,
    read_pairs,
)

_DATASETS = ("RaindropPairs", "SyntheticRaindrops", "build_dataset")

__all__ = [*_DATASETS, "PAIR_LAYOUTS", "find_split", "find_splits", "image_id", "index_images", "pair_by_id",
           "pair_dirs", "read_pairs"]


def __getattr__(name: str):
    if name in _DATASETS:
        from agan.data import datasets

        return getattr(datasets, name)
    raise AttributeError(f"module 'agan.data' has no attribute {name!r}")
