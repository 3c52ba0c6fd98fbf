"""Which recipe trains which model kind: ``cfg.model`` -> a :class:`agan.train.recipes.Recipe` subclass.

    recipe = get_recipe(cfg, device)        # AganRecipe for "agan", Eigen13Recipe, Pix2PixRecipe
    RECIPES["mine"] = MyRecipe              # a model kind of your own (then Config(model="mine"))
"""

from __future__ import annotations

import torch

from agan.config import Config
from agan.train.baselines import Eigen13Recipe, Pix2PixRecipe
from agan.train.recipes import AganRecipe, Recipe

__all__ = ["RECIPES", "get_recipe"]

RECIPES: dict[str, type[Recipe]] = {"agan": AganRecipe, "eigen13": Eigen13Recipe, "pix2pix": Pix2PixRecipe}


def get_recipe(cfg: Config, device: torch.device, log=print) -> Recipe:
    if cfg.model not in RECIPES:
        raise ValueError(f"model {cfg.model!r} has no training recipe; known: {sorted(RECIPES)}")
    return RECIPES[cfg.model](cfg, device, log)
