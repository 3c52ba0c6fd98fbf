"""The authors' evaluation protocol (PSNR / SSIM on Y, docs/paper.md#evaluation-protocol) and folders of pairs."""

from agan.evaluation.protocol import psnr, score_pair, ssim

__all__ = ["psnr", "score_pair", "ssim"]
