"""How ``derain()`` applies G to a photo: the kit's inference settings, saved with the weights.

The paper runs G on the whole image and takes its output O (Sec. 4). The kit's models were trained on drops
drawn in a frame of a few hundred pixels, so by default they run at that scale and only G's change is put back
(docs/real_photos.md):

    I_s = down(I, size)            D = G(I_s) - I_s        D <- blur_smooth(D)
    D <- clip(A_N, 0, 1) * D       (blend "attention")     O = I + up(D)

``DerainSettings()`` (size 0, smooth 0, blend "none") is the paper's protocol: O = G(I).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["PAPER", "Blend", "DerainSettings"]

Blend = Literal["none", "attention"]


@dataclass(frozen=True)
class DerainSettings:
    """``size``: the longer side (px) G runs at, 0 = full resolution; ``smooth``: Gaussian sigma (px at G's
    scale) of the change D, 0 = none; ``blend``: "attention" weights D by A_N, "none" keeps it whole."""

    size: int = 0
    smooth: float = 0.0
    blend: Blend = "none"

    def __post_init__(self):
        if self.size < 0 or self.smooth < 0 or self.blend not in ("none", "attention"):
            raise ValueError(f"size must be >= 0 (0 = full resolution), smooth >= 0 and blend 'none' or "
                             f"'attention'; got size={self.size}, smooth={self.smooth}, blend={self.blend!r}")

    @classmethod
    def of(cls, cfg) -> DerainSettings:
        """The settings a training config saves with its weights (``Config.derain_size`` / ``_smooth`` /
        ``_blend``)."""
        return cls(int(cfg.derain_size), float(cfg.derain_smooth), cfg.derain_blend)

    def but(self, size: int | None = None, smooth: float | None = None,
            blend: Blend | None = None) -> DerainSettings:
        """These settings with the given fields replaced (None keeps a field)."""
        return DerainSettings(self.size if size is None else int(size),
                              self.smooth if smooth is None else float(smooth),
                              self.blend if blend is None else blend)

    def run_hw(self, H: int, W: int) -> tuple[int, int]:
        """(h, w) G runs at for an H x W image: reduced to ``size`` on the longer side when larger."""
        if 0 < self.size < max(H, W):
            s = self.size / max(H, W)
            return max(4, round(H * s)), max(4, round(W * s))
        return H, W


PAPER = DerainSettings()
