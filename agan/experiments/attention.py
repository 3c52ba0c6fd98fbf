"""Fig. 3's scores: the attention maps A_1..A_N of the recurrent steps against the drop mask M.

Reference: Qian et al., CVPR 2018, Sec. 4.1 (the attentive-recurrent network, Eq. 4: L_ATT pulls each
A_t toward M) and Fig. 3 (A_t sharpening on the drops as t grows). The kit scores each step by the IoU of
``A_t >= threshold`` with M and by the MSE of A_t against M, where M is the drawn drop layer of a synthetic
frame (``SynthResult.alpha >= agan.data.datasets.DROP_MASK_ALPHA``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["ATTENTION_THRESHOLD", "attention_meta", "attention_scores"]

ATTENTION_THRESHOLD = 0.5  # Fig. 3's IoU: A_t >= this against the drop mask


def attention_scores(A: Any, mask: Any, threshold: float = ATTENTION_THRESHOLD
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Per step t: (IoU of ``A_t >= threshold`` with ``mask``, MSE of A_t against ``mask`` as 0/1).

    ``A``: one map (H, W) or the N steps (N, H, W), raw (the network does not squash them: values above 1
    count in the MSE); ``mask``: (H, W), bool or 0/1. Returns two float arrays of shape (N,) ((1,) for one
    map). IoU = |A_t >= threshold AND M| / |A_t >= threshold OR M|, 1 when both are empty."""
    a = np.asarray(A, dtype=np.float64)
    if a.ndim == 2:
        a = a[None]
    m = np.asarray(mask)
    if a.ndim != 3 or m.shape != a.shape[1:]:
        raise ValueError(f"expected maps (N, H, W) and a mask (H, W) of the same size, got {np.shape(A)} "
                         f"and {m.shape}")
    m = m.astype(bool)
    hard = a >= threshold  # (N, H, W)
    inter = (hard & m).sum(axis=(1, 2))
    union = (hard | m).sum(axis=(1, 2))
    iou = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    mse = ((a - m) ** 2).mean(axis=(1, 2))
    return iou, mse


def attention_meta(maps: list, drop_masks: list, n_images: int, threshold: float) -> dict[str, Any]:
    """The attention record of results.json: per step, the mean IoU / MSE over the first ``n_images``
    frames (the ones shown) and over all of them (held out), and every frame's scores.

    ``maps``: per frame, the N maps A_1..A_N (H, W); ``drop_masks``: per frame, M (H, W) bool."""
    from agan.data.datasets import DROP_MASK_ALPHA

    per = [attention_scores(np.stack(a), m, threshold) for a, m in zip(maps, drop_masks)]
    iou, mse = np.array([i for i, _ in per]), np.array([e for _, e in per])  # (n_score, N)
    return {
        "threshold": threshold, "steps": len(maps[0]),
        "mask": f"SynthResult.alpha >= {DROP_MASK_ALPHA} (agan.data.datasets.DROP_MASK_ALPHA, "
                "mask_source='drops')",
        "iou": iou[:n_images].mean(0).round(4).tolist(), "mse": mse[:n_images].mean(0).round(5).tolist(),
        "iou_held_out": iou.mean(0).round(4).tolist(), "mse_held_out": mse.mean(0).round(5).tolist(),
        "mask_coverage": round(float(np.mean([m.mean() for m in drop_masks])), 4),
        "per_image": {"iou": iou.round(4).tolist(), "mse": mse.round(5).tolist()}}
