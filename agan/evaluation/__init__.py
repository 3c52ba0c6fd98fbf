"""The authors' evaluation protocol (PSNR / SSIM on Y, docs/paper.md#evaluation-protocol): the metrics
(``protocol``), evaluating folders and models (``evaluate``) and their scores (``results``). Folders of
pairs are read by ``agan.data.layout``."""

from agan.evaluation.evaluate import evaluate_folders, evaluate_model
from agan.evaluation.protocol import CASTS, COLORS, psnr, rgb_to_y, score_pair, ssim, to_uint8_output
from agan.evaluation.results import EvalResult, refuse_existing_outputs

__all__ = [
    "CASTS",
    "COLORS",
    "EvalResult",
    "evaluate_folders",
    "evaluate_model",
    "psnr",
    "refuse_existing_outputs",
    "rgb_to_y",
    "score_pair",
    "ssim",
    "to_uint8_output",
]
