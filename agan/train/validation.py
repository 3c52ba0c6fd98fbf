"""What a run measures at its validation points: the held-out split, real pairs, and the sample grid.

    val = Validation(gan, val_set, real_pairs, cfg)
    val.score()                       # {"psnr", "ssim", "psnr_input", "ssim_input"} on the held-out split
    val.score_real(folder)            # the same on one set of real rainy / clean pairs, derained as
                                      # ``agan derain`` does
    val.samples(path)                 # input, A_1..A_N, O, clean of the first 4 held-out pairs, one PNG

Scores are the authors' protocol (PSNR / SSIM on Y, ``agan.evaluation``); the input's own score is computed
once and reported beside the model's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from agan.config import Config
from agan.train.step import GanStep

__all__ = ["Validation", "sample_grid"]


def sample_grid(columns: list[Tensor], pad: int = 2) -> Tensor:
    """Columns of (B, C, H, W) images in [0, 1] -> one (3, rows*H', cols*W') grid, row i = image i."""
    from torchvision.utils import make_grid

    b = columns[0].shape[0]
    cols = [c.detach().float().cpu().clamp(0, 1) for c in columns]
    cols = [c.expand(-1, 3, -1, -1) if c.shape[1] == 1 else c for c in cols]
    tiles = torch.stack(cols, dim=1).reshape(b * len(cols), 3, *cols[0].shape[-2:])  # row-major
    return make_grid(tiles, nrow=len(cols), padding=pad, pad_value=1.0)


def _mean_scores(scores: list[tuple[float, ...]], n: int) -> list[float]:
    return [sum(s[j] for s in scores) / max(1, len(scores)) for j in range(n)]


class Validation:
    """Scores a GanStep's generator (its moving average when cfg.ema > 0) on held-out and real pairs."""

    def __init__(self, gan: GanStep, val_set: Dataset | None,
                 real_sets: dict[str, list[tuple[np.ndarray, np.ndarray]]], cfg: Config):
        """``real_sets``: folder -> its (rain, clean) uint8 pairs (``agan.data.read_pairs``), scored one by
        one."""
        self.gan, self.val_set, self.real_sets, self.cfg = gan, val_set, real_sets, cfg
        self._identity: dict[str, float] | None = None  # the input's own scores, computed once
        self._real_identity: dict[str, dict[str, float]] = {}  # per folder

    def _item(self, i: int) -> dict[str, Tensor]:
        from agan.images import crop_to_multiple

        item = self.val_set[i]
        return {k: crop_to_multiple(item[k]) for k in ("rain", "clean", "mask")}

    @torch.no_grad()
    def generate(self, batch: dict, G: torch.nn.Module | None = None):
        """(batch on the device, what the recipe's G returns) with G in eval mode, under the step's
        autocast."""
        G = self.gan.G_eval if G is None else G
        G.eval()
        try:
            with self.gan.autocast():
                batch = {k: v.to(self.gan.device) for k, v in batch.items()}
                return batch, self.gan.recipe.generate(G, batch)
        finally:
            G.train()

    def score(self, G: torch.nn.Module | None = None) -> dict[str, float]:
        """Mean PSNR / SSIM of ``G`` (default the step's G_eval) on the validation split, and of the input."""
        from agan.evaluation.protocol import score_pair
        from agan.images import to_uint8

        first = self._identity is None
        scores = []
        for i in range(len(self.val_set)):
            item = self._item(i)
            _, out = self.generate({k: v[None] for k, v in item.items()}, G)
            O = self.gan.recipe.output(out)[0].float().permute(1, 2, 0).cpu().numpy()  # (H, W, 3) float
            gt = to_uint8(item["clean"])
            ident = score_pair(item["rain"].permute(1, 2, 0).numpy(), gt) if first else (0.0, 0.0)
            scores.append((*score_pair(O, gt), *ident))
        psnr, ssim, psnr_in, ssim_in = _mean_scores(scores, 4)
        if first:
            self._identity = {"psnr_input": psnr_in, "ssim_input": ssim_in}
        return {"psnr": psnr, "ssim": ssim, **self._identity}

    def score_real(self, folder: str, G: torch.nn.Module | None = None) -> dict[str, float]:
        """Mean PSNR / SSIM (Y, authors' protocol) of ``G`` on the real pairs of ``folder`` (one of
        ``cfg.real_val``), each derained whole, as ``agan derain`` does (``agan.infer.pipeline.derain_tensor``
        with ``cfg.derain_size`` / ``derain_smooth`` / ``derain_blend``), and of the input."""
        from agan.evaluation.protocol import score_pair
        from agan.infer.pipeline import derain_tensor
        from agan.infer.settings import DerainSettings

        G = self.gan.G_eval if G is None else G
        cfg = self.cfg
        G.eval()
        scores = []
        try:
            for rain, clean in self.real_sets[folder]:
                x = torch.from_numpy(rain).permute(2, 0, 1)[None].float() / 255.0  # (1, 3, H, W)
                O, _ = derain_tensor(G, x, precision="auto", device=self.gan.device,
                                     settings=DerainSettings.of(cfg))
                scores.append(score_pair(O[0].permute(1, 2, 0).numpy(), clean))
        finally:
            G.train()
        if folder not in self._real_identity:
            psnr_in, ssim_in = _mean_scores([score_pair(r, c) for r, c in self.real_sets[folder]], 2)
            self._real_identity[folder] = {"psnr_input": psnr_in, "ssim_input": ssim_in}
        psnr, ssim = _mean_scores(scores, 2)
        return {"psnr": psnr, "ssim": ssim, **self._real_identity[folder]}

    def samples(self, path: Path) -> Path:
        """The sample grid of the first (up to) 4 held-out pairs, written to ``path``."""
        from agan.images import write_image

        k = min(4, len(self.val_set))
        items = [self._item(i) for i in range(k)]
        h = min(it["rain"].shape[-2] for it in items)
        w = min(it["rain"].shape[-1] for it in items)
        batch = {key: torch.stack([it[key][..., :h, :w] for it in items])
                 for key in ("rain", "clean", "mask")}
        batch, out = self.generate(batch)
        write_image(path, sample_grid([p.float() for p in self.gan.recipe.panels(batch, out)]))
        return path
